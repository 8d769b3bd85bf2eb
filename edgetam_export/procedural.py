"""Procedural video frames (docs/FRAMES.md recipe), bit-exact with those behind the official golden data.

A textured background, a green checker square, a blue ellipse and a red disk moving linearly.
"""

from __future__ import annotations

import numpy as np

from .models.constants import IMAGE_SIZE


def _shape_centres(t: int) -> dict[str, tuple[int, int]]:
    return {
        "square": (700 - 8 * t, 260 + 9 * t),
        "ellipse": (480 + 5 * t, 820 - 7 * t),
        "disk": (260 + 11 * t, 380 + 5 * t),
    }


def _grid(size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return x, y


def shape_masks(index: int) -> dict[str, np.ndarray]:
    """Raw membership masks (1024, 1024) bool of ``square``, ``ellipse``, ``disk`` at frame ``index``."""
    if index < 0:
        raise ValueError(f"frame index must be >= 0, got {index}")
    x, y = _grid()
    c = _shape_centres(index)
    sx, sy = c["square"]
    ex, ey = c["ellipse"]
    dx, dy = c["disk"]
    a, b = 200.0, 100.0
    return {
        "square": (np.abs(x - sx) <= 120) & (np.abs(y - sy) <= 120),
        "ellipse": (x - ex) ** 2 * b**2 + (y - ey) ** 2 * a**2 <= a**2 * b**2,
        "disk": (x - dx) ** 2 + (y - dy) ** 2 <= 110.0**2,
    }


def visible_masks(index: int) -> dict[str, np.ndarray]:
    """Visible parts (1024, 1024) bool of each shape at frame ``index`` (later shapes occlude)."""
    m = shape_masks(index)
    return {
        "disk": m["disk"],
        "ellipse": m["ellipse"] & ~m["disk"],
        "square": m["square"] & ~m["ellipse"] & ~m["disk"],
    }


def procedural_frame(index: int) -> np.ndarray:
    """Frame ``index`` of the procedural video: (1024, 1024, 3) uint8 RGB, indexed [y, x, c]."""
    x, y = _grid()
    t = float(index)
    m = shape_masks(index)
    c = _shape_centres(index)
    tex = np.mod(3 * x + 5 * y + 7 * t, 16) / 4
    r = 30 + x / 8 + y / 32 + t / 2 + tex
    g = 40 + y / 8 + (1023 - x) / 32 + tex
    b = 90 + (x + y) / 16 + tex

    sx, sy = c["square"]
    cell = np.floor((x - sx) / 32) + np.floor((y - sy) / 32)
    chk = np.where(np.mod(cell, 2) == 0, 30.0, 0.0)
    sq = m["square"]
    r = np.where(sq, 40 + chk, r)
    g = np.where(sq, 170 + chk, g)
    b = np.where(sq, 80 + chk, b)

    ex, ey = c["ellipse"]
    el = m["ellipse"]
    r = np.where(el, 60.0, r)
    g = np.where(el, 90 + (y - ey) / 4, g)
    b = np.where(el, 225 - np.abs(x - ex) / 8, b)

    dx, dy = c["disk"]
    d2 = (x - dx) ** 2 + (y - dy) ** 2
    dk = m["disk"]
    r = np.where(dk, 225 - d2 / 256, r)
    g = np.where(dk, 60.0, g)
    b = np.where(dk, 50.0, b)

    rgb = np.stack([r, g, b], axis=-1)
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


def procedural_video(num_frames: int) -> list[np.ndarray]:
    """Frames 0..num_frames-1 of the procedural video, each (1024, 1024, 3) uint8."""
    return [procedural_frame(t) for t in range(num_frames)]
