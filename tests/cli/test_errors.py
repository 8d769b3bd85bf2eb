"""Every command ends a user error the same way: one line, exit 2, no traceback (``--debug`` shows it)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgetam_export.cli import app
from edgetam_export.procedural import procedural_frame
from edgetam_export.video import write_video

runner = CliRunner()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    small = [np.asarray(Image.fromarray(procedural_frame(t)).resize((160, 120))) for t in range(2)]
    img = d / "frame.png"
    Image.fromarray(small[0]).save(img)
    return write_video(d / "clip.mp4", small, fps=10), img


def _one_line_exit_2(r, *needles):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and not isinstance(r.exception, (ValueError, IndexError, OSError))
    for n in needles:
        assert n in r.output, r.output


@pytest.mark.parametrize("label", ["5", "-1", "1.5", "true"])
def test_segment_and_track_reject_the_same_labels(media, tmp_path, label):
    video, img = media
    r = runner.invoke(app, ["segment", str(img), "--point", f"10,10,{label}", "--out", str(tmp_path / "s")])
    _one_line_exit_2(r, "label")
    r = runner.invoke(app, ["track", str(video), "--point", f"10,10,{label}", "--out", str(tmp_path / "t")])
    _one_line_exit_2(r, "label")


def test_user_errors_are_one_line_exit_2(media, tmp_path):
    video, img = media
    missing = tmp_path / "nope.pt"
    for cmd, arg in (("track", video), ("segment", img)):
        r = runner.invoke(
            app,
            [cmd, str(arg), "--point", "10,10", "--checkpoint", str(missing), "--out", str(tmp_path / cmd)],
        )
        _one_line_exit_2(r, "nope.pt")
        r = runner.invoke(
            app,
            [
                cmd,
                str(arg),
                "--point",
                "10,10",
                "--bundle",
                str(tmp_path / "nobundle"),
                "--out",
                str(tmp_path / cmd),
            ],
        )
        _one_line_exit_2(r, "nobundle")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    r = runner.invoke(app, ["segment", str(img), "--point", "10,10", "--out", str(a_file)])
    _one_line_exit_2(r, "file.txt")
    nine = [a for i in range(9) for a in ("--point", f"{10 + i},10")]
    r = runner.invoke(app, ["track", str(video), *nine, "--out", str(tmp_path / "nine")])
    _one_line_exit_2(r, "max-points")


def test_debug_shows_the_traceback(media, tmp_path):
    video, _ = media
    args = [
        "track",
        str(video),
        "--point",
        "10,10",
        "--checkpoint",
        str(tmp_path / "nope.pt"),
        "--out",
        str(tmp_path / "o"),
    ]
    r = runner.invoke(app, ["--debug", *args])
    assert r.exit_code != 0 and r.exception is not None and not isinstance(r.exception, SystemExit)
    r = runner.invoke(app, args)  # --debug does not leak into the next invocation
    _one_line_exit_2(r)


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("edgetam-export ")


def test_onnx_format_needs_a_bundle(media, tmp_path):
    video, img = media
    for cmd, arg in (("track", video), ("segment", img)):
        r = runner.invoke(
            app, [cmd, str(arg), "--point", "10,10", "--onnx-format", "ort", "--out", str(tmp_path / cmd)]
        )
        _one_line_exit_2(r, "--onnx-format chooses among a bundle's ONNX files")
