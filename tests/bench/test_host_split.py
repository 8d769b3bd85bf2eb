"""The tracked-frame split (graphs vs host work, N objects vs the cost model) on the session's ExecuTorch fp32 bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgetam_export.bench.host_split import GRAPHS, measure_split, split_markdown
from edgetam_export.cli import app
from edgetam_export.runtime.loader import runtime_from_bundle


@pytest.fixture(scope="module")
def split(exported_bundles) -> dict:
    rt = runtime_from_bundle(exported_bundles["main"], "executorch", "fp32")
    return measure_split(rt, frames=2, warmup=1, objects=2, size=(360, 640), profile_frames=1)


def test_split_adds_up(split):
    for key in ("one", "many"):
        r = split[key]
        assert r["frame"]["n"] == 2 and r["host"]["n"] == 2
        # every tracked frame runs all four graphs; the host remainder is what is left of the frame
        assert all(r["graphs_ms"][g] > 0 for g in GRAPHS), (key, r["graphs_ms"])
        assert 0 < r["host"]["p50_ms"] < r["frame_p50_ms"]
        assert 0 < r["host_share"] < 1
        frame = np.asarray(r["frame"]["samples_ms"])
        host = np.asarray(r["host"]["samples_ms"])
        assert np.all(host < frame)
    # per-object graphs run once per object, the encoder once per frame
    one, many = split["one"]["graphs_ms"], split["many"]["graphs_ms"]
    assert many["prompt_decoder"] > 1.4 * one["prompt_decoder"]
    assert many["image_encoder"] < 1.5 * one["image_encoder"]
    model = one["image_encoder"] + 2 * (
        one["prompt_decoder"] + one["memory_encoder"] + one["memory_attention"]
    )
    assert split["objects_model_ms"] == pytest.approx(model)
    assert split["objects_ratio"] == pytest.approx(split["many"]["frame_p50_ms"] / model)


def test_host_functions_exclude_the_graphs(split):
    funcs = split["host_functions"]
    assert funcs and all(f["ms_per_frame"] >= 0 for f in funcs)
    names = " ".join(f["function"] for f in funcs)
    # the runtime's execute call and everything below it is graph time, not host time
    assert "execute" not in names and "_run" not in names and "executorch" not in names, names
    md = split_markdown(split, "executorch fp32")
    assert "| 1 object |" in md and "| 2 objects |" in md and "host share" in md and "of the model" in md


def test_split_cli(exported_bundles, tmp_path, monkeypatch):
    """Bad arguments are one-line errors; ``--onnx-format ort`` tracks with the .ort companions (every
    session is opened on one) and the result says so."""
    from edgetam_export.runtime import onnx_runtime

    runner = CliRunner()
    root = str(exported_bundles["main"].root)
    bad = runner.invoke(app, ["bench", "split", root, "--size", "1920by1080"])
    assert (
        bad.exit_code == 2 and "--size must be WIDTHxHEIGHT" in bad.output and "Traceback" not in bad.output
    )
    bad = runner.invoke(app, ["bench", "split", root, "--objects", "9"])
    assert bad.exit_code == 2 and "objects" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["bench", "split", root, "--backend", "coreml"])
    assert bad.exit_code == 2 and "coreml" in bad.output
    bad = runner.invoke(app, ["bench", "split", root, "--backend", "executorch", "--onnx-format", "ort"])
    assert bad.exit_code == 2 and "applies to ONNX artifacts" in bad.output and "Traceback" not in bad.output
    opened: list[str] = []
    real = onnx_runtime.cpu_session
    monkeypatch.setattr(
        onnx_runtime, "cpu_session", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k)
    )
    out = tmp_path / "split.json"
    ok = runner.invoke(
        app,
        [
            *("bench", "split", root, "--backend", "onnx", "--precision", "fp32", "--frames", "1"),
            *(
                "--warmup",
                "0",
                "--objects",
                "1",
                "--size",
                "320x240",
                "--profile-frames",
                "0",
                "--json",
                str(out),
                "--onnx-format",
                "ort",
            ),
        ],
    )
    assert ok.exit_code == 0, ok.output
    r = json.loads(out.read_text())
    assert (
        r["backend"] == "onnx"
        and r["many"] is None
        and r["objects_ratio"] is None
        and r["size_hw"] == [240, 320]
        and r["onnx_format"] == "ort"
    )
    assert "| 1 object |" in ok.output and "onnx (.ort) fp32" in ok.output
    assert len(opened) == 4 and all(p.endswith(".fp32.ort") for p in opened), opened
