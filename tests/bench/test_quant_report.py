"""`bench report --accuracy`: the Quantization section and quant_iou.png from verify's JSON (no export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from edgetam_export.bench.quant_report import AccuracyError, load_accuracy, section, speed_vs_fp32
from edgetam_export.bench.report import write_report
from edgetam_export.bench.schema import validate_result
from edgetam_export.cli import app
from edgetam_export.verify.bundle_check import VerifyReport
from edgetam_export.verify.quant_accuracy import TrackerAccuracy

MB = 2**20
DEVICE = {"model": "hostA", "os": "Linux", "arch": "x86_64", "cores": 2}


def _line_pixels(png: Path) -> tuple[int, int]:
    """Pixels in matplotlib's first two line colours (C0 blue, C1 orange): one per plotted entry."""
    import numpy as np

    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    near = [(np.abs(rgb - c).sum(axis=2) < 30).sum() for c in ((31, 119, 180), (255, 127, 14))]
    return int(near[0]), int(near[1])


def _stats(p50: float) -> dict:
    return {"n": 3, "min_ms": p50, "p50_ms": p50, "p90_ms": p50, "mean_ms": p50, "trimmed_mean_ms": p50}


def _result(backend: str, precision: str, frames: dict[str, float], threads: int = 2) -> dict:
    """A schema-valid bench result whose frames have these p50s (ms)."""
    r = {
        "format": "edgetam-bench-result",
        "version": 1,
        "device": DEVICE,
        "runner": {"name": "test", "version": "0", "runtime": backend, "runtime_version": "0"},
        "setting": {"backend": backend, "precision": precision, "threads": threads},
        "pack": {"bundle_digest": None},
        "graphs": {"image_encoder": {"load_ms": 1.0, "first_inference_ms": 1.0, "latency": _stats(100.0)}},
        "frames": {
            f: {"objects": 1, "kind": f.split("_")[0], "latency": _stats(ms), "fps": 1e3 / ms}
            for f, ms in frames.items()
        },
        "numerics": [],
        "passed": True,
    }
    validate_result(r)
    return r


RESULTS = [
    _result("pytorch", "fp32", {"prompted_1obj": 900.0, "tracked_1obj": 800.0}),
    _result("onnx", "fp32", {"prompted_1obj": 500.0, "tracked_1obj": 400.0}),
    _result("onnx", "int8", {"prompted_1obj": 450.0, "tracked_1obj": 240.0}),
    _result("executorch", "int8", {"prompted_1obj": 300.0, "tracked_1obj": 200.0}),  # no executorch fp32
]

# onnx int8 over 6 frames, objects 1 and 2: the min over objects dips below 0.95 at frame 3,
# is worst at frame 4 (0.93), where object 2's score sign also flips.
IOU = [[1.0, 1.0], [0.99, 1.0], [0.97, 0.98], [0.94, 0.99], [0.93, 0.97], [0.96, 0.99]]
SIGNS = [[True, True]] * 4 + [[True, False], [True, True]]


def _tracker(backend, iou, signs, problems) -> dict:
    n = len(iou)
    bound = {"min_iou": 0.95, "mean_iou": 0.98, "signs_equal": True}
    return TrackerAccuracy(
        backend, "int8", n, [1, 2], iou, signs, [[1.0, 1.0]] * n, [[1.0, 1.0]] * n, bound, problems
    ).as_dict()


def _verify_report(quant: dict) -> dict:
    """What `edgetam-export verify --json` writes, with these quantization entries."""
    return VerifyReport("build/export", {"source": "synthetic"}, quant=quant).as_dict()


