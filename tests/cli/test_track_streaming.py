"""`track` streams: never decodes the whole video, writes every frame's masks and overlay, prunes its bank."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import edgetam_export.cli.track as track_cli
import edgetam_export.video as video_mod
from edgetam_export.cli import app
from edgetam_export.procedural import procedural_frame
from edgetam_export.video import LazyVideo, iter_frames, write_video
from tests.tracker.fake_runtime import FakeRuntime

runner = CliRunner()
N = 24


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = [procedural_frame(t)[::16, ::16].copy() for t in range(N)]  # (64, 64, 3)
    return write_video(tmp_path_factory.mktemp("stream") / "clip.mp4", frames, fps=10)


@pytest.fixture(scope="module")
def parts():
    from edgetam_export.models import build_edgetam

    from edgetam_export.runtime.torch_runtime import TorchRuntime

    ref = TorchRuntime(build_edgetam())
    return ref.contracts, ref.constants


@pytest.fixture
def streaming_only(monkeypatch, parts):
    """A fast fake runtime; decoding the whole video into memory fails; record frames held and bank size."""
    monkeypatch.setattr(
        track_cli, "choose_runtime", lambda *a, **k: (FakeRuntime(*parts), {"weights": "fake"})
    )

    def no_whole_video(*a, **k):
        raise AssertionError("track decoded the whole video into memory")

    monkeypatch.setattr(video_mod, "read_video", no_whole_video)
    monkeypatch.setattr(track_cli, "read_video", no_whole_video, raising=False)
    peaks = {"held": 0}
    get = LazyVideo.__getitem__

    def spy(self, t):
        frame = get(self, t)
        peaks["held"] = max(peaks["held"], self.num_held)
        return frame

    monkeypatch.setattr(LazyVideo, "__getitem__", spy)
    return peaks


@pytest.mark.parametrize("frame", [0, 9])
def test_track_streams_every_frame(clip, tmp_path, streaming_only, frame):
    out = tmp_path / "out"
    r = runner.invoke(app, ["track", str(clip), "--point", "20,30", "--frame", str(frame), "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == N and sorted(map(int, summary["object_score_logits"])) == list(range(N))
    assert [p.name for p in sorted((out / "masks" / "obj_1").glob("*.png"))] == [
        f"{t:05d}.png" for t in range(N)
    ]
    overlay = list(iter_frames(out / "overlay.mp4"))
    assert len(overlay) == N and overlay[0].shape == (64, 64, 3)
    assert 1 <= streaming_only["held"] <= 16  # one frame forward; one 16-frame block backward


def test_ctrl_c_marks_the_run_interrupted(clip, tmp_path, streaming_only, monkeypatch):
    import edgetam_export.tracker.editing as editing

    real = editing.prune_video

    def interrupt_at_5(s, t, *a, **k):
        real(s, t, *a, **k)
        if t == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(editing, "prune_video", interrupt_at_5)
    out = tmp_path / "out"
    r = runner.invoke(app, ["track", str(clip), "--point", "20,30", "--out", str(out)])
    assert r.exit_code == 130
    lines = [ln for ln in r.output.splitlines() if "interrupted" in ln]
    assert len(lines) == 1 and "6 of 24 frames" in lines[0], r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["frames_done"] == 6 and summary["overlay"] is None
    assert len(list((out / "masks" / "obj_1").glob("*.png"))) == 6
    assert sorted(p.name for p in out.iterdir()) == ["masks", "summary.json"]  # no half-written overlay


def test_a_finished_run_says_complete(clip, tmp_path, streaming_only):
    out = tmp_path / "out"
    assert runner.invoke(app, ["track", str(clip), "--point", "20,30", "--out", str(out)]).exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["interrupted"] is False
        and summary["frames_done"] == N
        and summary["overlay"] == "overlay.mp4"
    )
