"""`edgetam-export track` / `segment` end to end on a small generated video and image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgetam_export.cli import app
from edgetam_export.procedural import procedural_frame
from edgetam_export.video import read_video, write_video

runner = CliRunner()


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    frames = [np.asarray(Image.fromarray(procedural_frame(t)).resize((320, 240))) for t in range(3)]
    return write_video(d / "clip.mp4", frames, fps=10)


def test_track_end_to_end(small_video, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(
        app,
        [
            "track",
            str(small_video),
            "--point",
            "81,89",
            "--box",
            "178,30,260,91",
            "--obj-id",
            "2",
            "--obj-id",
            "1",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["obj_ids"] == [2, 1] and summary["runtime"] == "pytorch"
    assert "synthetic" in summary["weights"]
    assert sorted(summary["object_score_logits"]) == ["0", "1", "2"]
    assert {"image_encoder", "prompt_decoder", "memory_encoder", "memory_attention"} <= set(
        summary["timings"]
    )
    for oid in (1, 2):
        pngs = sorted((out / "masks" / f"obj_{oid}").glob("*.png"))
        assert [p.name for p in pngs] == ["00000.png", "00001.png", "00002.png"]
        m = np.asarray(Image.open(pngs[0]))
        assert m.shape == (240, 320) and set(np.unique(m)) <= {0, 255}
    frames, _ = read_video(out / "overlay.mp4")
    assert len(frames) == 3 and frames[0].shape == (240, 320, 3)


def test_track_rejects_bad_input(small_video, tmp_path):
    r = runner.invoke(
        app, ["track", str(small_video), "--point", "10,10", "--frame", "7", "--out", str(tmp_path)]
    )
    assert r.exit_code != 0 and "out of range" in r.output
    r = runner.invoke(app, ["track", str(small_video), "--point", "10", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "--point" in r.output
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    r = runner.invoke(app, ["track", str(bad), "--point", "10,10", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "cannot decode" in r.output
    r = runner.invoke(app, ["track", str(small_video), "--out", str(tmp_path)])
    assert r.exit_code != 0 and "at least one" in r.output


def test_segment_image(tmp_path):
    img = tmp_path / "frame.png"
    Image.fromarray(procedural_frame(0)).save(img)
    out = tmp_path / "seg"
    r = runner.invoke(app, ["segment", str(img), "--point", "260,380", "--out", str(out)])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    # the golden click: multimask, candidate 1 of 1..3 (decoder mask 2) wins
    assert s["multimask"] is True and s["chosen_mask"] == 2 and len(s["candidate_ious"]) == 4
    assert len(list((out / "candidates").glob("mask_*.png"))) == 4


def test_track_and_segment_pick_the_default_in_a_multi_choice_bundle(exported_bundles, small_video, tmp_path):
    """The main bundle holds onnx + executorch at fp32 + fp16: no choice needed, the pick is recorded."""
    import platform

    root = str(exported_bundles["main"].root)
    out = tmp_path / "t"
    r = runner.invoke(
        app,
        [
            "track",
            str(small_video),
            "--point",
            "81,89",
            "--bundle",
            root,
            "--max-frames",
            "2",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "default for this host" in r.output
    s = json.loads((out / "summary.json").read_text())
    if platform.system() != "Darwin":
        assert (s["backend"], s["precision"]) == ("executorch", "fp32")
    img = tmp_path / "frame.png"
    Image.fromarray(procedural_frame(0)).save(img)
    r = runner.invoke(
        app,
        [
            "segment",
            str(img),
            "--point",
            "260,380",
            "--bundle",
            root,
            "--backend",
            "onnx",
            "--precision",
            "fp16",
            "--threads",
            "1",
            "--onnx-format",
            "ort",
            "--out",
            str(tmp_path / "s"),
        ],
    )
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert (s["backend"], s["precision"], s["onnx_format"]) == ("onnx", "fp16", "ort")
    # the .ort files of a backend the run does not use: refused before any work
    r = runner.invoke(
        app,
        [
            *("segment", str(img), "--point", "1,1", "--bundle", root, "--backend", "executorch"),
            *("--onnx-format", "ort", "--out", str(tmp_path / "e")),
        ],
    )
    flat = " ".join(r.output.replace("│", " ").split())  # the usage-error box wraps lines
    assert r.exit_code == 2 and "applies to the onnx backend, and this run uses executorch" in flat, flat


def test_non_empty_out_is_refused_unless_overwrite(tmp_path):
    img = tmp_path / "frame.png"
    Image.fromarray(procedural_frame(0)).save(img)
    out = tmp_path / "seg"
    out.mkdir()
    (out / "stale.png").write_bytes(b"old run")
    args = ["segment", str(img), "--point", "260,380", "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "--overwrite" in r.output and (out / "stale.png").exists()
    r = runner.invoke(app, [*args, "--overwrite"])
    assert r.exit_code == 0, r.output
    assert not (out / "stale.png").exists() and (out / "summary.json").is_file()


def test_overlay_video_is_0644(tmp_path):
    p = write_video(tmp_path / "overlay.mp4", [np.zeros((32, 32, 3), np.uint8)] * 2, fps=5)
    assert (p.stat().st_mode & 0o777) == 0o644
