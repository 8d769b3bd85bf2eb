"""One validation of user prompts for the tracker, ``segment`` and the CLI; failed calls change nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from edgetam_export.procedural import procedural_frame
from edgetam_export.tracker import Tracker
from edgetam_export.tracker.prompts import validate_box, validate_points
from tests.tracker.fake_runtime import FakeRuntime


@pytest.fixture(scope="module")
def fake_tracker():
    from edgetam_export.models import build_edgetam

    from edgetam_export.runtime.torch_runtime import TorchRuntime

    ref = TorchRuntime(build_edgetam())
    return Tracker(FakeRuntime(ref.contracts, ref.constants), fill_hole_area=0)


@pytest.mark.parametrize(
    "points, labels, match",
    [
        ([[1, 2]], [5], "labels must be 0"),
        ([[1, 2]], [-1], "labels must be 0"),
        ([[1, 2]], [1.5], "labels must be 0"),
        ([[1, 2]], [1.0], "labels must be 0"),
        ([[1, 2]], [True], "labels must be 0"),
        ([[1, 2]], ["1"], "labels must be 0"),
        ([["64", 2]], [1], "must be numbers"),
        ([[True, 2]], [1], "must be numbers"),
        ([[1, 2, 3]], [1], r"\[x, y\]"),
        ([[1]], [1], r"\[x, y\]"),
        ([[1, 2], [3, 4]], [1], "2 points but 1 labels"),
        ([[np.nan, 2]], [1], "finite"),
        (np.array([["1", "2"]]), [1], "must be numbers"),
        ([[1, 2]], np.array([1.0]), "integers 0 or 1"),
    ],
)
def test_validate_points_rejects(points, labels, match):
    with pytest.raises(ValueError, match=match):
        validate_points(points, labels)


def test_validate_points_accepts_ints_floats_numpy():
    pts, lab = validate_points([[1, 2.5], [np.float32(3), np.int64(4)]], [1, np.int64(0)])
    assert pts.dtype == np.float32 and pts.tolist() == [[1, 2.5], [3, 4]] and lab.tolist() == [1, 0]
    pts, lab = validate_points(np.array([[1.0, 2.0]]), np.array([1]))
    assert lab.dtype == np.int64
    with pytest.raises(ValueError, match="4 numbers"):
        validate_box([1, 2, "3", 4])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_points=[[[[1, 2]]]], input_labels=[[[5]]]),
        dict(input_points=[[[[1, 2]]]], input_labels=[[[True]]]),
        dict(input_points=[[[["64", 2]]]], input_labels=[[[1]]]),
        dict(input_points=[[[[1, 2, 3]]]], input_labels=[[[1]]]),
        dict(input_boxes=[[[1, 2, "3", 4]]]),
    ],
)
def test_tracker_uses_the_one_validation(fake_tracker, kwargs):
    s = fake_tracker.init_video_session(video=[procedural_frame(0)] * 2)
    with pytest.raises(ValueError):
        fake_tracker.add_inputs_to_inference_session(s, 0, 1, **kwargs)


def test_failed_call_leaves_the_session_unchanged(fake_tracker):
    tr = fake_tracker
    s = tr.init_video_session()
    before = copy.deepcopy(s.__dict__)
    with pytest.raises(ValueError, match="labels must be 0"):
        tr.add_inputs_to_inference_session(
            s, 0, 1, input_points=[[[[1, 2]]]], input_labels=[[[7]]], original_size=(48, 64)
        )
    assert s.video_height is None and s.video_width is None and s.obj_ids == [] and s.pending == []
    assert s.__dict__.keys() == before.keys()
    v = tr.init_video_session(video=[procedural_frame(0)] * 2)
    with pytest.raises(ValueError):
        tr.add_inputs_to_inference_session(
            v, 0, 1, input_points=[[[[1, 2]]]], input_labels=[[[2]]], original_size=(10, 10)
        )
    assert (v.video_height, v.video_width) == (1024, 1024) and v.obj_ids == []


def test_streamed_frame_of_another_size_is_refused(fake_tracker):
    tr = fake_tracker
    s = tr.init_video_session()
    tr.add_inputs_to_inference_session(
        s, 0, 1, input_points=[[[[40, 30]]]], input_labels=[[[1]]], original_size=(64, 80)
    )
    with pytest.raises(ValueError, match=r"96x64 .* 80x64"):
        tr(s, frame=np.zeros((64, 96, 3), np.uint8))
    assert s.num_streamed == 0
    tr(s, frame=np.zeros((64, 80, 3), np.uint8))
    with pytest.raises(ValueError, match=r"frame 1 is 80x48"):
        tr(s, frame=np.zeros((48, 80, 3), np.uint8))
    # without a declared size, the first frame fixes it
    s2 = tr.init_video_session()
    tr(s2, frame=np.zeros((64, 80, 3), np.uint8))
    with pytest.raises(ValueError, match="80x64"):
        tr(s2, frame=np.zeros((32, 40, 3), np.uint8))
