"""Resizing, cropping and pooling kernels of the MIL evaluator (see :mod:`edgetam_export.coreml_mil.ops` for the precision policy)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .values import OpInputs


# --------------------------------------------------------------------------- resizing
def _lerp_axis(x: torch.Tensor, axis: int, grid: np.ndarray) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``axis`` at fractional source positions ``grid``."""
    n = x.shape[axis]
    g = np.clip(grid, 0.0, n - 1)
    i0 = np.floor(g).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    w = torch.from_numpy((g - i0).astype(np.float32))
    shape = [1] * x.dim()
    shape[axis] = -1
    w = w.reshape(shape)
    x0 = torch.index_select(x, axis, torch.from_numpy(i0))
    x1 = torch.index_select(x, axis, torch.from_numpy(i1))
    return x0 + (x1 - x0) * w


def _grid(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """Source sample positions (float64) of the MIL bilinear sampling modes (see MIL docs)."""
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            return np.array([(n_in - 1) / 2.0 if mode == "ALIGN_CORNERS" else 0.0])
        return i * (n_in - 1) / (n_out - 1)
    if mode == "UNALIGN_CORNERS":
        s = n_in / n_out
        return i * s + 0.5 * s - 0.5
    if mode == "DEFAULT":
        if n_out == 1:
            return np.zeros(1)
        return i * (n_in - n_in / n_out) / (n_out - 1)
    if mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        return 0.5 * delta + i * delta
    if mode == "HALF_PIXEL_NO_ALIGN":  # align_corners=False, half_pixel_centers=False
        return i * (n_in / n_out)
    raise NotImplementedError(f"bilinear sampling mode {mode!r}")


def _bilinear(x: torch.Tensor, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    """Separable bilinear resize of the last two axes in fp32 (H pass, then W pass)."""
    h, w = x.shape[-2:]
    y = _lerp_axis(x, x.dim() - 2, _grid(h, out_h, mode))
    return _lerp_axis(y, x.dim() - 1, _grid(w, out_w, mode))


def _upsample_bilinear(op, a: OpInputs):
    """``upsample_bilinear``: output floor(H*sh) x floor(W*sw); the scale is recomputed from the sizes."""
    x = a.t("x")
    h, w = x.shape[-2:]
    oh = math.floor(h * a.scalar("scale_factor_height", 1))
    ow = math.floor(w * a.scalar("scale_factor_width", 1))
    align = bool(a.val("align_corners", True))
    half = a.val("half_pixel_centers")
    half = (not align) if half is None else bool(half)
    if align:
        mode = "STRICT_ALIGN_CORNERS"
    else:
        mode = "UNALIGN_CORNERS" if half else "HALF_PIXEL_NO_ALIGN"
    return _bilinear(x, oh, ow, mode)


def _resize_bilinear(op, a: OpInputs):
    x = a.t("x")
    return _bilinear(
        x,
        int(a.scalar("target_size_height", 1)),
        int(a.scalar("target_size_width", 1)),
        a.val("sampling_mode", "DEFAULT"),
    )


def _nearest(x: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ih = np.minimum(np.floor(np.arange(oh) * (h / oh)).astype(np.int64), h - 1)
    iw = np.minimum(np.floor(np.arange(ow) * (w / ow)).astype(np.int64), w - 1)
    y = torch.index_select(x, x.dim() - 2, torch.from_numpy(ih))
    return torch.index_select(y, x.dim() - 1, torch.from_numpy(iw))


def _upsample_nearest_neighbor(op, a: OpInputs):
    x = a.t("x")
    h, w = x.shape[-2:]
    oh = math.floor(h * a.scalar("scale_factor_height", 1))
    ow = math.floor(w * a.scalar("scale_factor_width", 1))
    return _nearest(x, oh, ow)


def _crop(op, a: OpInputs):
    """``crop(x (*, H, W), crop_height [top, bottom], crop_width [left, right])``: a view, values unchanged."""
    x = np.asarray(a["x"])
    (t, b), (l, r) = a.ints("crop_height"), a.ints("crop_width")
    h, w = x.shape[-2:]
    return x[..., t : h - b, l : w - r]


# --------------------------------------------------------------------------- pooling
def _pool(kind: str) -> Callable:
    def kernel(op, a: OpInputs):
        x = a.t("x")
        nd = x.dim() - 2
        k = a.ints("kernel_sizes")
        s = a.ints("strides", [1] * nd)
        pad_type = a.val("pad_type", "valid")
        if pad_type == "valid":
            pads = [0] * (2 * nd)
        elif pad_type == "custom":
            pads = a.ints("pad", [0] * (2 * nd))
        else:
            raise NotImplementedError(f"{kind}_pool pad_type {pad_type!r}")
        ceil_mode = bool(a.val("ceil_mode", False))
        if any(pads[2 * i] != pads[2 * i + 1] for i in range(nd)):
            raise NotImplementedError(f"{kind}_pool with asymmetric padding")
        padding = [pads[2 * i] for i in range(nd)]
        if kind == "max":
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
            return fn(x, k, s, padding, ceil_mode=ceil_mode)
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
        exclude = bool(a.val("exclude_padding_from_average", False))
        return fn(x, k, s, padding, ceil_mode=ceil_mode, count_include_pad=not exclude)

    return kernel


RESIZE_KERNELS: dict[str, Callable] = {
    "upsample_bilinear": _upsample_bilinear,
    "resize_bilinear": _resize_bilinear,
    "upsample_nearest_neighbor": _upsample_nearest_neighbor,
    "crop": _crop,
    "avg_pool": _pool("avg"),
    "max_pool": _pool("max"),
}
