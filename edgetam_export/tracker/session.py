"""The inference session: everything the tracker keeps between calls, as plain data.

Per-frame outputs are stored batched over objects (object axis = ``session.obj_ids``
order), exactly like the official video predictor, because conditioning frames are shared
by all objects: consolidating a prompted frame gives objects without a prompt there a
placeholder output (mask −1024, score +10, pointer ``no_obj_ptr``).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class FrameKind(str, Enum):
    """Which half of the bank a frame's output lives in: prompted (conditioning) or tracked."""

    COND = "cond"
    NONCOND = "noncond"

    # Hash and print as the plain string, so ``outputs["cond"]`` and ``outputs[FrameKind.COND]`` agree.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


COND, NONCOND = FrameKind.COND, FrameKind.NONCOND


@dataclass
class FrameOutput:
    """All objects' results on one frame.

    pred_masks (N, 1, 256, 256) low-res logits (hole-filled), obj_ptr (N, 256),
    object_score_logits (N, 1), maskmem (N, 512, 64) memory tokens or None (not encoded yet),
    chosen (N,) multimask candidate picked by a tracking step (0..2), -1 for prompted frames.
    """

    pred_masks: np.ndarray
    obj_ptr: np.ndarray
    object_score_logits: np.ndarray
    maskmem: np.ndarray | None = None
    chosen: np.ndarray | None = None

    def take(self, keep: list[int]) -> FrameOutput:
        """The same output restricted to object rows ``keep``."""
        return FrameOutput(
            self.pred_masks[keep],
            self.obj_ptr[keep],
            self.object_score_logits[keep],
            None if self.maskmem is None else self.maskmem[keep],
            None if self.chosen is None else self.chosen[keep],
        )


@dataclass
class ObjectOutput:
    """One object's not-yet-consolidated prompt result: pred_masks (1,1,256,256), obj_ptr (1,256), score (1,1)."""

    pred_masks: np.ndarray
    obj_ptr: np.ndarray
    object_score_logits: np.ndarray


@dataclass(eq=False)
class PointPrompt:
    """Points in model space (n, 2) (x, y in 0..1024) with labels (n,) in {0, 1, 2, 3}."""

    points: np.ndarray
    labels: np.ndarray


@dataclass(eq=False)
class PendingInput:
    """An input added to the session and not yet run (compared by identity: it holds arrays)."""

    frame_idx: int
    obj_id: int
    points: PointPrompt | None = None
    mask: np.ndarray | None = None  # (1, 1, 1024, 1024) {0, 1}
    clear_old: bool = True


@dataclass
class InferenceSession:
    """State of one video (or stream) being tracked. Create it with ``Tracker.init_video_session``."""

    frames: list[np.ndarray] | None
    video_height: int | None
    video_width: int | None
    streaming: bool = False
    obj_ids: list[int] = field(default_factory=list)
    point_inputs: dict[int, dict[int, PointPrompt]] = field(default_factory=dict)
    mask_inputs: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    temp: dict[int, dict[str, dict[int, ObjectOutput]]] = field(default_factory=dict)
    outputs: dict[FrameKind, dict[int, FrameOutput]] = field(default_factory=lambda: {COND: {}, NONCOND: {}})
    consolidated: dict[FrameKind, set[int]] = field(default_factory=lambda: {COND: set(), NONCOND: set()})
    frames_already_tracked: dict[int, bool] = field(default_factory=dict)  # frame -> reverse
    tracking_has_started: bool = False
    pending: list[PendingInput] = field(default_factory=list)
    num_streamed: int = 0
    feature_cache: OrderedDict = field(default_factory=OrderedDict)
    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def num_frames(self) -> int:
        """Frames in the video (frames seen so far when streaming)."""
        return self.num_streamed if self.streaming else len(self.frames or [])

    def obj_idx(self, obj_id: int) -> int:
        try:
            return self.obj_ids.index(obj_id)
        except ValueError:
            raise KeyError(f"unknown object id {obj_id}; this session has objects {self.obj_ids}") from None

    def add_object(self, obj_id: int) -> int:
        """Index of ``obj_id``, registering it if new (only before tracking starts)."""
        if obj_id in self.obj_ids:
            return self.obj_ids.index(obj_id)
        if self.tracking_has_started:
            raise ValueError(
                f"cannot add new object id {obj_id} after tracking started (objects: {self.obj_ids}); "
                "call reset_inference_session() first"
            )
        self.obj_ids.append(obj_id)
        idx = len(self.obj_ids) - 1
        self.point_inputs[idx] = {}
        self.mask_inputs[idx] = {}
        self.temp[idx] = {COND: {}, NONCOND: {}}
        return idx

    def reset_tracking_results(self) -> None:
        """Drop all inputs and results but keep the object ids (official ``_reset_tracking_results``)."""
        for d in (self.point_inputs, self.mask_inputs):
            for v in d.values():
                v.clear()
        for v in self.temp.values():
            v[COND].clear()
            v[NONCOND].clear()
        for k in (COND, NONCOND):
            self.outputs[k].clear()
            self.consolidated[k].clear()
        self.frames_already_tracked.clear()
        self.tracking_has_started = False
        self.pending.clear()

    def reset_inference_session(self) -> None:
        """Remove every object, input and result; the video stays loaded."""
        self.reset_tracking_results()
        self.obj_ids.clear()
        self.point_inputs.clear()
        self.mask_inputs.clear()
        self.temp.clear()
        self.feature_cache.clear()
        self.timings.clear()

    def bank_sizes(self) -> dict[str, int]:
        """Number of stored frame outputs (for bounded-memory checks)."""
        return {
            COND: len(self.outputs[COND]),
            NONCOND: len(self.outputs[NONCOND]),
            "frames_held": 0
            if self.frames is None
            else getattr(self.frames, "num_held", None) or sum(f is not None for f in self.frames),
            "tracked_marks": len(self.frames_already_tracked),
        }
