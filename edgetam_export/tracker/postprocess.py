"""Host-side mask post-processing: hole filling, resizing, non-overlap (docs/MODEL.md §3.8)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def fill_holes(low_res: np.ndarray, max_area: int) -> np.ndarray:
    """Set background (<= 0) 8-connected components of area <= ``max_area`` to +0.1.

    ``low_res``: (..., H, W) logits; every leading index is processed independently.
    ``max_area <= 0`` returns the input unchanged (the official CPU behaviour).
    """
    if max_area <= 0:
        return low_res
    out = np.array(low_res, dtype=np.float32, copy=True)
    flat = out.reshape(-1, *out.shape[-2:])
    for m in flat:
        labels, n = ndimage.label(m <= 0, structure=_EIGHT_CONNECTED)
        if n == 0:
            continue
        areas = np.bincount(labels.ravel())
        small = np.flatnonzero(areas <= max_area)
        small = small[small > 0]
        if small.size:
            m[np.isin(labels, small)] = 0.1
    return out


def resize_logits(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (align_corners=False) resize of (N, C, h, w) logits to (N, C, *size), float32."""
    t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))
    if tuple(t.shape[-2:]) == tuple(size):
        return t.numpy().copy()
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False).numpy()


def non_overlap(masks: np.ndarray) -> np.ndarray:
    """Keep only the highest-scoring object per pixel: others become min(logit, -10). (N,1,H,W)."""
    if masks.shape[0] <= 1:
        return masks
    winner = np.argmax(masks, axis=0)[None]
    keep = winner == np.arange(masks.shape[0])[:, None, None, None]
    return np.where(keep, masks, np.minimum(masks, -10.0)).astype(np.float32)


def mask_to_model_input(mask: np.ndarray, image_size: int = 1024) -> np.ndarray:
    """Boolean (H, W) mask -> (1, 1, image_size, image_size) float32 in {0, 1}.

    Resizes with antialiased bilinear and thresholds at 0.5, as the official ``add_new_mask``.
    """
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    if tuple(m.shape[-2:]) != (image_size, image_size):
        m = F.interpolate(
            m, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
        m = (m >= 0.5).float()
    return m.numpy()


def mask_logits_low_res(mask_1024: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1,1,1024,1024) {0,1} mask -> (high logits ±10 (1,1,1024,1024), antialiased low-res (1,1,256,256))."""
    high = torch.from_numpy(mask_1024) * 20.0 - 10.0
    low = F.interpolate(high, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
    return high.numpy(), low.numpy()


def mask_downsample(mask_1024: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The model's ``mask_downsample`` conv (k4, s4) on the host: (1,1,1024,1024) -> (1,1,256,256)."""
    out = F.conv2d(torch.from_numpy(mask_1024), torch.from_numpy(weight), torch.from_numpy(bias), stride=4)
    return out.numpy()


def post_process_masks(
    masks: Sequence[np.ndarray],
    original_sizes: Sequence[Sequence[int]],
    binarize: bool = True,
    mask_threshold: float = 0.0,
) -> list[np.ndarray]:
    """Resize low-res logits (N, 1, 256, 256) to each (H, W) (bilinear); optionally ``> threshold``."""
    if len(masks) != len(original_sizes):
        raise ValueError(f"{len(masks)} mask batches but {len(original_sizes)} sizes")
    out = []
    for m, (h, w) in zip(masks, original_sizes, strict=True):
        m = np.asarray(m, np.float32)
        if m.ndim != 4:
            raise ValueError(f"expected (N, 1, h, w) masks, got shape {m.shape}")
        r = resize_logits(m, (int(h), int(w)))
        out.append(r > mask_threshold if binarize else r)
    return out
