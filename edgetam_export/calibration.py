"""Calibration data for quantized exports: every graph's real inputs, captured from a PyTorch-reference tracking run.

The reference (the float32 export wrappers, run eagerly) tracks two objects (a click and a box
on frame 0) through a short clip, and a :class:`~edgetam_export.runtime.recording.RecordingRuntime`
records each graph call's feeds: frames for the image encoder, the decoder inputs of prompted
and tracked frames, masks into the memory encoder, and the memory banks as they fill for memory
attention. The clip is the procedural video by default (deterministic: the same frames and
prompts on every run) or the user's footage (``--calibration VIDEO``, the right choice with
real weights).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .exporters.quantization import Calibration
from .fileio import file_sha256
from .procedural import procedural_frame
from .runtime.base import Runtime
from .runtime.recording import RecordingRuntime
from .runtime.torch_runtime import TorchRuntime
from .tracker import Tracker
from .video import read_video

# Calibration clip length: 6 frames x 2 objects give 6 image-encoder, 12 prompt-decoder and
# memory-encoder and 10 memory-attention samples in ~10 s of reference compute.
DEFAULT_FRAMES = 6
# Prompts on procedural frame 0 (1024-pixel space): a positive click on the red disk's centre
# and a box around the green square (also the verify clip's and the accuracy scenario's).
CLICK_XY = (260.0, 380.0)
BOX_XYXY = (570.0, 130.0, 830.0, 390.0)


def prompts_for(width: int, height: int, procedural: bool) -> tuple[tuple[float, float], tuple[float, ...]]:
    """``(click xy, box xyxy)`` in the video's pixel space: the procedural objects, or for user
    footage a click at the centre and a box around the upper-left quarter's centre region."""
    if procedural:
        return CLICK_XY, BOX_XYXY
    return (width / 2, height / 2), (0.1 * width, 0.1 * height, 0.45 * width, 0.45 * height)


def capture(
    reference: Runtime, frames: Sequence[np.ndarray], source: str, procedural: bool = False
) -> Calibration:
    """Track ``frames`` ((H, W, 3) uint8 RGB) with ``reference`` (object 1 clicked, object 2 boxed on
    frame 0) and return every call's inputs as calibration samples, in contract order."""
    if not len(frames):
        raise ValueError("calibration needs at least one frame")
    rec = RecordingRuntime(reference)
    tracker = Tracker(rec, fill_hole_area=0)
    session = tracker.init_video_session(video=list(frames))
    h, w = np.asarray(frames[0]).shape[:2]
    click, box = prompts_for(w, h, procedural)
    tracker.add_inputs_to_inference_session(
        session, frame_idx=0, obj_ids=1, input_points=[[list(click)]], input_labels=[[1]]
    )
    if tracker.max_points >= 3:  # a box takes two point slots plus the padding slot
        tracker.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=2, input_boxes=[list(box)])
    for _ in tracker.propagate_in_video_iterator(session):
        pass
    import torch

    samples: dict[str, list[tuple]] = {g: [] for g in reference.contracts}
    for graph, feeds, _ in rec.log:
        names = reference.contracts[graph].input_names
        samples[graph].append(
            tuple(torch.from_numpy(np.ascontiguousarray(feeds[n], np.float32)) for n in names)
        )
    return Calibration(samples, source)


def procedural_frames(num_frames: int = DEFAULT_FRAMES) -> list[np.ndarray]:
    return [procedural_frame(t) for t in range(num_frames)]


def check_video(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` (one line) unless ``path`` is a readable video with at least one frame."""
    from .video import video_info

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--calibration {p}: no such video file")
    video_info(p, max_frames=1)


def calibrator(video: str | os.PathLike | None = None, num_frames: int = DEFAULT_FRAMES):
    """The ``calibrate`` callback for :func:`~edgetam_export.bundle.export_bundle`.

    Returns ``calibrate(modules, constants, options) -> Calibration``, which runs the modules
    being exported as the reference over ``num_frames`` procedural frames (``video`` None) or
    the first ``num_frames`` frames of ``video``.
    """

    def calibrate(modules: Mapping, constants: Mapping, options: dict) -> Calibration:
        reference = TorchRuntime.from_modules(dict(modules), dict(constants), options)
        if video is None:
            return capture(
                reference,
                procedural_frames(num_frames),
                f"procedural frames 0..{num_frames - 1} (deterministic), 2 objects: click + box",
                procedural=True,
            )
        p = Path(video)
        frames, _ = read_video(p, max_frames=num_frames)
        return capture(
            reference,
            frames,
            f"video {p.name} (sha256 {file_sha256(p)[:16]}, frames 0..{len(frames) - 1}), "
            "2 objects: centre click + box",
        )

    return calibrate
