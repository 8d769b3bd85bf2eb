"""At load, each artifact's real inputs/outputs are checked against the manifest's contract, mismatch named."""

from __future__ import annotations

import json
import shutil

import pytest
from edgetam_export.models.contracts import Contract, TensorSpec

from edgetam_export.bundle import BundleError, export_bundle, load_bundle
from edgetam_export.runtime.loader import runtime_from_bundle


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("contract") / "bundle"
    export_bundle(out, ["onnx", "executorch"], graphs=["prompt_decoder"], salt=0, precisions=["fp32"])
    return out


def _edit_pt_xy(src, dst, shape):
    shutil.copytree(src, dst)
    path = dst / "manifest.json"
    m = json.loads(path.read_text())
    for spec in m["graphs"]["prompt_decoder"]["inputs"]:
        if spec["name"] == "pt_xy":
            spec["shape"] = shape
    path.write_text(json.dumps(m, indent=2) + "\n")
    return dst


@pytest.mark.parametrize("backend", ["onnx", "executorch"])
def test_a_manifest_contract_that_no_longer_matches_its_artifact_is_named_at_load(
    small_bundle, tmp_path, backend
):
    runtime_from_bundle(small_bundle, backend=backend, precision="fp32")  # the untouched bundle loads
    bad = _edit_pt_xy(small_bundle, tmp_path / "edited", [1, 12, 2])
    load_bundle(bad)  # checksums and schema still pass: only the artifacts can tell
    with pytest.raises(BundleError) as e:
        runtime_from_bundle(bad, backend=backend, precision="fp32")
    msg = str(e.value)
    assert "\n" not in msg
    assert "'prompt_decoder'" in msg and "'pt_xy'" in msg
    assert "[1, 12, 2] in the manifest but [1, 8, 2] in the artifact" in msg


def test_contract_mismatches_is_the_one_comparison():
    c = Contract("g", (TensorSpec("a", (1, 2)), TensorSpec("b", (3,))), (TensorSpec("y", (1,)),))
    assert c.mismatches("input", ["a", "b"], [(1, 2), (3,)]) == []
    assert c.mismatches("input", ["b", "a"], [(3,), (1, 2)], ordered=False) == []
    assert "another order" in c.mismatches("input", ["b", "a"], [(3,), (1, 2)])[0]
    assert "missing ['b']" in c.mismatches("input", ["a"], [(1, 2)])[0]
    assert c.mismatches("input", None, [(1, 2), (4,)], source="manifest") == [
        "input 'b' is [3] in the manifest but [4] in the artifact"
    ]
    assert c.mismatches("output", ["y"], [None]) == []  # undeclared shapes are not compared
