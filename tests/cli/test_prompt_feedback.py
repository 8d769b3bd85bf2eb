"""Prompts get feedback: points outside the image warn, --frame beyond --max-frames names the cap,
segment's summary.json records the prompt and its overlay marks it."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import edgetam_export.cli.segment as segment_cli
from edgetam_export.cli import app
from edgetam_export.image_segmentation import segment_image
from edgetam_export.procedural import procedural_frame
from edgetam_export.tracker import Tracker
from edgetam_export.tracker.prompts import PromptWarning
from edgetam_export.video import write_video
from tests.tracker.fake_runtime import FakeRuntime

runner = CliRunner()


@pytest.fixture(scope="module")
def fake():
    from edgetam_export.models import build_edgetam

    from edgetam_export.runtime.torch_runtime import TorchRuntime

    ref = TorchRuntime(build_edgetam())
    return FakeRuntime(ref.contracts, ref.constants)


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "img.png"
    Image.fromarray(procedural_frame(0)[::8, ::8].copy()).save(p)  # 128 x 128
    return p


def test_points_outside_the_image_warn_in_python(fake):
    img = procedural_frame(0)[::8, ::8].copy()
    with pytest.warns(PromptWarning, match=r"\(300, 20\) lies outside the 128x128"):
        segment_image(fake, img, points=[[300, 20]], labels=[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PromptWarning)
        segment_image(fake, img, points=[[127, 20]], labels=[1])  # inside: silent
    tracker = Tracker(fake, fill_hole_area=0)
    s = tracker.init_video_session(video=[img, img])
    with pytest.warns(PromptWarning, match="object 1 on frame 1"):
        tracker.add_inputs_to_inference_session(s, 1, 1, input_boxes=[[[-50, 0, 60, 60]]])


def test_segment_warns_records_and_marks_the_prompt(fake, image, tmp_path, monkeypatch):
    monkeypatch.setattr(segment_cli, "choose_runtime", lambda *a, **k: (fake, {"weights": "fake"}))
    out = tmp_path / "seg"
    args = ["segment", str(image), "--point", "40,50", "--point", "90,20,0", "--box", "10,10,100,120"]
    r = runner.invoke(app, [*args, "--point", "500,50", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert [ln for ln in r.output.splitlines() if "warning:" in ln and "(500, 50)" in ln], r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompt"] == {
        "points": [[40.0, 50.0], [90.0, 20.0], [500.0, 50.0]],
        "labels": [1, 0, 1],
        "box": [10.0, 10.0, 100.0, 120.0],
    }
    marked = np.asarray(Image.open(out / "overlay.png")).astype(int)
    mask = np.asarray(Image.open(out / "mask.png")) > 0
    # Ring around the positive point is green, around the negative one red, the box edge yellow.
    ring = marked[50, 40 + 4 - 1]
    assert ring[1] > 150 and ring[0] < 120, ring
    neg = marked[20, 90 + 4 - 1]
    assert neg[0] > 150 and neg[1] < 120, neg
    assert (marked[10, 50] > [200, 180, -1]).all() and marked[10, 50][2] < 100
    assert mask.shape == (128, 128)


def test_frame_beyond_max_frames_names_the_cap(tmp_path):
    clip = write_video(tmp_path / "c.mp4", [procedural_frame(t)[::16, ::16].copy() for t in range(4)], fps=5)
    r = runner.invoke(
        app,
        [
            "track",
            str(clip),
            "--point",
            "5,5",
            "--frame",
            "99",
            "--max-frames",
            "2",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2
    assert "--frame 99" in r.output and "--max-frames 2" in r.output and "has 2 frames" not in r.output
