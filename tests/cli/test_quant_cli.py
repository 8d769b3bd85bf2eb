"""Quantized export's bad input ends in one line, exit 2, and writes nothing (checked before any export work)."""

from __future__ import annotations

from typer.testing import CliRunner

from edgetam_export.cli import app

runner = CliRunner()


def _refused(r, out, *needles):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and not isinstance(r.exception, (ValueError, OSError))
    assert len([ln for ln in r.output.splitlines() if "error" in ln.lower()]) <= 1, r.output
    for n in needles:
        assert n in r.output, r.output
    assert not out.exists()


def test_bad_recipe_name(tmp_path):
    out = tmp_path / "b"
    r = runner.invoke(app, ["export", "-b", "onnx", "-p", "int8", "--recipe", "int4", "--out", str(out)])
    _refused(r, out, "unknown onnx recipe 'int4'", "int8_dynamic")


def test_recipe_for_the_other_precision(tmp_path):
    out = tmp_path / "b"
    r = runner.invoke(
        app, ["export", "-b", "onnx", "-p", "mixed", "--recipe", "int8_dynamic", "--out", str(out)]
    )
    _refused(r, out, "serves --precision int8")


def test_unreadable_calibration_video(tmp_path):
    out, bad = tmp_path / "b", tmp_path / "notavideo.mp4"
    bad.write_bytes(b"not a video")
    r = runner.invoke(
        app, ["export", "-b", "onnx", "-p", "int8", "--calibration", str(bad), "--out", str(out)]
    )
    _refused(r, out, "notavideo.mp4")
    r = runner.invoke(
        app,
        [
            "export",
            "-b",
            "onnx",
            "-p",
            "int8",
            "--calibration",
            str(tmp_path / "missing.mp4"),
            "--out",
            str(out),
        ],
    )
    _refused(r, out, "missing.mp4")


def test_quant_options_need_a_quantized_precision(tmp_path):
    out = tmp_path / "b"
    r = runner.invoke(app, ["export", "-b", "onnx", "-p", "fp32", "--recipe", "int8", "--out", str(out)])
    _refused(r, out, "--recipe")
