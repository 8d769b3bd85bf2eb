"""Several inputs for one object on one frame, added before the frame runs, refine like the official predictor."""

from __future__ import annotations

import numpy as np
import pytest

from edgetam_export.procedural import procedural_video
from edgetam_export.tracker import Tracker

NEG, POS = [[[[300, 420]]]], [[[[250, 360]]]]


@pytest.fixture(scope="module")
def tracker():
    from edgetam_export.models import build_edgetam

    return Tracker.from_reference(build_edgetam(), fill_hole_area=0, feature_cache_size=3)


def _tracked_session(tracker):
    s = tracker.init_video_session(video=procedural_video(3))
    tracker.add_inputs_to_inference_session(s, 0, 1, input_points=[[[[260, 380]]]], input_labels=[[[1]]])
    list(tracker.propagate_in_video_iterator(s))
    return s


def _refine(tracker, s, eager: bool):
    """A negative then a positive click on tracked frame 1, each its own call, then propagate from 1.

    The official ``add_new_points_or_box`` runs the decoder on every call with the previous
    logits as mask prompt; ``eager`` runs the frame between the calls to reproduce that, the lazy
    flow must give exactly the same result.
    """
    tracker.add_inputs_to_inference_session(
        s, 1, 1, input_points=NEG, input_labels=[[[0]]], clear_old_inputs=False
    )
    if eager:
        tracker(s, frame_idx=1)
    tracker.add_inputs_to_inference_session(
        s, 1, 1, input_points=POS, input_labels=[[[1]]], clear_old_inputs=False
    )
    first = tracker(s, frame_idx=1).pred_masks if eager else None
    outs = list(tracker.propagate_in_video_iterator(s, start_frame_idx=1))
    if first is not None:
        np.testing.assert_array_equal(first, outs[0].pred_masks)
    return outs


def test_two_clicks_before_the_frame_runs_equal_the_eager_sequence(tracker):
    lazy = _refine(tracker, _tracked_session(tracker), eager=False)
    eager_session = _tracked_session(tracker)
    eager = _refine(tracker, eager_session, eager=True)
    assert [o.frame_idx for o in lazy] == [1, 2]
    for a, b in zip(lazy, eager, strict=True):
        np.testing.assert_array_equal(a.pred_masks, b.pred_masks)
        np.testing.assert_array_equal(a.object_score_logits, b.object_score_logits)
    # both clicks were kept, in order, as the frame's prompt
    prompt = eager_session.point_inputs[0][1]
    assert prompt.labels.tolist() == [0, 1]
