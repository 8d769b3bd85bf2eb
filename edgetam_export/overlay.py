"""Drawing masks over frames for humans (overlay videos and images)."""

from __future__ import annotations

import numpy as np

PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
    ],
    dtype=np.float32,
)


def overlay_masks(frame: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend boolean masks (N, H, W) over an (H, W, 3) uint8 frame, one colour per object."""
    out = frame.astype(np.float32)
    for i, m in enumerate(masks):
        color = PALETTE[i % len(PALETTE)]
        out[m] = (1 - alpha) * out[m] + alpha * color
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def mark_prompts(
    image: np.ndarray,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
) -> np.ndarray:
    """Draw the prompt on an (H, W, 3) uint8 image: points (n, 2) as rings (green positive, red
    negative) and a box (4,) x0, y0, x1, y1 as a yellow rectangle, all in pixels. Returns a copy."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(im)
    h, w = image.shape[:2]
    r = max(4, round(min(h, w) / 80))
    lw = max(2, r // 3)
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=(255, 225, 25), width=lw)
    for (x, y), label in zip(
        np.zeros((0, 2)) if points is None else points, [] if labels is None else labels, strict=True
    ):
        color = (60, 220, 75) if int(label) == 1 else (230, 25, 75)
        draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 255, 255), width=lw + 2)
        draw.ellipse([x - r, y - r, x + r, y + r], outline=color, width=lw)
    return np.asarray(im)
