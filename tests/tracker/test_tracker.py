"""The tracker on the PyTorch runtime reproduces the official video predictor; the bank is bounded."""

from __future__ import annotations

import numpy as np
import pytest

from edgetam_export.procedural import procedural_frame, procedural_video
from edgetam_export.tracker import Tracker
from edgetam_export.tracker.bank import MemoryEntry, assemble_bank
from edgetam_export.verify.metrics import mask_iou
from edgetam_export.verify.tolerances import MASK_IOU
from tests.tracker.fake_runtime import FakeRuntime


@pytest.fixture(scope="module")
def model():
    from edgetam_export.models import build_edgetam

    return build_edgetam()


@pytest.fixture(scope="module")
def golden_run(reference_run):
    """The developer golden scenario (click (260, 380) on frame 0, 12 frames), shared per session."""
    first = reference_run.outputs[0]
    return None, reference_run.session, first, reference_run.outputs


def test_golden_track_single(golden_run, golden, parity):
    g = golden("track_single")
    _, session, first, outputs = golden_run
    assert [o.frame_idx for o in outputs] == g["frames"].tolist()
    np.testing.assert_array_equal(first.pred_masks, outputs[0].pred_masks)
    for o in outputs:
        t = o.frame_idx
        ref = g["low_res_masks"][t, 0].astype(np.float32)
        ours = o.pred_masks[0, 0]
        assert mask_iou(ref, ours) >= MASK_IOU[("official", "fp32")], t
        # golden logits are stored as fp16: compare after the same rounding
        parity.check(
            f"track_single.low_res_masks[{t}]",
            ref,
            ours.astype(np.float16).astype(np.float32),
            "official",
            "fp32",
            "fp16_stored",
        )
        parity.check(
            f"track_single.object_score_logits[{t}]",
            g["object_score_logits"][t],
            o.object_score_logits[:, 0],
            "official",
            "fp32",
            "scores",
        )
        fo = session.outputs["cond" if t == 0 else "noncond"][t]
        parity.check(
            f"track_single.obj_ptr[{t}]", g["obj_ptr"][t], fo.obj_ptr, "official", "fp32", "features"
        )
        assert int(fo.chosen[0]) == int(g["chosen_candidate"][t, 0]), t
        assert np.sign(o.object_score_logits[0, 0]) == np.sign(g["object_score_logits"][t, 0])
    for k, t in enumerate(g["memory_frames"]):
        fo = session.outputs["cond" if t == 0 else "noncond"][int(t)]
        parity.check(
            f"track_single.memory_features[{t}]",
            g["memory_features"][k],
            fo.maskmem[0],
            "official",
            "fp32",
            "memory",
        )


def test_bank_occupancy_matches_official(golden):
    """assemble_bank fills exactly the slots the official predictor used on frames 1..11."""
    g = golden("track_single")
    entry = MemoryEntry(np.zeros((512, 64), np.float32), np.zeros(256, np.float32))
    cond, noncond = {0: entry}, {}
    for k, t in enumerate(range(1, 12)):
        bank = assemble_bank(
            t,
            cond,
            noncond,
            reverse=False,
            num_frames=12,
            max_cond_frames=2,
            num_spatial_slots=8,
            num_ptr_slots=17,
        )
        assert int(bank.slot_valid.sum()) == int(g["memattn_num_spatial_mem"][k])
        assert 4 * int(bank.ptr_valid.sum()) == int(g["memattn_num_ptr_tokens"][k])
        assert 512 * int(bank.slot_valid.sum()) + 4 * int(bank.ptr_valid.sum()) == int(
            g["memattn_num_memory_tokens"][k]
        )
        noncond[t] = entry


def test_bank_rules():
    e = MemoryEntry(np.zeros((512, 64), np.float32), np.zeros(256, np.float32))
    kw = dict(max_cond_frames=2, num_spatial_slots=8, num_ptr_slots=17)
    # reverse from cond frame 10 at frame 7: tracked 8, 9 behind; future cond frame 10 gives
    # spatial memory (tpos 6) and a pointer (reverse: t >= frame_idx counts as "past")
    b = assemble_bank(7, {10: e}, {8: e, 9: e}, reverse=True, num_frames=12, **kw)
    assert b.spatial_frames == [10, 8, 9] and b.ptr_frames == [10, 8, 9]
    assert (
        b.mem_tpos[0, 0].argmax() == 6 and b.mem_tpos[0, 1].argmax() == 0 and b.mem_tpos[0, 2].argmax() == 1
    )
    # forward at frame 3 with cond frames 0 and 8: frame 8 is spatial memory but not a pointer
    b = assemble_bank(3, {0: e, 8: e}, {1: e, 2: e}, reverse=False, num_frames=12, **kw)
    assert b.spatial_frames == [0, 8, 2, 1] and b.ptr_frames == [0, 2, 1]
    # three cond frames with 2 slots: closest before and after are kept, the third acts as recent memory
    b = assemble_bank(5, {0: e, 4: e, 9: e}, {}, reverse=False, num_frames=12, **kw)
    assert b.spatial_frames == [4, 9, 0] and b.mem_tpos[0, 2].argmax() == 4  # frame 0 is 5 steps back
    assert b.ptr_frames == [4, 0]
    b = assemble_bank(8, {0: e, 3: e, 9: e}, {}, reverse=False, num_frames=12, **kw)
    assert b.spatial_frames == [3, 9]
    # invalid slots are zero and flagged
    assert b.slot_valid.tolist() == [[1, 1, 0, 0, 0, 0, 0, 0]] and not b.mem[0, 1024:].any()
    with pytest.raises(ValueError, match="slots"):
        assemble_bank(
            20,
            {0: e},
            {t: e for t in range(20)},
            reverse=False,
            num_frames=30,
            max_cond_frames=1,
            num_spatial_slots=7,
            num_ptr_slots=10,
        )


