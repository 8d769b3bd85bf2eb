"""Parsing and validating the prompts of ``add_inputs_to_inference_session``: Hugging Face's nested lists to per-object inputs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..models.constants import IMAGE_SIZE
from .postprocess import mask_to_model_input
from .session import PendingInput, PointPrompt


class PromptWarning(UserWarning):
    """A prompt that is valid but probably not what was meant (e.g. a point outside the image)."""


def warn_outside(pts: np.ndarray, size_hw: tuple[int, int], what: str, stacklevel: int = 3) -> None:
    """Warn once per call if any (x, y) of ``pts`` (n, 2) in pixels lies outside a ``size_hw`` (H, W) image."""
    h, w = size_hw
    out = [
        (float(x), float(y))
        for x, y in np.asarray(pts, np.float64).reshape(-1, 2)
        if not (0 <= x <= w and 0 <= y <= h)
    ]
    if out:
        shown = ", ".join(f"({x:g}, {y:g})" for x, y in out[:3]) + (" ..." if len(out) > 3 else "")
        warnings.warn(
            f"{what}: point {shown} lies outside the {w}x{h} (width x height) image; "
            "coordinates are pixels of the original image",
            PromptWarning,
            stacklevel=stacklevel,
        )


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
                pts, lab = validate_points(points[k], labels[k], what=f"object {oid}")
            if boxes is not None and boxes[k] is not None:
                if not clear_old_inputs:
                    raise ValueError("a box must replace earlier inputs: use clear_old_inputs=True")
                pts = np.concatenate([boxes[k].reshape(2, 2), pts])
                lab = np.concatenate([np.array([2, 3]), lab])
            if not np.isfinite(pts).all():
                raise ValueError(f"object {oid}: point/box coordinates must be finite")
            if pts.shape[0] == 0:
                raise ValueError(f"object {oid}: no points or box given")
            warn_outside(pts, (video_height, video_width), f"object {oid} on frame {frame_idx}", stacklevel=4)
            prompt = PointPrompt(pts * scale, lab)
            pending.append(PendingInput(frame_idx, oid, points=prompt, clear_old=clear_old_inputs))
    return pending


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _is_label(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and int(v) in (0, 1)


def validate_points(points, labels, what: str = "points") -> tuple[np.ndarray, np.ndarray]:
    """The one check of user points and labels (tracker, ``segment``, the CLI): (n, 2) float32 and (n,) int64.

    A point is ``[x, y]`` of real numbers (finite; no strings, no booleans); a label is the
    integer 0 (negative) or 1 (positive) (no booleans, floats or strings). Raises ``ValueError``
    naming ``what`` and the offending value.
    """
    pts_in = np.asarray(points, dtype=object) if not isinstance(points, np.ndarray) else points
    lab_in = np.asarray(labels, dtype=object) if not isinstance(labels, np.ndarray) else labels
    if pts_in.size == 0:
        pts_in = pts_in.reshape(0, 2)
    if pts_in.ndim != 2 or pts_in.shape[1] != 2:
        raise ValueError(
            f"{what}: each point is [x, y] (2 numbers), got {np.asarray(points, object).tolist()}"
        )
    for v in pts_in.reshape(-1).tolist() if pts_in.dtype == object else ():
        if not _is_real(v):
            raise ValueError(f"{what}: point coordinates must be numbers, got {v!r}")
    if pts_in.dtype != object and not (
        np.issubdtype(pts_in.dtype, np.integer) or np.issubdtype(pts_in.dtype, np.floating)
    ):
        raise ValueError(f"{what}: point coordinates must be numbers, got dtype {pts_in.dtype}")
    lab_flat = lab_in.reshape(-1)
    for v in lab_flat.tolist() if lab_in.dtype == object else ():
        if not _is_label(v):
            raise ValueError(f"{what}: point labels must be 0 (negative) or 1 (positive), got {v!r}")
    if lab_in.dtype != object and not np.issubdtype(lab_in.dtype, np.integer):
        raise ValueError(f"{what}: point labels must be the integers 0 or 1, got dtype {lab_in.dtype}")
    lab = lab_flat.astype(np.int64)
    if not np.isin(lab, (0, 1)).all():
        raise ValueError(f"{what}: point labels must be 0 (negative) or 1 (positive), got {lab.tolist()}")
    pts = pts_in.astype(np.float32)
    if pts.shape[0] != lab.shape[0]:
        raise ValueError(f"{what}: {pts.shape[0]} points but {lab.shape[0]} labels")
    if not np.isfinite(pts).all():
        raise ValueError(f"{what}: point coordinates must be finite, got {pts.tolist()}")
    return pts, lab


def validate_box(box, what: str = "box") -> np.ndarray:
    """A box ``[x0, y0, x1, y1]`` of real numbers with x0 <= x1, y0 <= y1, as (4,) float32."""
    flat = np.asarray(box, dtype=object).reshape(-1)
    if flat.shape != (4,) or not all(_is_real(v) for v in flat.tolist()):
        raise ValueError(
            f"{what}: a box is [x0, y0, x1, y1] (4 numbers), got {np.asarray(box, object).tolist()}"
        )
    b = flat.astype(np.float32)
    if not np.isfinite(b).all():
        raise ValueError(f"{what}: box coordinates must be finite, got {b.tolist()}")
    if b[2] < b[0] or b[3] < b[1]:
        raise ValueError(f"{what}: box {b.tolist()} has x1 < x0 or y1 < y0")
    return b


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
    return [validate_box(b, what="input_boxes") for b in boxes]


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
