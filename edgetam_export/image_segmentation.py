"""Single-image segmentation (SAM-style) with any runtime: all candidates and their scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .image_api import EdgeTamImageModel
from .models.constants import IMAGE_SIZE
from .runtime.base import Runtime
from .tracker.decisions import Decision, decide_outputs, use_multimask
from .tracker.postprocess import fill_holes, resize_logits
from .tracker.prompts import validate_box, validate_points, warn_outside
from .tracker.session import PointPrompt


@dataclass
class ImageSegmentation:
    """Result on one image.

    candidates (4, H, W) logits at image resolution (decoder masks 0..3), candidate_ious (4,),
    mask (H, W) logits of the selected mask (after the object gate), decision: the selection.
    """

    candidates: np.ndarray
    candidate_ious: np.ndarray
    mask: np.ndarray
    decision: Decision


def segment_image(
    runtime: Runtime,
    image: np.ndarray,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
    fill_hole_area: int = 0,
) -> ImageSegmentation:
    """Segment one object in an (H, W, 3) uint8 RGB image from points (n,2)+labels (n,) and/or a box (4,).

    Coordinates are image pixels (x, y). Multimask output is used for at most one point, as
    in the official model; a box counts as two points.
    """
    h, w = image.shape[:2]
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be given together")
    pts, lab = (
        (np.zeros((0, 2), np.float32), np.zeros((0,), np.int64))
        if points is None
        else validate_points(points, labels)
    )
    if box is not None:
        pts = np.concatenate([validate_box(box).reshape(2, 2), pts])
        lab = np.concatenate([[2, 3], lab])
    if len(lab) == 0:
        raise ValueError("give at least one point or a box")
    warn_outside(pts, (h, w), "prompt")
    scale = np.array([IMAGE_SIZE / w, IMAGE_SIZE / h], np.float32)
    prompt = PointPrompt(pts * scale, lab)
    model = EdgeTamImageModel(runtime)
    (emb,) = model.get_image_embeddings([image])
    out = model.decode(emb, prompt)
    no_obj_ptr = np.asarray(runtime.constants["no_obj_ptr"], np.float32)
    d = decide_outputs(out, no_obj_ptr, multimask=use_multimask(len(lab)))
    low = fill_holes(d.low_res_mask[None], fill_hole_area)
    return ImageSegmentation(
        candidates=resize_logits(out["masks"], (h, w))[0],
        candidate_ious=out["iou"][0],
        mask=resize_logits(low, (h, w))[0, 0],
        decision=d,
    )