@pytest.fixture(scope="module")
def fake_tracker(model):
    from edgetam_export.runtime.torch_runtime import TorchRuntime

    ref = TorchRuntime(model)
    return Tracker(FakeRuntime(ref.contracts, ref.constants), fill_hole_area=0)


def test_streaming_300_frames_keeps_bank_bounded(fake_tracker):
    tracker = fake_tracker
    session = tracker.init_video_session()
    small = np.zeros((64, 80, 3), np.uint8)
    tracker.add_inputs_to_inference_session(
        session, 0, 1, input_points=[[[[40, 30]]]], input_labels=[[[1]]], original_size=(64, 80)
    )
    sizes = []
    for t in range(300):
        out = tracker(session, frame=small + (t % 7))
        assert out.frame_idx == t and out.pred_masks.shape == (1, 1, 256, 256)
        sizes.append(session.bank_sizes())
    steady = sizes[20:]
    assert all(s == steady[0] for s in steady), "bank grows while streaming"
    assert steady[0]["cond"] == 1 and steady[0]["noncond"] <= 16 and steady[0]["frames_held"] == 1
    assert tracker.runtime.bank_log[-1] == (7, 16)  # steady state: 1 cond + 6 recent slots, 1 + 15 pointers


def test_streaming_equals_offline(model):
    frames = procedural_video(3)
    tracker = Tracker.from_reference(model, fill_hole_area=0)
    video = tracker.init_video_session(video=frames)
    tracker.add_inputs_to_inference_session(video, 0, 1, input_points=[[[[260, 380]]]], input_labels=[[[1]]])
    offline = [o.pred_masks for o in tracker.propagate_in_video_iterator(video)]
    stream = tracker.init_video_session()
    tracker.add_inputs_to_inference_session(
        stream, 0, 1, input_points=[[[[260, 380]]]], input_labels=[[[1]]], original_size=(1024, 1024)
    )
    online = [tracker(stream, frame=f).pred_masks for f in frames]
    for a, b in zip(offline, online, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_inputs_are_clear(fake_tracker):
    tr = fake_tracker
    s = tr.init_video_session(video=[procedural_frame(0)] * 2)
    with pytest.raises(IndexError, match="out of range"):
        tr.add_inputs_to_inference_session(s, 5, 1, input_points=[[[[1, 2]]]], input_labels=[[[1]]])
    with pytest.raises(ValueError, match="together"):
        tr.add_inputs_to_inference_session(s, 0, 1, input_points=[[[[1, 2]]]])
    with pytest.raises(ValueError, match="points but"):
        tr.add_inputs_to_inference_session(s, 0, 1, input_points=[[[[1, 2], [3, 4]]]], input_labels=[[[1]]])
    with pytest.raises(ValueError, match="labels must be 0"):
        tr.add_inputs_to_inference_session(s, 0, 1, input_points=[[[[1, 2]]]], input_labels=[[[7]]])
    with pytest.raises(ValueError, match="objects given for 2"):
        tr.add_inputs_to_inference_session(s, 0, [1, 2], input_points=[[[[1, 2]]]], input_labels=[[[1]]])
    with pytest.raises(ValueError, match="x1 < x0"):
        tr.add_inputs_to_inference_session(s, 0, 1, input_boxes=[[[50, 50, 10, 60]]])
    with pytest.raises(ValueError, match="holds 7"):
        tr.add_inputs_to_inference_session(
            s, 0, 1, input_points=[[[[i, i] for i in range(8)]]], input_labels=[[[1] * 8]]
        )
    with pytest.raises(ValueError, match="no prompts"):
        list(tr.propagate_in_video_iterator(s))
    with pytest.raises(KeyError, match="unknown object id 9"):
        tr.remove_object(s, 9)
    tr.add_inputs_to_inference_session(s, 0, 1, input_points=[[[[1, 2]]]], input_labels=[[[1]]])
    list(tr.propagate_in_video_iterator(s))
    with pytest.raises(ValueError, match="after tracking started"):
        tr.add_inputs_to_inference_session(s, 1, 2, input_points=[[[[1, 2]]]], input_labels=[[[1]]])
    with pytest.raises(ValueError, match="whole video"):
        tr(s, frame=procedural_frame(0))


def test_multi_object_bookkeeping(fake_tracker):
    tr = fake_tracker
    s = tr.init_video_session(video=[procedural_frame(0)] * 4)
    tr.add_inputs_to_inference_session(
        s, 0, [3, 5], input_points=[[[[10, 10]], [[500, 500]]]], input_labels=[[[1], [1]]]
    )
    tr.add_inputs_to_inference_session(s, 2, 7, input_masks=[np.ones((1024, 1024), bool)])
    outs = list(tr.propagate_in_video_iterator(s))
    assert [o.frame_idx for o in outs] == [0, 1, 2, 3] and outs[0].obj_ids == [3, 5, 7]
    # object 7 has no prompt on frame 0: placeholder mask, score +10 (official consolidation)
    assert (outs[0].pred_masks[2] == -1024).all() and outs[0].object_score_logits[2, 0] == 10
    assert tr.remove_object(s, 5) == [3, 7]
    assert all(fo.pred_masks.shape[0] == 2 for fo in s.outputs["noncond"].values())
    masks = tr.post_process_masks([outs[1].pred_masks], [(48, 64)])[0]
    assert masks.shape == (3, 1, 48, 64) and masks.dtype == bool