ONNX_INT8 = {
    "against": "onnx fp32",
    "recipe": "int8_static",
    "artifact_bytes": {"total": 15 * MB, "fp32_total": 50 * MB},
    "graphs": {
        "image_encoder": {"cosine": 0.998765, "rel_max_abs": 0.0423, "outputs": {}},
        "prompt_decoder": {"cosine": 0.9991, "rel_max_abs": 0.0123, "outputs": {}},
    },
    "tracker": _tracker("onnx", IOU, SIGNS, ["onnx int8 scenario: mask IoU 0.9300 at frame 4 < 0.95"]),
}
# An older verify report (no recipe / artifact_bytes), a bundle without executorch fp32.
ET_INT8 = {
    "against": "pytorch reference (the bundle has no fp32 artifacts for this backend)",
    "graphs": {"image_encoder": {"cosine": 0.9987, "rel_max_abs": 0.05, "outputs": {}}},
    "tracker": _tracker("executorch", [[1.0, 1.0]] * 4, [[True, True]] * 4, []),
}


@pytest.fixture
def accuracy_files(tmp_path) -> tuple[Path, Path]:
    a, b = tmp_path / "v_onnx.json", tmp_path / "v_et.json"
    a.write_text(json.dumps(_verify_report({"onnx/int8": ONNX_INT8})))
    b.write_text(json.dumps(_verify_report({"executorch/int8": ET_INT8})))
    return a, b


def test_load_accuracy_flattens_the_verify_report(accuracy_files):
    (e,) = load_accuracy(accuracy_files[0])
    assert (e["backend"], e["precision"], e["source"]) == ("onnx", "int8", "v_onnx.json")
    assert e["tracker"]["per_frame_min_iou"] == [1.0, 0.99, 0.97, 0.94, 0.93, 0.96]
    assert e["tracker"]["growth"]["first_frame_below_bound"] == 3


def test_section_numbers_and_plot(accuracy_files, tmp_path):
    entries = load_accuracy(accuracy_files[0]) + load_accuracy(accuracy_files[1])
    md = write_report(RESULTS, tmp_path / "rep", entries).read_text()
    quant = md[md.index("## Quantization") : md.index("## Plots")]
    assert (
        "| onnx int8 | `int8_static` | 15.0 MB | 30.0% | 6 | 0.9300 | 0.9767 (0.9900 -> 0.9633) | 11/12 "
        "| 3 (bound 0.95) | 4 (0.9300) | **FAIL** |"
    ) in quant
    # older report: no recipe or sizes; all frames above the bound
    assert (
        "| executorch int8 | - | - | - | 4 | 1.0000 | 1.0000 (1.0000 -> 1.0000) | 8/8 | none | 0 (1.0000) | pass |"
        in quant
    )
    assert "executorch int8 was measured against the pytorch reference" in quant
    assert "| onnx int8 | image_encoder | 0.998765 | 0.0423 |" in quant
    assert "| onnx int8 | prompt_decoder | 0.999100 | 0.0123 |" in quant
    assert "| setting | prompted_1obj | tracked_1obj |" in quant
    assert "| hostA / onnx int8 | 0.90x (450.0 vs 500.0) | 0.60x (240.0 vs 400.0) |" in quant
    assert "- executorch int8: no speed ratio: no executorch fp32 setting on hostA with threads 2" in quant
    assert "![per-frame min mask IoU vs fp32](quant_iou.png)" in quant
    assert "frame tracked_1obj" in md and "## Settings" in md  # the rest of the report is unchanged
    png = tmp_path / "rep" / "quant_iou.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    with Image.open(png) as im:
        assert im.size == (800, 400)
    blue, orange = _line_pixels(png)
    assert blue > 200 and orange > 200  # both entries drawn


def test_no_accuracy_no_section(tmp_path):
    md = write_report(RESULTS, tmp_path / "rep").read_text()
    assert "## Quantization" not in md and not (tmp_path / "rep" / "quant_iou.png").exists()


def test_speed_ratio_needs_the_same_backends_fp32_on_the_same_device_and_threads():
    (s,) = speed_vs_fp32(RESULTS, "onnx", "int8")
    assert s["ratios"] == pytest.approx({"prompted_1obj": 0.9, "tracked_1obj": 0.6})
    other_threads = [*RESULTS[:2], _result("onnx", "int8", {"tracked_1obj": 240.0}, threads=1)]
    (s,) = speed_vs_fp32(other_threads, "onnx", "int8")
    assert "ratios" not in s and "no onnx fp32 setting on hostA with threads 1" in s["missing"]
    (s,) = speed_vs_fp32(RESULTS, "onnx", "mixed")
    assert s == {"who": None, "missing": "the bench results hold no onnx mixed setting"}


