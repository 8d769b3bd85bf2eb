"""Test helpers kept under their historical name: procedural frames and preprocessing (re-exports)."""

from .models.constants import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD
from .preprocessing import preprocess
from .procedural import procedural_frame, procedural_video, shape_masks, visible_masks

__all__ = [
    "IMAGE_SIZE",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "preprocess",
    "procedural_frame",
    "procedural_video",
    "shape_masks",
    "visible_masks",
]
