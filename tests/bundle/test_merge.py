"""Exporting some graphs into a bundle adds them; other weights are refused; a partial bundle is refused by the tracker."""

from __future__ import annotations

import json

import pytest

from edgetam_export.bundle import BundleError, export_bundle, load_bundle
from edgetam_export.tracker import Tracker


def test_partial_export_adds_to_the_bundle_and_the_tracker_names_what_is_missing(tmp_path):
    out = tmp_path / "b"
    export_bundle(out, ["onnx"], graphs=["memory_encoder"], salt=0)
    b = export_bundle(out, ["onnx"], graphs=["prompt_decoder"], salt=0)
    # before: the second export replaced the bundle and memory_encoder was gone
    assert sorted(a["graph"] for a in b.artifacts) == ["memory_encoder", "prompt_decoder"]
    assert set(b.contracts) == {"memory_encoder", "prompt_decoder"}
    m = json.loads((out / "manifest.json").read_text())
    assert m["backends"]["onnx"]["precisions"] == ["fp32"]
    load_bundle(out)  # checksums of kept and new files agree
    with pytest.raises(BundleError, match="other weights"):
        export_bundle(out, ["onnx"], graphs=["memory_encoder"], salt=1)
    with pytest.raises(BundleError, match=r"options differ.*max_points"):
        export_bundle(out, ["onnx"], graphs=["memory_encoder"], salt=0, max_points=4)
    assert len(load_bundle(out).artifacts) == 2  # refused exports left it untouched
    with pytest.raises(BundleError, match=r"lacks graph\(s\) \['image_encoder', 'memory_attention'\]"):
        Tracker.from_bundle(out, backend="onnx", precision="fp32")