def test_missing_fp32_baseline_and_no_bench_setting(accuracy_files):
    entries = load_accuracy(accuracy_files[1])  # executorch int8 only; RESULTS lack executorch fp32
    lines = section(RESULTS, entries)
    assert not any(line.startswith("| setting |") for line in lines)  # no speed table at all
    assert any("no executorch fp32 setting on hostA" in line for line in lines)
    lines = section(RESULTS[:2], entries)
    assert "- executorch int8: no speed ratio: the bench results hold no executorch int8 setting." in lines


def test_partial_bundle_entry_without_tracker(tmp_path):
    p = tmp_path / "v.json"
    p.write_text(json.dumps(_verify_report({"onnx/int8": {**ONNX_INT8, "tracker": None}})))
    entries = load_accuracy(p)
    md = write_report(RESULTS, tmp_path / "rep", entries).read_text()
    assert "| 30.0% | - | - | - | - | - | - | no tracker scenario (partial bundle) |" in md
    assert (tmp_path / "rep" / "quant_iou.png").read_bytes()[:4] == b"\x89PNG"
    assert _line_pixels(tmp_path / "rep" / "quant_iou.png") == (0, 0)  # nothing to draw


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps(RESULTS), "no 'quantization' object"),  # a bench result, not a verify report
        (json.dumps(_verify_report({})), "holds no quantized precision"),
        (json.dumps(_verify_report({"int8": ONNX_INT8})), "is not a 'backend/precision' object"),
        (
            json.dumps(
                _verify_report(
                    {"onnx/int8": {**ONNX_INT8, "artifact_bytes": {"total": 1, "fp32_total": "2"}}}
                )
            ),
            "'artifact_bytes' is not",
        ),
        (
            json.dumps(_verify_report({"onnx/int8": {**ONNX_INT8, "graphs": {"image_encoder": {}}}})),
            "graph 'image_encoder' lacks numeric",
        ),
        (
            json.dumps(
                _verify_report(
                    {"onnx/int8": {**ONNX_INT8, "tracker": {**ONNX_INT8["tracker"], "growth": {}}}}
                )
            ),
            "lacks growth.worst_frame",
        ),
        (
            json.dumps(
                _verify_report(
                    {
                        "onnx/int8": {
                            **ONNX_INT8,
                            "tracker": {**ONNX_INT8["tracker"], "per_frame_min_iou": [1.0]},
                        }
                    }
                )
            ),
            "tracker entry is inconsistent",
        ),
    ],
)
def test_bad_accuracy_file_is_one_line_error(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(AccuracyError, match=message):
        load_accuracy(p)
    res = tmp_path / "r.json"
    res.write_text(json.dumps(RESULTS))
    r = CliRunner().invoke(
        app, ["bench", "report", str(res), "--out", str(tmp_path / "rep"), "--accuracy", str(p)]
    )
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error:") and message in r.output and str(p) in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "rep").exists()


def test_cli_report_with_accuracy(accuracy_files, tmp_path):
    res = tmp_path / "r.json"
    res.write_text(json.dumps(RESULTS))
    out = tmp_path / "rep"
    args = ["bench", "report", str(res), "--out", str(out)]
    args += ["--accuracy", str(accuracy_files[0]), "--accuracy", str(accuracy_files[1])]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text()
    assert "| onnx int8 | `int8_static` | 15.0 MB | 30.0% |" in md and "| executorch int8 | - |" in md
    assert (out / "quant_iou.png").is_file()
    missing = tmp_path / "nope.json"
    r = CliRunner().invoke(app, [*args[:5], "--accuracy", str(missing)])
    assert r.exit_code == 2 and "cannot read it" in r.output and "Traceback" not in r.output, r.output
