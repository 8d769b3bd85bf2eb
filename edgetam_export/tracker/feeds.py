"""Graph feeds by contract: the decoder's point slots and inputs, and the memory encoder's inputs, built once for every caller."""

from __future__ import annotations

import numpy as np

from ..models.constants import LOW_RES
from ..models.wrap_prompt_decoder import pack_points as pack_slots
from .session import PointPrompt


def pack_points(prompt: PointPrompt | None, max_points: int) -> dict[str, np.ndarray]:
    """Decoder point-slot feeds pt_xy (1,NP,2), pt_label (1,NP), pt_valid (1,NP) as numpy.

    The slot layout is defined once, by :func:`edgetam_export.models.wrap_prompt_decoder.pack_points`
    (user points, then the padding point, rest invalid). With no prompt the official model sees
    one dummy point (0, 0, -1) plus the padding point: 2 not-a-point tokens.
    """
    if prompt is None or len(prompt.labels) == 0:
        xy, labels = [(0.0, 0.0)], [-1]
    else:
        xy, labels = [tuple(p) for p in prompt.points.tolist()], prompt.labels.tolist()
    pt_xy, pt_label, pt_valid = pack_slots(xy, labels, max_points=max_points)
    return {"pt_xy": pt_xy.numpy(), "pt_label": pt_label.numpy(), "pt_valid": pt_valid.numpy()}


def decoder_feeds(
    feats: dict[str, np.ndarray],
    pix: np.ndarray,
    use_no_mem: bool,
    prompt: PointPrompt | None,
    mask_in: np.ndarray | None,
    max_points: int,
) -> dict[str, np.ndarray]:
    """Feeds of ``prompt_decoder``.

    ``feats``: image-encoder outputs (feat_s0 (1,32,256,256), feat_s1 (1,64,128,128));
    ``pix`` (1,256,64,64): raw ``vis`` or memory-conditioned features; ``mask_in``
    (1,1,256,256) mask-prompt logits or None.
    """
    return {
        "pix": pix,
        "use_no_mem": np.full((1, 1), float(use_no_mem), np.float32),
        "feat_s0": feats["feat_s0"],
        "feat_s1": feats["feat_s1"],
        **pack_points(prompt, max_points),
        "mask_in": np.zeros((1, 1, LOW_RES, LOW_RES), np.float32) if mask_in is None else mask_in,
        "has_mask": np.full((1, 1), 0.0 if mask_in is None else 1.0, np.float32),
    }


def memory_encoder_feeds(vis: np.ndarray, low_mask: np.ndarray, binarize: bool) -> dict[str, np.ndarray]:
    """Feeds of ``memory_encoder``: ``vis`` (1,256,64,64), ``low_mask`` (256,256) or (1,1,256,256) logits."""
    return {
        "vis": vis,
        "mask_low": np.asarray(low_mask, np.float32).reshape(1, 1, LOW_RES, LOW_RES),
        "binarize": np.full((1, 1), float(binarize), np.float32),
    }
