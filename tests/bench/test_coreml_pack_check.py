"""A Core ML bench pack's index/plan agrees with its .mlpackage specs (names, shapes, dtypes), and
the host runner executes it through the MIL evaluator within the Core ML fp16 tolerance.

The pack is the real writer's, cut from the session's Core ML fp16 export; it is checked clean,
then broken on purpose: every mismatch must be named.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from edgetam_export.bench.coreml_pack_check import check_pack_against_mlpackage

GRAPH = "memory_encoder"  # the smallest call; any graph of the bundle would do


@pytest.fixture(scope="module")
def pack(exported_bundles, bench_capture, tmp_path_factory) -> Path:
    """The real Core ML fp16 bench pack (edgetam_export.bench.pack), cut to one tracked frame."""
    from edgetam_export.bench.pack import write_pack

    out = tmp_path_factory.mktemp("coreml_pack") / "pack"
    return write_pack(
        exported_bundles["coreml"],
        "coreml",
        "fp16",
        out,
        capture=bench_capture,
        warmup=0,
        iterations=1,
        frames=["tracked_1obj"],
    )


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
        call = plan["calls"][plan["graph_benchmarks"][GRAPH]]
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


def test_host_runner_runs_the_coreml_pack(pack):
    """The host runner runs the Core ML pack through the MIL evaluator (numerics only on Linux):
    every output of every call within the ("coreml", "fp16") tolerances of the table."""
    from edgetam_export.bench.runner import run_packs
    from edgetam_export.bench.schema import validate_result

    (result,) = run_packs([pack], baseline=False, profile=False, arithmetic=False)
    validate_result(result)
    assert result["setting"]["backend"] == "coreml" and result["setting"]["precision"] == "fp16"
    assert {n["graph"] for n in result["numerics"]} == {
        "image_encoder",
        "prompt_decoder",
        "memory_encoder",
        "memory_attention",
    }
    failed = [n for n in result["numerics"] if not n["passed"]]
    assert not failed, failed
    assert result["passed"] is True
    assert result["runner"]["timing_note"]  # labelled: these timings are not Core ML's
