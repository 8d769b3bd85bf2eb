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
