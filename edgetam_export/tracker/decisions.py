"""Host-side (numpy) decisions on the ``prompt_decoder`` outputs (docs/MODEL.md §2.6).

The graph returns all four mask candidates, their IoUs, the object-score logit and the object
pointer of every mask token (ungated). The official model's data-dependent choices are made
here, bit-for-bit the way ``SAM2Base._forward_sam_heads`` and
``MaskDecoder._dynamic_multimask_via_stability`` make them:

* **multimask** (≤ 1 user point, and every tracking step): candidates are masks 1..3, pick the
  first argmax of their IoUs; the pointer comes from the *chosen* mask token.
* **single mask with dynamic stability** (≥ 2 points, e.g. a box): stability of mask 0 is
  ``#(m0 > δ) / #(m0 > −δ)`` (1 when the denominator is 0), computed in float32 on the
  *ungated* fp32 logits, as in the official decoder (which selects before the gate). If it is
  ≥ 0.98 mask 0 is kept, otherwise the best of masks 1..3 by IoU. The pointer is always from
  mask token 0.
* **object gating**: ``appear = obj_logit > 0`` (strict). If not, the mask becomes −1024
  everywhere and the pointer is ``no_obj_ptr``. Gating happens before upsampling; since the
  gate replaces every candidate by the same constant, gating before or after the selection
  yields the same mask, IoU and pointer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.constants import NO_OBJ_SCORE

STABILITY_DELTA = 0.05
STABILITY_THRESH = 0.98
MULTIMASK_MIN_POINTS = 0
MULTIMASK_MAX_POINTS = 1


@dataclass(frozen=True)
class Decision:
    """Selected decoder output for one object on one frame.

    low_res_mask: (1, 256, 256) float32 logits (−1024 everywhere if the object is absent).
    iou: IoU prediction of the selected mask. obj_score: the object-score logit.
    ptr: (256,) float32 object pointer (``no_obj_ptr`` if absent). chosen: decoder mask index
    0..3 of the selected mask. ptr_token: mask token the pointer came from (0..3).
    appear: ``obj_score > 0``. stability: token-0 stability (single-mask path only, else None).
    """

    low_res_mask: np.ndarray
    iou: float
    obj_score: float
    ptr: np.ndarray
    chosen: int
    ptr_token: int
    appear: bool
    multimask: bool
    stability: float | None = None

    @property
    def candidate_index(self) -> int:
        """Index of the chosen mask among the multimask candidates 1..3 (0..2), or −1 for mask 0."""
        return self.chosen - 1 if self.chosen >= 1 else -1


def use_multimask(num_points: int) -> bool:
    """Official ``_use_multimask`` for EdgeTAM: multimask iff 0 ≤ #user points (box = 2) ≤ 1."""
    return MULTIMASK_MIN_POINTS <= num_points <= MULTIMASK_MAX_POINTS


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def stability_score(mask_logits, delta: float = STABILITY_DELTA) -> np.float32:
    """Stability of one mask (256, 256) of logits: #(m > δ) / #(m > −δ) in float32, 1 if empty."""
    m = _np(mask_logits).astype(np.float32, copy=False)
    area_i = np.float32(np.count_nonzero(m > np.float32(delta)))
    area_u = np.float32(np.count_nonzero(m > np.float32(-delta)))
    return np.float32(area_i / area_u) if area_u > 0 else np.float32(1.0)


def best_multimask_index(iou) -> int:
    """Decoder index (1..3) of the highest IoU among masks 1..3; first maximum on ties."""
    return 1 + int(np.argmax(_np(iou).reshape(-1)[1:4]))


def decide(
    masks,
    iou,
    obj_logit,
    ptr_all,
    no_obj_ptr,
    multimask: bool,
    stability_delta: float = STABILITY_DELTA,
    stability_thresh: float = STABILITY_THRESH,
) -> Decision:
    """Select one mask, IoU and pointer from ``prompt_decoder`` outputs and apply the object gate.

    masks (1,4,256,256) or (4,256,256); iou (1,4) or (4,); obj_logit (1,1) or scalar;
    ptr_all (1,4,256) or (4,256); no_obj_ptr (256,) or (1,256).
    ``multimask`` is the official ``use_multimask(num user points)`` decision.
    """
    masks = _np(masks).astype(np.float32, copy=False)
    masks = masks.reshape(4, *masks.shape[-2:])
    iou = _np(iou).astype(np.float32, copy=False).reshape(4)
    score = float(_np(obj_logit).reshape(-1)[0])
    ptr_all = _np(ptr_all).astype(np.float32, copy=False).reshape(4, -1)
    no_obj_ptr = _np(no_obj_ptr).astype(np.float32, copy=False).reshape(-1)

    stability: float | None = None
    best = best_multimask_index(iou)
    if multimask:
        chosen, ptr_token = best, best
    else:
        s = stability_score(masks[0], stability_delta)
        stability = float(s)
        chosen = 0 if s >= np.float32(stability_thresh) else best
        ptr_token = 0

    appear = score > 0.0
    mask = masks[chosen][None].copy()
    if appear:
        ptr = ptr_all[ptr_token].copy()
    else:
        mask.fill(NO_OBJ_SCORE)
        ptr = no_obj_ptr.copy()
    return Decision(
        low_res_mask=mask,
        iou=float(iou[chosen]),
        obj_score=score,
        ptr=ptr,
        chosen=chosen,
        ptr_token=ptr_token,
        appear=appear,
        multimask=multimask,
        stability=stability,
    )


def decide_outputs(outputs: dict, no_obj_ptr, multimask: bool, **kwargs) -> Decision:
    """:func:`decide` on a ``prompt_decoder`` output dict (masks, iou, obj_logit, ptr_all)."""
    return decide(
        outputs["masks"],
        outputs["iou"],
        outputs["obj_logit"],
        outputs["ptr_all"],
        no_obj_ptr,
        multimask,
        **kwargs,
    )
