"""Long videos in bounded memory: a lazily decoded video plus a pruned bank track exactly like a held one."""

from __future__ import annotations

import numpy as np
import pytest

from edgetam_export.procedural import procedural_frame
from edgetam_export.tracker import Tracker
from edgetam_export.tracker.editing import STREAM_KEEP, prune_video
from edgetam_export.tracker.session import NONCOND
from edgetam_export.video import LazyVideo, read_video, write_video
from tests.tracker.fake_runtime import FakeRuntime

N = 40


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = [procedural_frame(t)[::16, ::16].copy() for t in range(N)]  # (64, 64, 3)
    return write_video(tmp_path_factory.mktemp("long") / "clip.mp4", frames, fps=10)


@pytest.fixture(scope="module")
def runtime_parts():
    from edgetam_export.models import build_edgetam

    from edgetam_export.runtime.torch_runtime import TorchRuntime

    ref = TorchRuntime(build_edgetam())
    return ref.contracts, ref.constants


def _track(parts, video, start: int, prune: bool):
    rt = FakeRuntime(*parts)
    tracker = Tracker(rt, fill_hole_area=0)
    s = tracker.init_video_session(video=video)
    tracker.add_inputs_to_inference_session(s, start, 1, input_points=[[[[20, 30]]]], input_labels=[[[1]]])
    protect = range(start, start + STREAM_KEEP + 1) if start > 0 else range(0)
    masks, peak_bank, peak_held = {}, 0, 0
    for reverse in (False, True) if start > 0 else (False,):
        for o in tracker.propagate_in_video_iterator(s, start_frame_idx=start, reverse=reverse):
            masks[o.frame_idx] = o.pred_masks
            if prune:
                prune_video(s, o.frame_idx, reverse, protect)
            sizes = s.bank_sizes()
            peak_bank = max(peak_bank, sizes[NONCOND])
            peak_held = max(peak_held, sizes["frames_held"])
    return masks, rt.bank_log, peak_bank, peak_held


@pytest.mark.parametrize("start", [0, 25])
def test_lazy_pruned_tracking_equals_held_tracking(clip, runtime_parts, start):
    held, _ = read_video(clip)
    ref_masks, ref_log, ref_peak, _ = _track(runtime_parts, held, start, prune=False)
    lazy = LazyVideo(clip, block=8)
    masks, log, peak, peak_held = _track(runtime_parts, lazy, start, prune=True)
    assert sorted(masks) == list(range(N))
    # Same memory bank seen at every step (slots and pointers), same masks.
    assert log == ref_log
    for t in range(N):
        np.testing.assert_array_equal(masks[t], ref_masks[t])
    # Bounded: the held session kept every tracked frame, the pruned one a window.
    assert ref_peak >= N - 2
    assert peak <= 2 * (STREAM_KEEP + 2)
    assert peak_held <= 8


def test_lazy_video_decodes_on_demand(clip):
    held, fps = read_video(clip)
    lazy = LazyVideo(clip, max_frames=30, block=4)
    assert len(lazy) == 30 and (lazy.height, lazy.width) == held[0].shape[:2] and lazy.fps == fps
    for t in [0, 1, 2, 29, 13, 12, 11, 10, 9, 3, 0]:
        np.testing.assert_array_equal(lazy[t], held[t])
        assert lazy.num_held <= 4
    with pytest.raises(IndexError, match="30 frames"):
        lazy[30]
