"""Observes the official computation: logs track_step / SAM-head / decoder / memory-attention calls as events.

Everything is installed on *instances* (the predictor and its submodules) and removed on exit; the
official code is only wrapped, never changed.
"""

from __future__ import annotations

import inspect

import torch


def _stability_f64(mask0: torch.Tensor, delta: float) -> float:
    m = mask0.flatten()
    area_i = int((m > delta).sum())
    area_u = int((m > -delta).sum())
    return area_i / area_u if area_u > 0 else 1.0


class Recorder:
    """Logs official track_step / SAM-head / decoder / memory-attention calls as nested events.

    Everything is installed on *instances* (the predictor and its submodules) and removed on exit.
    """

    def __init__(self, predictor, state=None, memattn_output: bool = False):
        self.p = predictor
        self.state = state
        self.keep_memattn_output = memattn_output
        self.events: list[dict] = []
        self._stack: list[dict] = []
        self.phase = "op"
        self.match_obj_idx = 0

    # -- plumbing
    def _emit(self, ev):
        (self._stack[-1]["children"] if self._stack else self.events).append(ev)

    def take(self) -> list[dict]:
        evs, self.events = self.events, []
        return evs

    def __enter__(self):
        p = self.p
        self._undo = []

        def wrap_instance(obj, name, make):
            orig = getattr(obj, name)
            setattr(obj, name, make(orig))
            self._undo.append(lambda: delattr(obj, name))

        track_sig = inspect.signature(type(p).track_step)

        def make_track_step(orig):
            def track_step(*args, **kwargs):
                ba = track_sig.bind(p, *args, **kwargs)
                ba.apply_defaults()
                a = ba.arguments
                ev = {
                    "type": "track_step",
                    "phase": self.phase,
                    "frame_idx": a["frame_idx"],
                    "is_init_cond_frame": a["is_init_cond_frame"],
                    "reverse": a["track_in_reverse"],
                    "num_points": None
                    if a["point_inputs"] is None
                    else int(a["point_inputs"]["point_labels"].shape[1]),
                    "has_mask_inputs": a["mask_inputs"] is not None,
                    "has_prev_logits": a["prev_sam_mask_logits"] is not None,
                    "run_mem_encoder": a["run_mem_encoder"],
                    "children": [],
                }
                self._stack.append(ev)
                try:
                    out = orig(*args, **kwargs)
                finally:
                    self._stack.pop()
                self._emit(ev)
                return out

            return track_step

        def make_sam_heads(orig):
            def _forward_sam_heads(*args, **kwargs):
                ev = {"type": "sam_heads", "children": []}
                self._stack.append(ev)
                try:
                    out = orig(*args, **kwargs)
                finally:
                    self._stack.pop()
                multimask = bool(kwargs.get("multimask_output", False))
                ev.update(
                    multimask=multimask,
                    has_mask_input=kwargs.get("mask_inputs") is not None,
                    low_res_multimasks=out[0].detach().clone(),  # gated candidates (B, M, 256, 256)
                    ious=out[2].detach().clone(),  # (B, M)
                    obj_ptr=out[5].detach().clone(),
                    object_score_logits=out[6].detach().clone(),
                )
                dec = [c for c in ev["children"] if c["type"] == "decoder"]
                if len(dec) == 1:
                    raw_ious, mask0 = dec[0]["raw_ious"], dec[0]["raw_mask0"]
                    if multimask:
                        sel = raw_ious[:, 1:].argmax(-1)  # 0..2 (token 1..3)
                        top2 = raw_ious[:, 1:].sort(-1, descending=True).values
                        ev["chosen_candidate"] = sel.tolist()
                        ev["iou_margin"] = (top2[:, 0] - top2[:, 1]).tolist()
                    else:
                        d = p.sam_mask_decoder
                        stab = [
                            _stability_f64(mask0[b], d.dynamic_multimask_stability_delta)
                            for b in range(mask0.shape[0])
                        ]
                        best = raw_ious[:, 1:].argmax(-1) + 1
                        top2 = raw_ious[:, 1:].sort(-1, descending=True).values
                        ev["stability_token0"] = stab
                        ev["selected_token"] = [
                            0 if s >= d.dynamic_multimask_stability_thresh else int(bi)
                            for s, bi in zip(stab, best.tolist(), strict=True)
                        ]
                        ev["iou_margin"] = (top2[:, 0] - top2[:, 1]).tolist()
                    ev["raw_ious_4"] = raw_ious
                    ev["raw_mask0"] = mask0
                self._emit(ev)
                return out

            return _forward_sam_heads

        def make_predict_masks(orig):
            def predict_masks(*args, **kwargs):
                out = orig(*args, **kwargs)
                self._emit(
                    {
                        "type": "decoder",
                        "raw_ious": out[1].detach().clone(),
                        "raw_mask0": out[0][:, 0].detach().clone(),
                    }
                )
                return out

            return predict_masks

        def make_run_memory_encoder(orig):
            def _run_memory_encoder(*args, **kwargs):
                out = orig(*args, **kwargs)
                self._emit(
                    {
                        "type": "run_memory_encoder",
                        "phase": self.phase,
                        "frame_idx": kwargs.get("frame_idx"),
                        "is_mask_from_pts": kwargs.get("is_mask_from_pts"),
                    }
                )
                return out

            return _run_memory_encoder

        def make_preflight(orig):
            def propagate_in_video_preflight(*args, **kwargs):
                prev, self.phase = self.phase, "preflight"
                try:
                    return orig(*args, **kwargs)
                finally:
                    self.phase = prev

            return propagate_in_video_preflight

        wrap_instance(p, "track_step", make_track_step)
        wrap_instance(p, "_forward_sam_heads", make_sam_heads)
        wrap_instance(p, "_run_memory_encoder", make_run_memory_encoder)
        wrap_instance(p, "propagate_in_video_preflight", make_preflight)
        wrap_instance(p.sam_mask_decoder, "predict_masks", make_predict_masks)
        h = p.memory_attention.register_forward_hook(self._memattn_hook, with_kwargs=True)
        self._undo.append(h.remove)
        return self

    def __exit__(self, *exc):
        for undo in reversed(self._undo):
            undo()
        return False

    # -- memory attention: counts + which stored frames the bank was built from
    def _memattn_hook(self, module, args, kwargs, output):
        memory = kwargs["memory"]  # (M, B, 64)
        memory_pos = kwargs["memory_pos"]
        n_ptr_tok = int(kwargs["num_obj_ptr_tokens"])
        n_spatial = int(kwargs["num_spatial_mem"])
        ev = {
            "type": "memattn",
            "num_spatial_mem": n_spatial,
            "num_ptr_tokens": n_ptr_tok,
            "num_memory_tokens": int(memory.shape[0]),
        }
        if self.keep_memattn_output:
            hw, b, c = output.shape
            s = round(hw**0.5)
            ev["output"] = output.permute(1, 2, 0).reshape(b, c, s, s).detach().clone()
        if self.state is not None:
            ev.update(self._identify_bank(memory, memory_pos, n_spatial, n_ptr_tok))
        self._emit(ev)

    def _identify_bank(self, memory, memory_pos, n_spatial, n_ptr_tok):
        """Match memory slots / pointers byte-exactly against the stored per-frame outputs."""
        p, od = self.p, self.state["output_dict"]
        k = self.match_obj_idx if memory.shape[1] == 1 else 0
        b = 0
        stored = {}
        for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
            for f, out in od[key].items():
                stored.setdefault(f, out)
        const_pos = self.state["constants"]["maskmem_pos_enc"][0][0]  # (512, 64)
        tpos = p.maskmem_tpos_enc.detach()[:, 0, 0, :]  # (7, 64)
        spatial_frames, spatial_tpos = [], []
        for j in range(n_spatial):
            chunk = memory[j * 512 : (j + 1) * 512, b]
            hits = [f for f, out in stored.items() if torch.equal(out["maskmem_features"][k], chunk)]
            spatial_frames.append(hits[0] if len(hits) == 1 else (-2 if hits else -3))
            d = (memory_pos[j * 512 : (j + 1) * 512, b] - const_pos).mean(0)
            spatial_tpos.append(int((tpos - d).abs().sum(-1).argmin()))
        ptr_frames = []
        ptr_tok = memory[memory.shape[0] - n_ptr_tok :, b] if n_ptr_tok else memory[:0, b]
        for i in range(n_ptr_tok // 4):
            ptr = ptr_tok[4 * i : 4 * i + 4].reshape(-1)
            hits = [f for f, out in stored.items() if torch.equal(out["obj_ptr"][k], ptr)]
            ptr_frames.append(hits[0] if len(hits) == 1 else (-2 if hits else -3))
        return {
            "bank_spatial_frames": spatial_frames,
            "bank_spatial_tpos_index": spatial_tpos,
            "bank_ptr_frames": ptr_frames,
        }


def _find(events, typ):
    out = []
    for ev in events:
        if ev["type"] == typ:
            out.append(ev)
        out.extend(_find(ev.get("children", []), typ))
    return out
