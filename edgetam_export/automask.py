"""Automatic mask generation (the transformers ``mask-generation`` pipeline) over any runtime.

:func:`generate_masks` follows the pipeline with ``Sam2ImageProcessor`` step by step, with the
same parameter names and defaults:

1. crops: the whole image, plus ``crops_n_layers`` layers of 2^i x 2^i overlapping crops
   (``crop_overlap_ratio``); layer i samples a grid of ``points_per_crop / crop_n_points_downscale_factor**i``
   points per side (``points_per_crop`` is the pipeline's name for SAM's ``points_per_side``);
2. per crop, the image encoder runs **once**; the grid points go to the ``prompt_decoder`` graph
   in batches of ``points_per_batch`` (one batch-1 decoder run per point), ``multimask_output``
   on, so each point yields 3 masks;
3. masks are upsampled (bilinear) to the crop size, kept if ``iou > pred_iou_thresh`` and
   stability (``#(m > t+offset) / #(m > t-offset)``) ``> stability_score_thresh``, binarized
   at ``mask_threshold``, dropped if their box touches a crop edge that is not an image edge
   (20 px), then pasted into the full image;
4. greedy box NMS over everything (``crops_nms_thresh``, box IoU as torchvision computes it),
   highest score first; numpy, because torchvision does not load next to this torch build.

Differences, on purpose: grid points are scaled to the 1024² model input per axis (as
``Sam2Processor`` scales user points), where the pipeline reuses SAM-1's longest-side
scaling, which is off for non-square crops; ``min_mask_region_area`` (official SAM AMG,
default 0 = off) removes small islands and fills small holes, then reruns NMS — the
pipeline accepts ``max_hole_area``/``max_sprinkle_area`` but does not apply them.

Returns ``{"masks": list of (H, W) bool, "scores": (N,) float32, "boxes": (N, 4) int64 XYXY}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy import ndimage

from .image_api import EdgeTamImageModel
from .models.constants import IMAGE_SIZE
from .runtime.base import Runtime
from .tracker.postprocess import resize_logits
from .tracker.session import PointPrompt


@dataclass(frozen=True)
class AutoMaskOptions:
    """The pipeline's parameters, with its defaults."""

    points_per_crop: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    crops_nms_thresh: float = 0.7
    crops_n_layers: int = 0
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    def __post_init__(self):
        for name in ("points_per_crop", "points_per_batch", "crop_n_points_downscale_factor"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.crops_n_layers < 0 or self.min_mask_region_area < 0:
            raise ValueError("crops_n_layers and min_mask_region_area must be >= 0")


def point_grid(n_per_side: int) -> np.ndarray:
    """(n², 2) points in [0, 1]², cell centres, x fastest (``_build_point_grid``)."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side, dtype=np.float32)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def crop_boxes(height: int, width: int, n_layers: int, overlap_ratio: float) -> list[tuple[list[int], int]]:
    """([x0, y0, x1, y1], layer) of the whole image and each crop layer (``_generate_per_layer_crops``)."""
    out = [([0, 0, width, height], 0)]
    short = min(height, width)
    for i in range(n_layers):
        n = 2 ** (i + 1)
        overlap = int(overlap_ratio * short * (2 / n))
        cw = math.ceil((overlap * (n - 1) + width) / n)
        ch = math.ceil((overlap * (n - 1) + height) / n)
        for x0, y0 in product(
            [int((cw - overlap) * k) for k in range(n)], [int((ch - overlap) * k) for k in range(n)]
        ):
            out.append(([x0, y0, min(x0 + cw, width), min(y0 + ch, height)], i + 1))
    return out


def stability_scores(logits: np.ndarray, threshold: float, offset: float) -> np.ndarray:
    """(N, H, W) logits -> (N,) #(m > t+offset) / #(m > t-offset)."""
    inter = (logits > threshold + offset).sum(axis=(-2, -1), dtype=np.int64)
    union = (logits > threshold - offset).sum(axis=(-2, -1), dtype=np.int64)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (N, 4) int64 XYXY with inclusive max indices; [0, 0, 0, 0] when empty."""
    out = np.zeros((len(masks), 4), np.int64)
    for k, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if rows.size and cols.size:
            out[k] = [cols[0], rows[0], cols[-1], rows[-1]]
    return out


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices kept, highest score first (ties: lower index first); IoU with torchvision's areas."""
    b = boxes.astype(np.float64)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep = []
    suppressed = np.zeros(len(b), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        xx0 = np.maximum(b[i, 0], b[:, 0])
        yy0 = np.maximum(b[i, 1], b[:, 1])
        xx1 = np.minimum(b[i, 2], b[:, 2])
        yy1 = np.minimum(b[i, 3], b[:, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        union = area[i] + area - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        suppressed |= iou > iou_threshold
    return np.array(keep, np.int64)


def _near_crop_edge(boxes: np.ndarray, crop: list[int], image: list[int], atol: float = 20.0) -> np.ndarray:
    """(N,) True where a box (crop coordinates) touches a crop edge that is not an image edge."""
    shifted = boxes + np.array([crop[0], crop[1], crop[0], crop[1]])
    near_crop = np.abs(shifted - np.array(crop)[None]) <= atol
    near_image = np.abs(shifted - np.array(image)[None]) <= atol
    return (near_crop & ~near_image).any(axis=1)


def _clean_regions(mask: np.ndarray, area: int) -> np.ndarray:
    """Remove islands and fill holes smaller than ``area`` pixels (official ``remove_small_regions``)."""
    for fill_holes in (True, False):
        working = ~mask if fill_holes else mask
        labels, n = ndimage.label(working)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        small = np.flatnonzero(sizes < area) + 1
        if small.size == 0:
            continue
        if fill_holes:
            mask = mask | np.isin(labels, small)
        else:
            keep = np.setdiff1d(np.arange(1, n + 1), small)
            if keep.size == 0:  # keep the largest region rather than nothing
                keep = np.array([int(np.argmax(sizes)) + 1])
            mask = np.isin(labels, keep)
    return mask


def generate_masks(
    runtime: Runtime, image: np.ndarray, options: AutoMaskOptions | None = None, **kwargs
) -> dict:
    """Segment everything in an (H, W, 3) uint8 RGB image; keyword arguments override :class:`AutoMaskOptions`."""
    opt = options or AutoMaskOptions(**kwargs)
    if options is not None and kwargs:
        raise ValueError("give options or keyword arguments, not both")
    model = EdgeTamImageModel(runtime)
    h, w = image.shape[:2]
    all_masks, all_scores, all_boxes = [], [], []
    for crop, layer in crop_boxes(h, w, opt.crops_n_layers, opt.crop_overlap_ratio):
        x0, y0, x1, y1 = crop
        crop_img = np.ascontiguousarray(image[y0:y1, x0:x1])
        ch, cw = crop_img.shape[:2]
        (emb,) = model.get_image_embeddings([crop_img])
        n_side = int(opt.points_per_crop / (opt.crop_n_points_downscale_factor**layer))
        pts = point_grid(n_side) * np.array([IMAGE_SIZE, IMAGE_SIZE], np.float32)  # 1024 space, per axis
        for start in range(0, len(pts), opt.points_per_batch):
            batch = pts[start : start + opt.points_per_batch]
            logits, ious = [], []
            for p in batch:
                out = model.decode(emb, PointPrompt(p[None], np.array([1])))
                logits.append(out["masks"][0, 1:])
                ious.append(out["iou"][0, 1:])
            logits = resize_logits(np.stack(logits), (ch, cw)).reshape(-1, ch, cw)
            ious = np.concatenate(ious).astype(np.float32)
            keep = np.ones(len(ious), bool)
            if opt.pred_iou_thresh > 0:
                keep &= ious > opt.pred_iou_thresh
            if opt.stability_score_thresh > 0:
                stab = stability_scores(logits, opt.mask_threshold, opt.stability_score_offset)
                keep &= stab > opt.stability_score_thresh
            masks = logits[keep] > opt.mask_threshold
            scores = ious[keep]
            boxes = masks_to_boxes(masks)
            edge = _near_crop_edge(boxes, crop, [0, 0, w, h])
            for m, s, b in zip(masks[~edge], scores[~edge], boxes[~edge], strict=True):
                full = np.zeros((h, w), bool)
                full[y0:y1, x0:x1] = m
                all_masks.append(full)
                all_scores.append(s)
                all_boxes.append(b + np.array([x0, y0, x0, y0]))
    scores = np.array(all_scores, np.float32)
    boxes = np.array(all_boxes, np.int64).reshape(-1, 4)
    keep = box_nms(boxes, scores, opt.crops_nms_thresh) if len(scores) else np.zeros(0, np.int64)
    masks = [all_masks[i] for i in keep]
    scores, boxes = scores[keep], boxes[keep]
    if opt.min_mask_region_area > 0 and masks:
        masks = [_clean_regions(m, opt.min_mask_region_area) for m in masks]
        boxes = masks_to_boxes(np.stack(masks))
        keep = box_nms(boxes, scores, opt.crops_nms_thresh)
        masks, scores, boxes = [masks[i] for i in keep], scores[keep], boxes[keep]
    return {"masks": masks, "scores": scores, "boxes": boxes}
