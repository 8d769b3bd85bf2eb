"""Per-frame wall time of the official predictor tracking procedural frames (the speed baseline of issue 15).

The official ``SAM2VideoPredictor`` (synthetic weights, CPU fp32) gets clicks on frame 0 for
``objects`` objects (the procedural shapes' centres), runs the prompt, then ``propagate_in_video``;
each yielded frame's wall time (time between yields) is recorded. Frames are preprocessed in
``init_state`` as the official loader does, so the timed frames hold no preprocessing.

:func:`serve_frames` steps the same run one frame per request (a line on stdin, answered by the
frame's milliseconds on stdout), so a caller can interleave other trackers frame by frame.
"""

from __future__ import annotations

import sys
import time

import torch

from .inputs import frames_tensor
from .patches import TensorVideo, build_official_predictor, official_session

# procedural frame 0 shape centres (x, y): square, ellipse, disk (edgetam_export.procedural)
CLICKS = ((700, 260), (480, 820), (260, 380))


def _timed_frames(num_frames: int, objects: int, threads: int):
    """Yield the prompt call's ms, then each tracked frame's ms (frames 1..num_frames-1)."""
    predictor = build_official_predictor(0, threads=threads)
    frames = frames_tensor(num_frames)
    with official_session(predictor, TensorVideo(frames, 1024, 1024)) as state, torch.inference_mode():
        t0 = time.perf_counter()
        for k in range(objects):
            x, y = CLICKS[k]
            predictor.add_new_points_or_box(
                state, frame_idx=0, obj_id=k + 1, points=[[x, y]], labels=[1], normalize_coords=True
            )
        yield 1e3 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for frame_idx, _, _ in predictor.propagate_in_video(state):
            now = time.perf_counter()
            if frame_idx > 0:
                yield 1e3 * (now - t0)
            t0 = now


def official_frame_times(num_frames: int, objects: int = 1, threads: int = 2) -> dict:
    """``{"prompt_ms", "frame_ms": [...]}``: frame 0's prompt call and frames 1..num_frames-1 tracked."""
    it = _timed_frames(num_frames, objects, threads)
    prompt = next(it)
    return {"prompt_ms": prompt, "frame_ms": list(it), "threads": threads, "objects": objects}


def serve_frames(num_frames: int, objects: int = 1, threads: int = 2) -> None:
    """Build and prompt (then print ``ready``); each stdin line tracks one more frame and prints its ms.

    Note: the official ``propagate_in_video`` runs frame t's work when asked for frame t, but its
    generator only returns control after the work, so the time between requests is the frame's time.
    """
    it = _timed_frames(num_frames, objects, threads)
    next(it)
    # the first tracked frame's work happens inside the first next(); time each next() from outside
    print("ready", flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            print("done", flush=True)
            return
        print(f"{1e3 * (time.perf_counter() - t0):.3f}", flush=True)
