"""How prompts become outputs: the official add-points/box, add-mask, consolidation and preflight steps, as a tracker mixin."""

from __future__ import annotations

import numpy as np

from ..models.constants import LOW_RES, NO_OBJ_SCORE
from .decisions import decide_outputs, use_multimask
from .postprocess import fill_holes, mask_downsample, mask_logits_low_res
from .session import COND, NONCOND, FrameOutput, InferenceSession, ObjectOutput, PendingInput, PointPrompt

MASK_PROMPT_CLAMP = 32.0  # previous logits fed back as a mask prompt are clamped to +-32


class PromptingMixin:
    """Applies pending inputs to a session; mixed into :class:`~edgetam_export.tracker.tracker.Tracker`,
    whose ``_features``, ``_decode``, ``_memory_pix``, ``_encode_memory``, ``runtime``,
    ``no_obj_ptr`` and ``fill_hole_area`` it uses."""

    def _previous_output(self, s: InferenceSession, i: int, t: int, key: str) -> ObjectOutput | None:
        out = s.temp[i][key].get(t)
        if out is not None:
            return out
        for k in (COND, NONCOND):
            fo = s.outputs[k].get(t)
            if fo is not None:
                return ObjectOutput(
                    fo.pred_masks[i : i + 1], fo.obj_ptr[i : i + 1], fo.object_score_logits[i : i + 1]
                )
        return None

    def _apply_pending(self, s: InferenceSession, frame_idx: int | None = None) -> None:
        # Partition by position, never by ``==``: inputs hold numpy arrays, and two inputs for the
        # same object and frame must both run, in the order they were added (each refines the last).
        todo = [p for p in s.pending if frame_idx is None or p.frame_idx == frame_idx]
        s.pending = [p for p in s.pending if not (frame_idx is None or p.frame_idx == frame_idx)]
        for p in todo:
            if p.mask is not None:
                self._apply_mask(s, p)
            else:
                self._apply_points(s, p)

    def _apply_points(self, s: InferenceSession, p: PendingInput) -> None:
        """Official ``add_new_points_or_box`` for one object."""
        i, t = s.obj_idx(p.obj_id), p.frame_idx
        old = s.point_inputs[i].get(t)
        if p.clear_old or old is None:
            prompt = p.points
        else:
            prompt = PointPrompt(
                np.concatenate([old.points, p.points.points]), np.concatenate([old.labels, p.points.labels])
            )
        s.point_inputs[i][t] = prompt
        s.mask_inputs[i].pop(t, None)
        is_init = t not in s.frames_already_tracked
        key = COND if is_init else NONCOND
        prev = self._previous_output(s, i, t, key)
        mask_in = None if prev is None else np.clip(prev.pred_masks, -MASK_PROMPT_CLAMP, MASK_PROMPT_CLAMP)
        feats = self._features(s, t)
        if is_init:
            pix, use_no_mem = feats["vis"], True
        else:
            pix, use_no_mem = self._memory_pix(s, t, i, feats, s.frames_already_tracked[t]), False
        dec = self._decode(s, feats, pix, use_no_mem, prompt, mask_in)
        d = decide_outputs(dec, self.no_obj_ptr, multimask=use_multimask(len(prompt.labels)))
        s.temp[i][key][t] = ObjectOutput(
            fill_holes(d.low_res_mask[None], self.fill_hole_area),
            d.ptr[None],
            np.array([[d.obj_score]], np.float32),
        )

    def _apply_mask(self, s: InferenceSession, p: PendingInput) -> None:
        """Official ``add_new_mask``: the mask is the output; the pointer comes from the decoder on raw vis."""
        i, t = s.obj_idx(p.obj_id), p.frame_idx
        s.mask_inputs[i][t] = p.mask
        s.point_inputs[i].pop(t, None)
        key = COND if t not in s.frames_already_tracked else NONCOND
        feats = self._features(s, t)
        _, low = mask_logits_low_res(p.mask)
        c = self.runtime.constants
        dense_in = mask_downsample(p.mask, c["mask_downsample_weight"], c["mask_downsample_bias"])
        dec = self._decode(s, feats, feats["vis"], False, None, dense_in)
        d = decide_outputs(dec, self.no_obj_ptr, multimask=False)
        appear = bool((p.mask > 0).any())
        ptr = d.ptr if appear else self.no_obj_ptr.copy()
        score = 10.0 if appear else -10.0
        s.temp[i][key][t] = ObjectOutput(
            fill_holes(low.astype(np.float32), self.fill_hole_area),
            ptr[None],
            np.array([[score]], np.float32),
        )

    def _consolidate(
        self, s: InferenceSession, t: int, run_mem_encoder: bool, is_cond: bool | None = None
    ) -> FrameOutput:
        """Merge every object's latest output on frame ``t``; optionally (re)encode binarized memories."""
        n = len(s.obj_ids)
        if is_cond is None:
            is_cond = any(t in s.temp[i][COND] for i in range(n))
        key = COND if is_cond else NONCOND
        masks = np.full((n, 1, LOW_RES, LOW_RES), NO_OBJ_SCORE, np.float32)
        ptrs = np.full((n, 256), NO_OBJ_SCORE, np.float32)
        scores = np.full((n, 1), 10.0, np.float32)
        for i in range(n):
            out = self._previous_output(s, i, t, key)
            if out is None:
                if run_mem_encoder:
                    ptrs[i] = self.no_obj_ptr  # the official "empty mask" pointer is exactly no_obj_ptr
                continue
            masks[i] = out.pred_masks[0]
            ptrs[i] = out.obj_ptr[0]
            scores[i] = out.object_score_logits[0]
        mem = None
        if run_mem_encoder:
            feats = self._features(s, t)
            mem = np.stack([self._encode_memory(s, feats, masks[i], binarize=True) for i in range(n)])
        return FrameOutput(masks, ptrs, scores, mem, np.full(n, -1, np.int64))

    def _preflight(self, s: InferenceSession) -> None:
        """Consolidate prompted frames into the bank (official ``propagate_in_video_preflight``)."""
        for key in (NONCOND, COND):
            frames = sorted({t for i in s.temp for t in s.temp[i][key]})
            s.consolidated[key].update(frames)
            for t in frames:
                s.outputs[key][t] = self._consolidate(s, t, run_mem_encoder=True, is_cond=key is COND)
            for i in s.temp:
                s.temp[i][key].clear()
        for t in s.outputs[COND]:
            s.outputs[NONCOND].pop(t, None)
        s.consolidated[NONCOND] -= s.consolidated[COND]
        # Tracking starts with the first conditioning frame; a failed call without prompts
        # leaves the session open for new objects.
        s.tracking_has_started = bool(s.outputs[COND])
