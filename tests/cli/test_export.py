"""The ``export`` / ``inspect`` / ``verify`` commands end to end on the real (synthetic) model.

To stay fast, the export covers the two smaller graphs on ONNX only; `verify` still builds the
reference from the bundle's recorded weights and runs realistic, reference-chained inputs. The
tracker-clip rows of `verify` need all four graphs: that test uses the session's shared export.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from edgetam_export.cli import app

runner = CliRunner()
GRAPHS = ("prompt_decoder", "memory_encoder")


@pytest.fixture(scope="module")
def cli_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "bundle"
    args = ["export", "--backend", "onnx", "--out", str(out), "--salt", "3", "--max-points", "6"]
    for g in GRAPHS:
        args += ["--graph", g]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, result


def test_export_writes_bundle_and_table(cli_bundle):
    out, result = cli_bundle
    assert "SYNTHETIC weights (salt 3)" in result.output  # stated loudly
    assert "prompt_decoder" in result.stdout and "opset 18" in result.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["weights"]["source"] == "synthetic" and m["weights"]["salt"] == 3
    assert m["options"]["max_points"] == 6 and m["options"]["num_spatial_slots"] == 8
    assert m["graphs"]["prompt_decoder"]["inputs"][4]["shape"] == [1, 6, 2]
    assert sorted(a["path"] for a in m["artifacts"]) == [
        "onnx/memory_encoder.fp32.onnx",
        "onnx/prompt_decoder.fp32.onnx",
    ]
    assert (out / "constants.npz").is_file()


def test_inspect(cli_bundle):
    out, _ = cli_bundle
    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    for text in (
        "edgetam-export-bundle",
        "files OK",
        "SYNTHETIC",
        "pt_xy",
        "no_obj_ptr",
        "max_points=6",
        "onnxruntime",
    ):
        assert text in result.stdout, text


def test_verify_passes_and_writes_json(cli_bundle, tmp_path):
    out, _ = cli_bundle
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["verify", str(out), "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout
    d = json.loads(report.read_text())
    assert d["passed"] is True and d["weights"]["salt"] == 3
    got = {(r["graph"], r["case"], r["output"]) for r in d["rows"]}
    assert got == {
        ("prompt_decoder", "click", "masks"),
        ("prompt_decoder", "click", "iou"),
        ("prompt_decoder", "click", "obj_logit"),
        ("prompt_decoder", "click", "ptr_all"),
        ("memory_encoder", "prompted", "mem"),
        ("memory_encoder", "tracked", "mem"),
    }
    for r in d["rows"]:
        assert r["backend"] == "onnx" and r["precision"] == "fp32" and r["passed"]
        assert r["cosine"] > 0.999999 and r["rel_max_abs"] < 1e-4


def test_verify_fails_outside_tolerance(cli_bundle, tmp_path, monkeypatch):
    """A tolerance no real backend meets makes verify exit 1 and the JSON say which tensor failed."""
    from edgetam_export.verify import tolerances

    out, _ = cli_bundle
    strict = dict(tolerances.TOLERANCES[("onnx", "fp32")])
    strict["memory"] = tolerances.Tolerance(0.0, 1.1, "test: impossible bound")
    monkeypatch.setitem(tolerances.TOLERANCES, ("onnx", "fp32"), strict)
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["verify", str(out), "--json", str(report)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout
    d = json.loads(report.read_text())
    failed = {(r["graph"], r["output"]) for r in d["rows"] if not r["passed"]}
    assert failed == {("memory_encoder", "mem")}


def test_verify_runs_the_ort_companions(cli_bundle, tmp_path, monkeypatch):
    """``--onnx-format ort`` verifies the .ort files (every ONNX session is opened on one) under the
    same tolerances, and says so in the table and the JSON; with no ONNX backend chosen it is
    refused in one line."""
    from edgetam_export.runtime import onnx_runtime

    out, _ = cli_bundle
    opened: list[str] = []
    real = onnx_runtime.cpu_session
    monkeypatch.setattr(
        onnx_runtime, "cpu_session", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k)
    )
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["verify", str(out), "--onnx-format", "ort", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "onnx (.ort) fp32 vs PyTorch reference" in result.stdout
    assert sorted(opened) == sorted(str(out / "onnx" / f"{g}.fp32.ort") for g in GRAPHS)
    d = json.loads(report.read_text())
    assert d["passed"] is True and d["onnx_format"] == "ort" and len(d["rows"]) == 6

    refused = runner.invoke(app, ["verify", str(out), "-b", "executorch", "--onnx-format", "ort"])
    assert refused.exit_code == 2
    assert "applies to ONNX artifacts" in refused.output and "Traceback" not in refused.output


@pytest.mark.slow
def test_verify_tracks_clip_and_fails_on_it(exported_bundles, tmp_path, monkeypatch):
    """On a bundle with all four graphs, verify also tracks a 3-frame, 2-object clip against the
    PyTorch tracker (rows ``tracker``); a mask-IoU bound no backend meets fails exactly the
    mask rows (their logits stay within tolerance) and makes verify exit 1."""
    from edgetam_export.verify import tolerances

    monkeypatch.setitem(tolerances.MASK_IOU, ("onnx", "fp32"), 1.5)
    report = tmp_path / "report.json"
    bundle = str(exported_bundles["main"].root)
    result = runner.invoke(app, ["verify", bundle, "-b", "onnx", "-p", "fp32", "--json", str(report)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout
    d = json.loads(report.read_text())
    assert d["passed"] is False and not d["errors"]
    tracker = [r for r in d["rows"] if r["graph"] == "tracker"]
    masks = [r for r in tracker if r["output"] == "masks"]
    assert {r["case"] for r in masks} == {f"clip/f{t}/obj{o}" for t in range(3) for o in (1, 2)}
    assert {r["case"] for r in tracker if r["output"] == "scores"} == {f"clip/f{t}" for t in range(3)}
    for r in masks:
        assert not r["passed"] and r["mask_iou"] >= 0.999 and r["rel_max_abs"] < 2e-4
        assert len(r["problems"]) == 1 and r["problems"][0].endswith(f"IoU {r['mask_iou']:.6f} < 1.5")
    assert all(r["passed"] for r in d["rows"] if r not in masks)


def test_verify_refuses_tampered_bundle(cli_bundle, tmp_path):
    out, _ = cli_bundle
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    with open(bad / "onnx" / "memory_encoder.fp32.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x01\x02")
    result = runner.invoke(app, ["verify", str(bad)])
    assert result.exit_code == 2
    assert "onnx/memory_encoder.fp32.onnx was modified" in result.output
    result = runner.invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 2 and "was modified" in result.output
    assert runner.invoke(app, ["inspect", str(bad), "--no-verify"]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint", "ckpt.pt", "--synthetic"], "not both"),
        (["--checkpoint", "does-not-exist.pt"], "checkpoint not found"),
        (["--max-points", "0"], "must be >= 1"),
        (["--backend", "tflite"], "tflite"),
        (["--precision", "int4"], "int4"),
    ],
)
def test_export_bad_arguments(tmp_path, args, message):
    (tmp_path / "ckpt.pt").write_bytes(b"")
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "b"), *args], catch_exceptions=False)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "b").exists()


def test_export_refuses_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    result = runner.invoke(
        app, ["export", "--backend", "onnx", "--graph", "memory_encoder", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "refusing to replace" in result.output
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_verify_and_inspect_missing_bundle(tmp_path):
    for cmd in ("verify", "inspect"):
        result = runner.invoke(app, [cmd, str(tmp_path / "missing")])
        assert result.exit_code == 2 and "not a directory" in result.output
