"""Editing a session's objects and prompts, and pruning a stream's or a long video's bank: operations on session state alone."""

from __future__ import annotations

from .session import COND, NONCOND, InferenceSession

STREAM_KEEP = 15  # tracked frames kept behind the latest one: pointers reach 15 frames back


def remove_object(s: InferenceSession, obj_id: int) -> list[int]:
    """Remove an object and its inputs and results; returns the remaining object ids."""
    i = s.obj_idx(obj_id)
    if len(s.obj_ids) == 1:
        s.reset_inference_session()
        return []
    for t in sorted(set(s.point_inputs[i]) | set(s.mask_inputs[i])):
        clear_prompts_in_frame(s, t, obj_id)
    keep = [j for j in range(len(s.obj_ids)) if j != i]
    s.obj_ids.pop(i)
    for d in (s.point_inputs, s.mask_inputs, s.temp):
        items = [d[j] for j in keep]
        d.clear()
        d.update(enumerate(items))
    for key in (COND, NONCOND):
        for t, fo in list(s.outputs[key].items()):
            s.outputs[key][t] = fo.take(keep)
    s.pending = [p for p in s.pending if p.obj_id != obj_id]
    return list(s.obj_ids)


def clear_prompts_in_frame(s: InferenceSession, frame_idx: int, obj_id: int) -> None:
    """Remove ``obj_id``'s inputs on ``frame_idx``; a frame left without inputs stops conditioning."""
    i = s.obj_idx(obj_id)
    s.point_inputs[i].pop(frame_idx, None)
    s.mask_inputs[i].pop(frame_idx, None)
    s.temp[i][COND].pop(frame_idx, None)
    s.temp[i][NONCOND].pop(frame_idx, None)
    s.pending = [p for p in s.pending if not (p.frame_idx == frame_idx and p.obj_id == obj_id)]
    has_input = any(
        frame_idx in s.point_inputs[j] or frame_idx in s.mask_inputs[j] for j in range(len(s.obj_ids))
    )
    if not has_input:
        s.consolidated[COND].discard(frame_idx)
        s.consolidated[NONCOND].discard(frame_idx)
        out = s.outputs[COND].pop(frame_idx, None)
        if out is not None:
            s.outputs[NONCOND][frame_idx] = out
            s.frames_already_tracked.pop(frame_idx, None)
        if not s.outputs[COND]:
            s.reset_tracking_results()


def prune_stream(s: InferenceSession, t: int, keep: int = STREAM_KEEP) -> None:
    """Keep the bank bounded: drop old images and tracked outputs no future frame can reach."""
    if t >= 1:
        s.frames[t - 1] = None
    oldest = t - keep
    for f in [f for f in s.outputs[NONCOND] if f < oldest]:
        del s.outputs[NONCOND][f]
        s.consolidated[NONCOND].discard(f)
    for f in [f for f in s.frames_already_tracked if f < oldest and f not in s.outputs[COND]]:
        del s.frames_already_tracked[f]


def prune_video(
    s: InferenceSession, t: int, reverse: bool, protect: range = range(0), keep: int = STREAM_KEEP
) -> None:
    """Bound a whole-video session's bank while propagating: drop tracked outputs no later frame can reach.

    After frame ``t`` of a pass in direction ``reverse``, outputs more than ``keep`` frames
    behind ``t`` are dropped, except conditioning frames and the frames in ``protect`` (give
    ``range(start, start + keep + 1)`` when a reverse pass from ``start`` follows: the official
    reverse pass reads the forward pass's outputs just after ``start``). Masks, memories and
    pointers identical to keeping everything; earlier results are recomputed if asked again.
    """
    behind = (lambda f: f > t + keep) if reverse else (lambda f: f < t - keep)
    for f in [f for f in s.outputs[NONCOND] if behind(f) and f not in protect]:
        del s.outputs[NONCOND][f]
        s.consolidated[NONCOND].discard(f)
    for f in [
        f for f in s.frames_already_tracked if behind(f) and f not in protect and f not in s.outputs[COND]
    ]:
        del s.frames_already_tracked[f]
