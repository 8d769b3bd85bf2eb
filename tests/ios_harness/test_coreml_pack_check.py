"""A Core ML bench pack's index/plan must agree with its .mlpackage specs (names, shapes, dtypes).

The pack writer lives elsewhere; here a minimal pack is assembled from the session's Core ML fp16
export (artifacts symlinked, index entries from the bundle contracts, zero tensors for one call),
checked clean, then broken on purpose: every mismatch must be named.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from edgetam_export.bench.coreml_pack_check import ITEMSIZE, check_pack_against_mlpackage

GRAPH = "memory_encoder"  # the smallest call; any graph of the bundle would do


@pytest.fixture(scope="module")
def pack(exported_bundles, tmp_path_factory) -> Path:
    bundle = exported_bundles["coreml"]
    root = tmp_path_factory.mktemp("coreml_pack")
    (root / "artifacts").mkdir()
    index = {
        "format": "edgetam-bench-pack",
        "version": 1,
        "backend": "coreml",
        "precision": "fp16",
        "artifacts": {},
        "tensors": {},
    }
    for art in bundle.artifacts:
        if art["backend"] != "coreml" or art["precision"] != "fp16":
            continue
        name = Path(art["path"]).name
        (root / "artifacts" / name).symlink_to((bundle.root / art["path"]).resolve())
        contract = bundle.manifest["graphs"][art["graph"]]
        index["artifacts"][art["graph"]] = {
            "file": f"artifacts/{name}",
            "inputs": [{k: s[k] for k in ("name", "dtype", "shape")} for s in contract["inputs"]],
            "outputs": [{k: s[k] for k in ("name", "dtype", "shape")} for s in contract["outputs"]],
        }
    assert len(index["artifacts"]) == 4
    call = {"graph": GRAPH, "inputs": {}, "expected": {}}
    for io, specs in (
        ("in", index["artifacts"][GRAPH]["inputs"]),
        ("out", index["artifacts"][GRAPH]["outputs"]),
    ):
        for s in specs:
            key = f"case/{GRAPH}/{io}/{s['name']}"
            f = root / "tensors" / f"{key}.bin"
            f.parent.mkdir(parents=True, exist_ok=True)
            np.zeros(s["shape"], dtype=s["dtype"]).tofile(f)
            index["tensors"][key] = {
                "file": f"tensors/{key}.bin",
                "dtype": s["dtype"],
                "shape": s["shape"],
                "nbytes": int(np.prod(s["shape"])) * ITEMSIZE[s["dtype"]],
            }
            call["inputs" if io == "in" else "expected"][s["name"]] = key
    plan = {
        "format": "edgetam-bench-plan",
        "version": 1,
        "warmup": 1,
        "iterations": 2,
        "threads": None,
        "compute_units": ["all"],
        "calls": {f"case/{GRAPH}": call},
        "graph_benchmarks": {GRAPH: f"case/{GRAPH}"},
        "frames": [],
        "tolerances": {},
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "plan.json").write_text(json.dumps(plan))
    return root


def _broken(pack: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / "broken"
    out.mkdir()
    for name in ("artifacts", "tensors"):
        (out / name).symlink_to(pack / name)
    index, plan = json.loads((pack / "index.json").read_text()), json.loads((pack / "plan.json").read_text())
    edit(index, plan)
    (out / "index.json").write_text(json.dumps(index))
    (out / "plan.json").write_text(json.dumps(plan))
    return out


def test_consistent_pack_passes(pack):
    assert check_pack_against_mlpackage(pack, require_files=True) == []


def test_every_mismatch_is_named(pack, tmp_path):
    def edit(index, plan):
        arts = index["artifacts"]
        arts["image_encoder"]["inputs"][0]["name"] = "pixels"  # renamed input
        arts["prompt_decoder"]["outputs"][1]["shape"] = [1, 3]  # wrong shape
        arts["memory_attention"]["inputs"][0]["dtype"] = "float16"  # wrong dtype
        call = plan["calls"][f"case/{GRAPH}"]
        mem_key = call["expected"].pop("mem")
        call["expected"]["memory"] = mem_key  # not an output of the graph
        vis_key = call["inputs"]["vis"]
        index["tensors"][vis_key] = {
            **index["tensors"][vis_key],
            "shape": [1, 256, 32, 32],
        }  # feed of the wrong shape
        plan["calls"]["extra"] = copy.deepcopy(call) | {"graph": "mask_decoder"}  # unknown graph

    problems = check_pack_against_mlpackage(_broken(pack, tmp_path, edit), require_files=True)
    text = "\n".join(problems)
    assert "image_encoder: index.json inputs ['pixels'] != the .mlpackage's ['image']" in text
    assert "prompt_decoder: output iou has shape [1, 3] in index.json, [1, 4] in the .mlpackage" in text
    assert "memory_attention: input vis has dtype float16 in index.json, float32 in the .mlpackage" in text
    assert "expected output 'memory' is not an output of memory_encoder" in text
    assert (
        "input vis: tensor" in text and "has shape [1, 256, 32, 32], the model wants [1, 256, 64, 64]" in text
    )
    assert "nbytes" in text  # the resized entry no longer matches its byte count
    assert "call extra: graph 'mask_decoder' is not an artifact" in text
    assert len(problems) == 7, text
