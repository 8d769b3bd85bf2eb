"""Parsing and validating the prompts of ``add_inputs_to_inference_session``: Hugging Face's nested lists to per-object inputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models.constants import IMAGE_SIZE
from .postprocess import mask_to_model_input
from .session import PendingInput, PointPrompt


def parse_prompts(
    ids: Sequence[int],
    frame_idx: int,
    video_size: tuple[int, int],
    input_points=None,
    input_labels=None,
    input_boxes=None,
    input_masks=None,
    clear_old_inputs: bool = True,
) -> list[PendingInput]:
    """One :class:`PendingInput` per object id, coordinates scaled from ``video_size`` (H, W) to 1024².

    Points are ``[[[[x, y], ...], ...]]`` (image, object, point, xy) or per object; labels match
    (1 positive, 0 negative); boxes ``[[[x0, y0, x1, y1], ...]]`` or per object, stored as the
    first two points with labels 2, 3; masks one (H, W) array per object. Raises ``ValueError``
    naming the object and what is wrong.
    """
    video_height, video_width = video_size
    pending: list[PendingInput] = []
    if input_masks is not None:
        masks = _per_object_masks(input_masks, len(ids))
        for oid, m in zip(ids, masks, strict=True):
            pending.append(PendingInput(frame_idx, oid, mask=mask_to_model_input(m, IMAGE_SIZE)))
    else:
        points = (
            _per_object(input_points, len(ids), depth=3, what="input_points")
            if input_points is not None
            else None
        )
        labels = (
            _per_object(input_labels, len(ids), depth=2, what="input_labels")
            if input_labels is not None
            else None
        )
        boxes = _per_object_boxes(input_boxes, len(ids)) if input_boxes is not None else None
        scale = np.array([IMAGE_SIZE / video_width, IMAGE_SIZE / video_height], np.float32)
        for k, oid in enumerate(ids):
            pts = np.zeros((0, 2), np.float32)
            lab = np.zeros((0,), np.int64)
            if points is not None:
                pts = np.asarray(points[k], dtype=np.float32).reshape(-1, 2)
                lab = np.asarray(labels[k], dtype=np.int64).reshape(-1)
                if pts.shape[0] != lab.shape[0]:
                    raise ValueError(f"object {oid}: {pts.shape[0]} points but {lab.shape[0]} labels")
                if not np.isin(lab, (0, 1)).all():
                    raise ValueError(
                        f"object {oid}: point labels must be 0 (negative) or 1 (positive), got {lab.tolist()}"
                    )
            if boxes is not None and boxes[k] is not None:
                if not clear_old_inputs:
                    raise ValueError("a box must replace earlier inputs: use clear_old_inputs=True")
                pts = np.concatenate([boxes[k].reshape(2, 2), pts])
                lab = np.concatenate([np.array([2, 3]), lab])
            if not np.isfinite(pts).all():
                raise ValueError(f"object {oid}: point/box coordinates must be finite")
            if pts.shape[0] == 0:
                raise ValueError(f"object {oid}: no points or box given")
            prompt = PointPrompt(pts * scale, lab)
            pending.append(PendingInput(frame_idx, oid, points=prompt, clear_old=clear_old_inputs))
    return pending


def _depth(x) -> int:
    d = 0
    while isinstance(x, (list, tuple, np.ndarray)) and len(x) > 0:
        x = x[0]
        d += 1
    return d


def _per_object(value, n_obj: int, depth: int, what: str) -> list:
    """Accept Hugging Face's image-batched nesting (depth+1) or per-object nesting (depth)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    d = _depth(value)
    if d == depth + 1:
        if len(value) != 1:
            raise ValueError(f"{what}: only one image per call is supported, got {len(value)}")
        value = value[0]
    elif d != depth:
        raise ValueError(f"{what}: expected {depth + 1} nested levels [image][object]..., got {d}")
    if len(value) != n_obj:
        raise ValueError(f"{what}: {len(value)} objects given for {n_obj} obj_ids")
    return list(value)


def _per_object_boxes(value, n_obj: int) -> list[np.ndarray]:
    boxes = _per_object(value, n_obj, depth=2, what="input_boxes")
    out = []
    for b in boxes:
        b = np.asarray(b, np.float32).reshape(-1)
        if b.shape != (4,):
            raise ValueError(f"input_boxes: each box is [x0, y0, x1, y1], got {b.tolist()}")
        if b[2] < b[0] or b[3] < b[1]:
            raise ValueError(f"input_boxes: box {b.tolist()} has x1 < x0 or y1 < y0")
        out.append(b)
    return out


def _per_object_masks(value, n_obj: int) -> list[np.ndarray]:
    arr = (
        value if isinstance(value, (list, tuple)) else [value] if np.asarray(value).ndim == 2 else list(value)
    )
    if len(arr) != n_obj:
        raise ValueError(f"input_masks: {len(arr)} masks given for {n_obj} obj_ids")
    out = []
    for m in arr:
        m = np.asarray(m)
        if m.ndim != 2:
            raise ValueError(f"input_masks: each mask must be (H, W), got shape {m.shape}")
        out.append(m > 0 if m.dtype != bool else m)
    return out
