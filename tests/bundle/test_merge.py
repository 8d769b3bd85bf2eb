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


def _q(recipe: str, graphs: list[str]) -> dict:
    return {
        "recipe": recipe,
        "graphs": dict.fromkeys(graphs, "int8_static"),
        "calibration": {"source": "procedural", "samples": dict.fromkeys(graphs, 3)},
        "accuracy": {},
    }


def test_quantization_sections_merge_like_artifacts():
    from types import SimpleNamespace

    from edgetam_export.bundle.write import _merged_backends

    # the kept bundle's manifest: onnx fp32 + int8 of two graphs
    Keep = SimpleNamespace(
        manifest={
            "backends": {
                "onnx": {"precisions": ["fp32", "int8"], "quantization": {"int8": _q("int8", ["a", "b"])}}
            }
        }
    )

    new = {"onnx": {"precisions": ["mixed"], "quantization": {"mixed": _q("mixed", ["a"])}}}
    out = _merged_backends(Keep, new)["onnx"]
    assert out["precisions"] == ["fp32", "int8", "mixed"] and set(out["quantization"]) == {"int8", "mixed"}
    # the same recipe on more graphs adds them; a full re-export replaces the entry
    new = {"onnx": {"precisions": ["int8"], "quantization": {"int8": _q("int8", ["c"])}}}
    assert set(_merged_backends(Keep, new)["onnx"]["quantization"]["int8"]["graphs"]) == {"a", "b", "c"}
    new = {"onnx": {"precisions": ["int8"], "quantization": {"int8": _q("int8_dynamic", ["a", "b"])}}}
    assert _merged_backends(Keep, new)["onnx"]["quantization"]["int8"]["recipe"] == "int8_dynamic"
    # another recipe for some graphs only would make one precision of two recipes: refused
    new = {"onnx": {"precisions": ["int8"], "quantization": {"int8": _q("int8_dynamic", ["a"])}}}
    with pytest.raises(BundleError, match="made with recipe 'int8'"):
        _merged_backends(Keep, new)
