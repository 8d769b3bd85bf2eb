"""A quantized export is recorded (recipe, calibration), loads beside fp32, and verify fails it when the tracker-level bound is violated."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from edgetam_export.cli import app
from edgetam_export.runtime.loader import runtime_from_bundle
from edgetam_export.tracker.tracker import TrackerOutput
from edgetam_export.verify.quant_accuracy import tracker_accuracy
from edgetam_export.verify.tolerances import QUANT_TRACKER

from ..conftest import QUANT_TEST_RECIPE

FRAMES = 4


def test_manifest_records_recipe_and_calibration(quantized_bundle):
    m = quantized_bundle.manifest
    onnx = m["backends"]["onnx"]
    assert onnx["precisions"] == ["fp32", "fp16", "int8"]  # added beside the float ones
    assert quantized_bundle.precisions("executorch") == ["fp16", "fp32"]  # other backends kept
    q = onnx["quantization"]["int8"]
    assert q["recipe"] == QUANT_TEST_RECIPE
    assert set(q["graphs"]) == set(quantized_bundle.contracts)
    assert q["calibration"]["source"].startswith("procedural frames 0..2")
    assert q["calibration"]["samples"]["image_encoder"] == 3
    assert q["calibration"]["samples"]["memory_attention"] >= 2
    for g, a in q["accuracy"].items():
        assert 0 < a["cosine"] <= 1 and a["rel_max_abs"] > 0, g  # quantized: not bit-identical
    fp32 = quantized_bundle.artifact("onnx", "image_encoder", "fp32")["size_bytes"]
    int8 = quantized_bundle.artifact("onnx", "image_encoder", "int8")["size_bytes"]
    assert int8 < 0.35 * fp32


def test_int8_artifacts_load_and_run_with_float32_io(quantized_bundle):
    rt = runtime_from_bundle(quantized_bundle, "onnx", "int8", num_threads=1)
    assert rt.precision == "int8"
    c = rt.contracts["memory_encoder"]
    feeds = {s.name: np.zeros(s.shape, np.float32) for s in c.inputs}
    out = rt.run("memory_encoder", feeds)
    assert out["mem"].dtype == np.float32 and out["mem"].shape == c.outputs[0].shape
    assert quantized_bundle.select("onnx") == ("onnx", "fp32")  # not the default unless asked


def _outputs(masks: list[np.ndarray], scores: list[list[float]]) -> list[TrackerOutput]:
    return [
        TrackerOutput(t, [1, 2], m, np.asarray(s, np.float32).reshape(2, 1))
        for t, (m, s) in enumerate(zip(masks, scores, strict=True))
    ]


def test_tracker_bound_passes_equal_runs_and_names_what_fails():
    rng = np.random.default_rng(0)
    masks = [rng.normal(size=(2, 1, 256, 256)).astype(np.float32) for _ in range(3)]
    ref = _outputs(masks, [[1.0, -2.0]] * 3)
    acc = tracker_accuracy(ref, ref, "onnx", "int8")
    assert acc.passed and acc.min_iou == 1.0 and acc.sign_agreement == 1.0
    moved = [m.copy() for m in masks]
    moved[2][1] = -moved[2][1]  # frame 2, object 2: the mask inverted
    flipped = _outputs(moved, [[1.0, -2.0], [-0.5, -2.0], [1.0, -2.0]])  # frame 1 object 1 flips
    acc = tracker_accuracy(flipped, ref, "onnx", "int8")
    assert not acc.passed and acc.growth()["worst_frame"] == 2
    assert any("IoU" in p and "frame 2" in p for p in acc.problems), acc.problems
    assert any("sign differs" in p and "frame 1 object 1" in p for p in acc.problems), acc.problems
    assert QUANT_TRACKER[("onnx", "int8")].min_iou == 0.95


def test_verify_fails_the_over_quantized_recipe(quantized_bundle, tmp_path):
    """The real path: verify tracks the scenario with the int8_full artifacts and the fp32 ones."""
    out = tmp_path / "verify.json"
    r = CliRunner().invoke(
        app,
        [
            "verify",
            str(quantized_bundle.root),
            "-b",
            "onnx",
            "-p",
            "int8",
            "--frames",
            str(FRAMES),
            "--threads",
            "1",
            "--json",
            str(out),
        ],
    )
    assert r.exit_code == 1, r.output
    assert "onnx int8 scenario" in r.output and "FAIL" in r.output
    rep = json.loads(out.read_text())
    q = rep["quantization"]["onnx/int8"]
    assert q["against"] == "onnx fp32" and set(q["graphs"]) == set(quantized_bundle.contracts)
    sizes = q["artifact_bytes"]  # what `bench report --accuracy` shows beside the accuracy
    assert q["recipe"] == QUANT_TEST_RECIPE and 0 < sizes["total"] < sizes["fp32_total"]
    tr = q["tracker"]
    assert not tr["passed"] and tr["problems"] and len(tr["per_frame_min_iou"]) == FRAMES
    assert tr["obj_ids"] == [1, 2]
    assert (tmp_path / "onnx.int8.iou.png").stat().st_size > 1000
