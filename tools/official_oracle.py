"""Dev-only oracle: drive the OFFICIAL EdgeTAM implementation to (re)generate golden data.

This is our own harness around the official code (PyPI ``edgetam-dimos==1.0.1``, Python package
``sam2``, config ``configs/edgetam.yaml``). It imports and *drives* the official package; it does
not copy any of it. It needs the separate oracle virtualenv (official ``sam2`` + timm + a
torchvision import stub), not the project's venv::

    /work/oracle/venv/bin/python tools/official_oracle.py verify-golden   # regenerate + diff dev set
    /work/oracle/venv/bin/python tools/official_oracle.py extra           # tests/golden/extra/
    /work/oracle/venv/bin/python tools/official_oracle.py extra --only long40 --out /tmp/x

See /work/oracle/USAGE.md for the environment and for using the official model interactively.

Patches (shared/golden/README.md §1), all applied by this module and nowhere else:

* P1  memory features stay fp32: inside :func:`official_session` the predictor *module*
      ``sam2.sam2_video_predictor`` sees a ``torch`` proxy whose ``bfloat16`` is ``float32``.
      Scoped: restored when the context exits.
* P2  ``predictor.fill_hole_area = 0`` after the build (the builder appends ``=8``).
* P3  for B > 1 the unmodified official ``PerceiverResampler.forward_2d`` is called once per
      object and the results are concatenated (instance attribute on the model's perceiver).
* P4  the timm trunk is created with ``pretrained=False`` (scoped to the build call).
* P5  ``init_state`` receives preprocessed frame tensors: inside :func:`official_session` the
      predictor module's ``load_video_frames`` accepts a :class:`TensorVideo`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import inspect
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the official propagate loop wraps tqdm

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_GOLDEN = Path("/work/shared/golden")
EXTRA_DIR = REPO / "tests" / "golden" / "extra"
CONFIG = "configs/edgetam.yaml"
OFFICIAL_DIST = "edgetam-dimos==1.0.1"


def _import_official():
    try:
        import sam2  # noqa: F401
        import sam2.sam2_video_predictor as vp
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError as e:  # pragma: no cover - environment guard
        raise SystemExit(
            f"official `sam2` package not importable ({e}). Run this with the oracle venv: "
            "/work/oracle/venv/bin/python tools/official_oracle.py ... (see /work/oracle/USAGE.md)"
        ) from e
    return vp, build_sam2_video_predictor


# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------
class _TorchBf16IsFp32:
    """P1: a stand-in for the ``torch`` module whose ``bfloat16`` is ``float32``."""

    def __init__(self, real):
        object.__setattr__(self, "_real", real)

    def __getattr__(self, name):
        if name == "bfloat16":
            return self._real.float32
        return getattr(self._real, name)


@contextlib.contextmanager
def _swapped(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield old
    finally:
        setattr(obj, name, old)


@dataclass
class TensorVideo:
    """P5: preprocessed frames (T, 3, 1024, 1024) fp32 plus the *declared* video size."""

    images: torch.Tensor
    height: int = 1024
    width: int = 1024


def _install_perceiver_batch_fix(model) -> None:
    """P3: run the unmodified official forward_2d once per object when B > 1."""
    perceiver = model.spatial_perceiver
    official_forward_2d = type(perceiver).forward_2d

    def forward_2d_per_object(x):
        if x.shape[0] == 1:
            return official_forward_2d(perceiver, x)
        outs = [official_forward_2d(perceiver, x[b : b + 1]) for b in range(x.shape[0])]
        return torch.cat([o[0] for o in outs], 0), torch.cat([o[1] for o in outs], 0)

    perceiver.forward_2d = forward_2d_per_object


def synthetic_weights(salt: int = 0, override: dict | None = None):
    """synthetic_state_dict(salt), optionally with ``{key: {"add": c}}`` offsets (float32, added last)."""
    from edgetam_export.models import synthetic_state_dict

    sd = synthetic_state_dict(salt)
    for key, how in (override or {}).items():
        ((kind, c),) = how.items()
        if kind != "add":
            raise ValueError(f"unknown weights override {how}")
        sd[key] = sd[key] + torch.tensor(c, dtype=torch.float32)
    return sd


def build_official_predictor(
    salt: int = 0, threads: int = 2, quiet: bool = True, weights_override: dict | None = None
):
    """Official SAM2VideoPredictor for configs/edgetam.yaml on CPU with synthetic weights ``salt``."""
    torch.set_num_threads(threads)
    _import_official()
    import sam2.modeling.backbones.timm as official_timm_backbone
    from sam2.build_sam import build_sam2_video_predictor

    official_create_model = official_timm_backbone.create_model

    def create_model_without_download(*args, **kwargs):  # P4
        kwargs["pretrained"] = False
        return official_create_model(*args, **kwargs)

    sink = io.StringIO() if quiet else sys.stdout
    with (
        _swapped(official_timm_backbone, "create_model", create_model_without_download),
        contextlib.redirect_stdout(sink),
    ):
        predictor = build_sam2_video_predictor(CONFIG, ckpt_path=None, device="cpu")
    predictor.fill_hole_area = 0  # P2
    predictor.load_state_dict(synthetic_weights(salt, weights_override), strict=True)
    predictor.eval()
    _install_perceiver_batch_fix(predictor)  # P3
    predictor._oracle_salt = salt
    return predictor


@contextlib.contextmanager
def official_patches():
    """P1 + P5, scoped: everything that runs the predictor must happen inside this context."""
    vp, _ = _import_official()
    official_loader = vp.load_video_frames

    def load_video_frames(video_path, **kwargs):
        if isinstance(video_path, TensorVideo):
            return video_path.images, video_path.height, video_path.width
        return official_loader(video_path=video_path, **kwargs)

    with _swapped(vp, "torch", _TorchBf16IsFp32(torch)), _swapped(vp, "load_video_frames", load_video_frames):
        yield


@contextlib.contextmanager
def official_session(predictor, video: TensorVideo):
    """``with official_session(p, TensorVideo(frames)) as state:`` -> official inference_state."""
    with official_patches():
        yield predictor.init_state(video)


_FRAME_CACHE: dict[int, torch.Tensor] = {}


def frames_tensor(num_frames: int) -> torch.Tensor:
    """(T, 3, 1024, 1024) fp32 preprocessed procedural frames 0..T-1 (FRAMES.md)."""
    from edgetam_export.testing import preprocess, procedural_frame

    for t in range(num_frames):
        if t not in _FRAME_CACHE:
            _FRAME_CACHE[t] = torch.from_numpy(preprocess(procedural_frame(t)))[0]
    return torch.stack([_FRAME_CACHE[t] for t in range(num_frames)])


def mask_from_source(src: dict) -> np.ndarray:
    """{"visible_mask": "ellipse", "frame": 3} | {"shape_mask": ...} | {"empty": [H, W]} -> bool."""
    from edgetam_export.testing import shape_masks, visible_masks

    if "visible_mask" in src:
        return visible_masks(src["frame"])[src["visible_mask"]]
    if "shape_mask" in src:
        return shape_masks(src["frame"])[src["shape_mask"]]
    if "empty" in src:
        return np.zeros(tuple(src["empty"]), dtype=bool)
    raise ValueError(f"unknown mask source {src}")


# --------------------------------------------------------------------------------------------
# Recorder: observes the official computation through instance-level wrappers and hooks
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Developer golden set (shared/golden) regeneration
# --------------------------------------------------------------------------------------------
DEV_FRAMES = 12
DEV_CLICK = [[260.0, 380.0]]
DEV_BOX = [570.0, 130.0, 830.0, 390.0]


def regenerate_dev_set(predictor) -> dict[str, dict[str, np.ndarray]]:
    frames = frames_tensor(DEV_FRAMES)
    out: dict[str, dict[str, np.ndarray]] = {}

    # image encoder (frame 0): the predictor's own cached backbone output from init_state
    with official_session(predictor, TensorVideo(frames)) as state:
        _, bb = state["cached_features"][0]
        s0, s1, vis = bb["backbone_fpn"]
        out["image_encoder"] = {
            "vision_features": vis[0].numpy().astype(np.float32),
            "high_res_feat_s0_ch0_7": s0[0, :8].numpy().astype(np.float32),
            "high_res_feat_s1_ch0_7": s1[0, :8].numpy().astype(np.float32),
        }

    # prompt_point: fresh state, one click, obj 1
    with official_session(predictor, TensorVideo(frames)) as state, Recorder(predictor, state) as rec:
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=DEV_CLICK, labels=[1])
        heads = _find(rec.take(), "sam_heads")[0]
        o = state["temp_output_dict_per_obj"][0]["cond_frame_outputs"][0]
        out["prompt_point"] = {
            "low_res_multimasks": heads["low_res_multimasks"][0].numpy(),
            "iou_predictions": heads["ious"][0].numpy(),
            "object_score_logit": o["object_score_logits"][0].numpy(),
            "best_index": np.int32(heads["chosen_candidate"][0]),
            "obj_ptr": o["obj_ptr"][0].numpy(),
        }

    # prompt_box: fresh state, box, obj 2
    with official_session(predictor, TensorVideo(frames)) as state, Recorder(predictor, state) as rec:
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=2, box=DEV_BOX)
        heads = _find(rec.take(), "sam_heads")[0]
        o = state["temp_output_dict_per_obj"][0]["cond_frame_outputs"][0]
        out["prompt_box"] = {
            "low_res_mask": o["pred_masks"][0, 0].numpy(),
            "iou_prediction": heads["ious"][0].numpy(),
            "object_score_logit": o["object_score_logits"][0].numpy(),
            "obj_ptr": o["obj_ptr"][0].numpy(),
            "decoder_ious_all4": heads["raw_ious_4"][0].numpy(),
            "decoder_mask0_fp16": heads["raw_mask0"][0].numpy().astype(np.float16),
            "stability_token0": np.float64(heads["stability_token0"][0]),
            "selected_token_index": np.int32(heads["selected_token"][0]),
        }

    # track_single: click on frame 0, propagate forward over all frames
    with (
        official_session(predictor, TensorVideo(frames)) as state,
        Recorder(predictor, state, memattn_output=True) as rec,
    ):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=DEV_CLICK, labels=[1])
        rec.take()
        fr, masks, scores, ptrs, chosen, memattn = [], [], [], [], [], []
        for f, _, _ in predictor.propagate_in_video(state):
            evs = rec.take()
            key = (
                "cond_frame_outputs"
                if f in state["consolidated_frame_inds"]["cond_frame_outputs"]
                else "non_cond_frame_outputs"
            )
            o = state["output_dict"][key][f]
            fr.append(f)
            masks.append(o["pred_masks"][:, 0].numpy().astype(np.float16))
            scores.append(o["object_score_logits"][:, 0].numpy())
            ptrs.append(o["obj_ptr"].numpy())
            tracked = [e for e in evs if e["type"] == "track_step" and e["phase"] == "op"]
            chosen.append(_find(tracked, "sam_heads")[0]["chosen_candidate"] if tracked else [-1])
            memattn.extend(_find(tracked, "memattn"))
        od = state["output_dict"]
        mem = [od["cond_frame_outputs"][0], od["non_cond_frame_outputs"][1], od["non_cond_frame_outputs"][2]]
        out["track_single"] = {
            "frames": np.asarray(fr, np.int32),
            "low_res_masks": np.stack(masks),
            "object_score_logits": np.stack(scores).astype(np.float32),
            "obj_ptr": np.stack(ptrs).astype(np.float32),
            "chosen_candidate": np.asarray(chosen, np.int8),
            "memory_frames": np.asarray([0, 1, 2], np.int32),
            "memory_features": np.stack([m["maskmem_features"][0].numpy() for m in mem]).astype(np.float32),
            "memory_pos_enc": state["constants"]["maskmem_pos_enc"][0][0].numpy().astype(np.float32),
            "memattn_frames": np.asarray([1, 2], np.int32),
            "memattn_output": np.stack([m["output"][0].numpy() for m in memattn[:2]]).astype(np.float16),
            "memattn_num_spatial_mem": np.asarray([m["num_spatial_mem"] for m in memattn], np.int32),
            "memattn_num_ptr_tokens": np.asarray([m["num_ptr_tokens"] for m in memattn], np.int32),
            "memattn_num_memory_tokens": np.asarray([m["num_memory_tokens"] for m in memattn], np.int32),
        }
    return out


def compare_to_golden(regen: dict, golden_dir: Path = SHARED_GOLDEN) -> dict:
    report = {}
    for name, arrays in regen.items():
        with np.load(golden_dir / f"{name}.npz") as z:
            assert sorted(z.files) == sorted(arrays), (name, sorted(z.files), sorted(arrays))
            rep = {}
            for k in z.files:
                g, r = z[k], np.asarray(arrays[k])
                assert g.shape == r.shape and g.dtype == r.dtype, (
                    name,
                    k,
                    g.shape,
                    r.shape,
                    g.dtype,
                    r.dtype,
                )
                if np.issubdtype(g.dtype, np.floating):
                    rep[k] = {
                        "max_abs_diff": float(np.max(np.abs(g.astype(np.float64) - r.astype(np.float64)))),
                        "bit_identical": bool(g.tobytes() == r.tobytes()),
                    }
                else:
                    rep[k] = {"mismatches": int(np.sum(g != r)), "bit_identical": bool(np.array_equal(g, r))}
            report[name] = rep
    return report


# --------------------------------------------------------------------------------------------
# Extra scenarios: replayable op lists
# --------------------------------------------------------------------------------------------
def disk_centre(t: int) -> list[float]:
    return [260.0 + 11 * t, 380.0 + 5 * t]


def square_box(t: int, pad: int = 10) -> list[float]:
    cx, cy, h = 700 - 8 * t, 260 + 9 * t, 120
    return [float(cx - h - pad), float(cy - h - pad), float(cx + h + pad), float(cy + h + pad)]


def ellipse_box(t: int, pad: int = 10) -> list[float]:
    cx, cy = 480 + 5 * t, 820 - 7 * t
    return [
        float(cx - 200 - pad),
        float(cy - 100 - pad),
        float(min(cx + 200 + pad, 1023)),
        float(min(cy + 100 + pad, 1023)),
    ]


SCENARIOS: dict[str, dict] = {
    "salt1_image": {
        "salt": 1,
        "num_frames": 6,
        "description": "image encoder with salt-1 weights on frame 5 (not frame 0)",
        "ops": [{"op": "image_features", "frame_idx": 5}],
    },
    "salt1_prompts": {
        "salt": 1,
        "num_frames": 6,
        "description": (
            "prompts on frame 3 (initial conditioning, one state, independent objects): obj 1 one click then a"
            " negative click appended (clear_old_points=False -> previous logits become the dense mask prompt);"
            " obj 2 box + positive click in one call; obj 4 positive + negative click in one call"
        ),
        "ops": [
            {
                "op": "add_new_points_or_box",
                "frame_idx": 3,
                "obj_id": 1,
                "points": [disk_centre(3)],
                "labels": [1],
            },
            {
                "op": "add_new_points_or_box",
                "frame_idx": 3,
                "obj_id": 1,
                "points": [[676.0, 287.0]],
                "labels": [0],
                "clear_old_points": False,
            },
            {
                "op": "add_new_points_or_box",
                "frame_idx": 3,
                "obj_id": 2,
                "box": ellipse_box(3),
                "points": [[495.0, 799.0]],
                "labels": [1],
            },
            {
                "op": "add_new_points_or_box",
                "frame_idx": 3,
                "obj_id": 4,
                "points": [disk_centre(3), [676.0, 287.0]],
                "labels": [1, 0],
            },
        ],
    },
    "multi_object": {
        "salt": 1,
        "num_frames": 10,
        "description": "3 objects on frame 0 (click on disk, box on square, mask prompt = visible ellipse), batched forward propagation",
        "ops": [
            {
                "op": "add_new_points_or_box",
                "frame_idx": 0,
                "obj_id": 1,
                "points": [disk_centre(0)],
                "labels": [1],
            },
            {"op": "add_new_points_or_box", "frame_idx": 0, "obj_id": 2, "box": square_box(0)},
            {
                "op": "add_new_mask",
                "frame_idx": 0,
                "obj_id": 3,
                "mask": {"visible_mask": "ellipse", "frame": 0},
            },
            {
                "op": "propagate_in_video",
                "start_frame_idx": None,
                "max_frame_num_to_track": None,
                "reverse": False,
                "full_mask_frames": [1, 9],
            },
        ],
    },
    "refine_reverse": {
        "salt": 0,
        "num_frames": 12,
        "description": (
            "click f0, propagate; negative refinement click on tracked f5; positive click at the disk centre on tracked"
            " f8 (also a refinement: f8 is already tracked); propagate forward from 0 again; propagate in reverse from 8"
        ),
        "ops": [
            {
                "op": "add_new_points_or_box",
                "frame_idx": 0,
                "obj_id": 1,
                "points": [disk_centre(0)],
                "labels": [1],
                "store_candidates": False,
            },
            {
                "op": "propagate_in_video",
                "start_frame_idx": None,
                "max_frame_num_to_track": None,
                "reverse": False,
                "full_mask_frames": [1, 5, 11],
            },
            {
                "op": "add_new_points_or_box",
                "frame_idx": 5,
                "obj_id": 1,
                "points": [[120.0, 900.0]],
                "labels": [0],
                "store_candidates": False,
            },
            {
                "op": "add_new_points_or_box",
                "frame_idx": 8,
                "obj_id": 1,
                "points": [disk_centre(8)],
                "labels": [1],
                "store_candidates": False,
            },
            {
                "op": "propagate_in_video",
                "start_frame_idx": 0,
                "max_frame_num_to_track": None,
                "reverse": False,
                "full_mask_frames": [6, 11],
                "memory_frames": [6],
            },
            {
                "op": "propagate_in_video",
                "start_frame_idx": 8,
                "max_frame_num_to_track": None,
                "reverse": True,
                "full_mask_frames": [7, 1],
                "memory_frames": [7],
            },
        ],
    },
    "long40": {
        "salt": 2,
        "num_frames": 40,
        "description": "single click f0, forward over 40 frames: full bank (7 spatial slots, 16 pointers)",
        "ops": [
            {
                "op": "add_new_points_or_box",
                "frame_idx": 0,
                "obj_id": 1,
                "points": [disk_centre(0)],
                "labels": [1],
            },
            {
                "op": "propagate_in_video",
                "start_frame_idx": None,
                "max_frame_num_to_track": None,
                "reverse": False,
                "full_mask_frames": [1, 8, 17, 39],
                "memory_frames": [8, 39],
            },
        ],
    },
    "staggered": {
        "salt": 1,
        "num_frames": 8,
        "description": (
            "two objects prompted on different frames (obj 1 click f0, obj 2 box f3) -> consolidation placeholders:"
            " obj 2 on f0 and obj 1 on f3 get -1024 masks, the empty-mask pointer and score 10, and f3 is *reused* for"
            " both objects during propagation; then clear obj 2's prompt on f3 (downgrade to non-cond) and propagate again"
        ),
        "ops": [
            {
                "op": "add_new_points_or_box",
                "frame_idx": 0,
                "obj_id": 1,
                "points": [disk_centre(0)],
                "labels": [1],
                "store_candidates": False,
            },
            {"op": "add_new_points_or_box", "frame_idx": 3, "obj_id": 2, "box": square_box(3)},
            {
                "op": "propagate_in_video",
                "start_frame_idx": None,
                "max_frame_num_to_track": None,
                "reverse": False,
                "full_mask_frames": [1, 4],
            },
            {"op": "clear_all_prompts_in_frame", "frame_idx": 3, "obj_id": 2},
            {
                "op": "propagate_in_video",
                "start_frame_idx": 0,
                "max_frame_num_to_track": 5,
                "reverse": False,
                "full_mask_frames": [3],
            },
        ],
    },
    "occlusion": {
        "salt": 0,
        "num_frames": 8,
        "weights_override": {"sam_mask_decoder.pred_obj_score_head.layers.2.bias": {"add": -1.6}},
        "description": (
            "object-score bias offset lowered from +2.0 to +0.4 (weights_override, added in float32 after the recipe)"
            " so the object score is > 0 on the prompted frame and < 0 on tracked frames: masks gated to -1024,"
            " pointers = no_obj_ptr, memory encoded from the gated mask. Then a mask prompt (visible disk of f4) on the"
            " already-tracked frame 4 (stored as non-cond, score forced to +10) and forward propagation again"
        ),
        "ops": [
            {
                "op": "add_new_points_or_box",
                "frame_idx": 0,
                "obj_id": 1,
                "points": [disk_centre(0)],
                "labels": [1],
                "store_candidates": False,
            },
            {
                "op": "propagate_in_video",
                "start_frame_idx": None,
                "max_frame_num_to_track": None,
                "reverse": False,
                "full_mask_frames": [1, 7],
                "memory_frames": [1, 2],
            },
            {"op": "add_new_mask", "frame_idx": 4, "obj_id": 1, "mask": {"visible_mask": "disk", "frame": 4}},
            {
                "op": "propagate_in_video",
                "start_frame_idx": 0,
                "max_frame_num_to_track": None,
                "reverse": False,
                "full_mask_frames": [5, 6, 7],
                "memory_frames": [5],
            },
        ],
    },
    "video_res": {
        "salt": 0,
        "num_frames": 4,
        "video_hw": [480, 640],
        "description": (
            "declared video size 480x640 (H, W): prompt points are in video pixels and get normalised x*1024/640,"
            " y*1024/480; outputs are bilinear(low-res 256 -> 480x640). The model input is still the 1024^2"
            " procedural frames (as if the official loader had resized the video)."
        ),
        "ops": [
            {
                "op": "add_new_points_or_box",
                "frame_idx": 0,
                "obj_id": 1,
                "points": [[162.5, 178.125]],
                "labels": [1],
                "store_candidates": False,
            },
            {
                "op": "add_new_points_or_box",
                "frame_idx": 0,
                "obj_id": 2,
                "box": [356.25, 60.9375, 518.75, 182.8125],
            },
            {
                "op": "propagate_in_video",
                "start_frame_idx": None,
                "max_frame_num_to_track": None,
                "reverse": False,
                "video_res_frames": [3],
                "video_res_objects": [0],
                "full_mask_frames": [3],
            },
        ],
    },
}


def _f32(x):
    return np.asarray(x.detach().cpu().numpy() if torch.is_tensor(x) else x, dtype=np.float32)


def _f16(x):
    return np.asarray(x.detach().cpu().numpy() if torch.is_tensor(x) else x, dtype=np.float16)


def _bank_arrays(memattns: list[dict]) -> dict[str, np.ndarray]:
    def pad(rows, width):
        a = np.full((len(rows), width), -1, np.int32)
        for i, r in enumerate(rows):
            a[i, : len(r)] = r
        return a

    return {
        "num_spatial_mem": np.asarray([m["num_spatial_mem"] for m in memattns], np.int32),
        "num_ptr_tokens": np.asarray([m["num_ptr_tokens"] for m in memattns], np.int32),
        "num_memory_tokens": np.asarray([m["num_memory_tokens"] for m in memattns], np.int32),
        "bank_spatial_frames": pad([m["bank_spatial_frames"] for m in memattns], 7),
        "bank_spatial_tpos_index": pad([m["bank_spatial_tpos_index"] for m in memattns], 7),
        "bank_ptr_frames": pad([m["bank_ptr_frames"] for m in memattns], 16),
    }


def run_scenario(predictor, name: str, spec: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Replay ``spec['ops']`` on the official predictor. Returns (arrays, json summary)."""
    T = spec["num_frames"]
    H, W = spec.get("video_hw", [1024, 1024])
    frames = frames_tensor(T)
    arrays: dict[str, np.ndarray] = {}
    summary: dict = {"ops": []}
    with official_session(predictor, TensorVideo(frames, H, W)) as state, Recorder(predictor, state) as rec:
        for i, op in enumerate(spec["ops"]):
            pre = f"op{i}_"
            kind = op["op"]
            s: dict = {"op": kind}
            if kind == "image_features":
                f = op["frame_idx"]
                # the predictor's own path: _get_image_feature -> forward_image (cache miss on frame f)
                with torch.inference_mode():
                    predictor._get_image_feature(state, f, 1)
                _, bb = state["cached_features"][f]
                s0, s1, vis = bb["backbone_fpn"]
                arrays[pre + "vision_features"] = _f32(vis[0])
                arrays[pre + "high_res_feat_s0_ch0_7"] = _f32(s0[0, :8])
                arrays[pre + "high_res_feat_s1_ch0_7"] = _f32(s1[0, :8])
                s["full_stats"] = {
                    n: {
                        "shape": list(t.shape[1:]),
                        "mean": float(t.mean()),
                        "std": float(t.std()),
                        "max_abs": float(t.abs().max()),
                    }
                    for n, t in (("s0", s0), ("s1", s1), ("vis", vis))
                }
            elif kind in ("add_new_points_or_box", "add_new_mask"):
                f, obj_id = op["frame_idx"], op["obj_id"]
                rec.match_obj_idx = state["obj_id_to_idx"].get(obj_id, len(state["obj_id_to_idx"]))
                if kind == "add_new_mask":
                    _, obj_ids, vres = predictor.add_new_mask(
                        state, frame_idx=f, obj_id=obj_id, mask=torch.from_numpy(mask_from_source(op["mask"]))
                    )
                else:
                    _, obj_ids, vres = predictor.add_new_points_or_box(
                        state,
                        frame_idx=f,
                        obj_id=obj_id,
                        points=op.get("points"),
                        labels=op.get("labels"),
                        box=op.get("box"),
                        clear_old_points=op.get("clear_old_points", True),
                    )
                evs = rec.take()
                obj_idx = state["obj_id_to_idx"][obj_id]
                temp = state["temp_output_dict_per_obj"][obj_idx]
                is_cond = f in temp["cond_frame_outputs"]
                o = temp["cond_frame_outputs" if is_cond else "non_cond_frame_outputs"][f]
                steps = [e for e in evs if e["type"] == "track_step"]
                assert len(steps) == 1, steps
                heads = _find(steps, "sam_heads")
                arrays[pre + "low_res_mask"] = _f16(o["pred_masks"][0, 0])
                arrays[pre + "obj_ptr"] = _f32(o["obj_ptr"][0])
                arrays[pre + "object_score_logit"] = _f32(o["object_score_logits"][0])
                s.update(
                    frame_idx=f,
                    obj_id=obj_id,
                    obj_ids_after=list(obj_ids),
                    is_cond=is_cond,
                    is_init_cond_frame=steps[0]["is_init_cond_frame"],
                    reverse=steps[0]["reverse"],
                    num_points=steps[0]["num_points"],
                    prev_logits_as_mask_prompt=steps[0]["has_prev_logits"],
                    object_score_logit=float(o["object_score_logits"][0, 0]),
                    fg_fraction=float((o["pred_masks"][0, 0] > 0).float().mean()),
                )
                h = heads[0]
                arrays[pre + "decoder_ious_all4"] = _f32(h["raw_ious_4"][0])
                arrays[pre + "ious"] = _f32(h["ious"][0])
                s["multimask"] = h["multimask"]
                s["decoder_ious_all4"] = [round(float(v), 6) for v in h["raw_ious_4"][0]]
                s["iou_margin_top2_tokens1to3"] = round(h["iou_margin"][0], 6)
                if kind == "add_new_mask":
                    s["note"] = (
                        "pred mask = antialiased(mask*20-10); decoder run only for the pointer (token 0); score = +10 if any(mask) else -10"
                    )
                    s["ptr_decoder_multimask"] = h["multimask"]
                elif h["multimask"]:
                    if op.get("store_candidates", True):
                        arrays[pre + "candidate_masks"] = _f16(h["low_res_multimasks"][0])
                    arrays[pre + "chosen_candidate"] = np.int8(h["chosen_candidate"][0])
                    s["chosen_candidate"] = h["chosen_candidate"][0]
                else:
                    arrays[pre + "stability_token0"] = np.float64(h["stability_token0"][0])
                    arrays[pre + "selected_token_index"] = np.int8(h["selected_token"][0])
                    s["stability_token0"] = round(h["stability_token0"][0], 6)
                    s["selected_token_index"] = h["selected_token"][0]
                ma = _find(steps, "memattn")
                if ma:
                    for k, v in _bank_arrays(ma).items():
                        arrays[pre + k] = v[0]
                    s["bank"] = {
                        k: ma[0][k]
                        for k in (
                            "num_spatial_mem",
                            "num_ptr_tokens",
                            "bank_spatial_frames",
                            "bank_spatial_tpos_index",
                            "bank_ptr_frames",
                        )
                    }
                if op.get("store_video_res"):
                    arrays[pre + "video_res_masks"] = _f16(vres[:, 0])
                    arrays[pre + "video_res_binary_packed"] = np.packbits((vres[:, 0] > 0).numpy(), axis=-1)
            elif kind == "clear_all_prompts_in_frame":
                f, obj_id = op["frame_idx"], op["obj_id"]
                _, obj_ids, vres = predictor.clear_all_prompts_in_frame(state, f, obj_id)
                evs = rec.take()
                s.update(
                    frame_idx=f,
                    obj_id=obj_id,
                    cond_frames_after=sorted(state["output_dict"]["cond_frame_outputs"]),
                    frames_already_tracked_after=sorted(state["frames_already_tracked"]),
                    f_in_noncond_after=f in state["output_dict"]["non_cond_frame_outputs"],
                    model_calls=len(evs),
                )
            elif kind == "propagate_in_video":
                s.update({k: op.get(k) for k in ("start_frame_idx", "max_frame_num_to_track", "reverse")})
                rec.match_obj_idx = 0
                ys: dict[str, list] = {
                    k: [] for k in ("frames", "kind", "masks", "ptr", "score", "chosen", "margin", "ious")
                }
                memattns, per_frame = [], []
                before = {}
                for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
                    for fr_, o_ in state["output_dict"][key].items():
                        before[fr_] = (o_["pred_masks"].clone(), o_["obj_ptr"].clone())
                video_res, mem_store = {}, {}
                first = True
                gen = predictor.propagate_in_video(
                    state,
                    start_frame_idx=op.get("start_frame_idx"),
                    max_frame_num_to_track=op.get("max_frame_num_to_track"),
                    reverse=op.get("reverse", False),
                )
                for f, _obj_ids, vres in gen:
                    evs = rec.take()
                    cfi = state["consolidated_frame_inds"]
                    if first:
                        first = False
                        pre_ev = [e for e in evs if e.get("phase") == "preflight"]
                        cons = sorted(cfi["cond_frame_outputs"]) + sorted(cfi["non_cond_frame_outputs"])
                        s["consolidated_cond_frames"] = sorted(cfi["cond_frame_outputs"])
                        s["consolidated_noncond_frames"] = sorted(cfi["non_cond_frame_outputs"])
                        s["preflight_memory_encoder_frames"] = [
                            e["frame_idx"] for e in pre_ev if e["type"] == "run_memory_encoder"
                        ]
                        s["preflight_empty_ptr_frames"] = [
                            e["frame_idx"] for e in pre_ev if e["type"] == "track_step"
                        ]
                        od = state["output_dict"]
                        new = [c for c in cons if c in s["preflight_memory_encoder_frames"]]
                        cm = [
                            (
                                od["cond_frame_outputs"]
                                if c in cfi["cond_frame_outputs"]
                                else od["non_cond_frame_outputs"]
                            )[c]
                            for c in new
                        ]
                        if (
                            new
                        ):  # frames whose prompts were consolidated (memory re-encoded) by this preflight
                            arrays[pre + "consolidated_frames"] = np.asarray(new, np.int32)
                            arrays[pre + "consolidated_is_cond"] = np.asarray(
                                [c in cfi["cond_frame_outputs"] for c in new]
                            )
                            arrays[pre + "consolidated_memory_features"] = np.stack(
                                [_f32(m["maskmem_features"]) for m in cm]
                            )
                            arrays[pre + "consolidated_obj_ptr"] = np.stack([_f32(m["obj_ptr"]) for m in cm])
                            arrays[pre + "consolidated_object_score_logits"] = np.stack(
                                [_f32(m["object_score_logits"][:, 0]) for m in cm]
                            )
                        evs = [e for e in evs if e.get("phase") != "preflight"]
                    if f in cfi["cond_frame_outputs"]:
                        k, key = 1, "cond_frame_outputs"
                    elif f in cfi["non_cond_frame_outputs"]:
                        k, key = 2, "non_cond_frame_outputs"
                    else:
                        k, key = 0, "non_cond_frame_outputs"
                    o = state["output_dict"][key][f]
                    B = o["pred_masks"].shape[0]
                    steps = [e for e in evs if e["type"] == "track_step"]
                    assert (k == 0) == (len(steps) == 1), (f, k, len(steps))
                    ys["frames"].append(f)
                    ys["kind"].append(k)
                    ys["masks"].append(_f16(o["pred_masks"][:, 0]))
                    ys["ptr"].append(_f32(o["obj_ptr"]))
                    ys["score"].append(_f32(o["object_score_logits"][:, 0]))
                    rowinfo = {
                        "frame": f,
                        "kind": ["tracked", "reused_cond", "reused_noncond"][k],
                        "object_score_logits": [round(float(v), 5) for v in o["object_score_logits"][:, 0]],
                        "fg_fraction": [
                            round(float(v), 5) for v in (o["pred_masks"][:, 0] > 0).float().mean((-1, -2))
                        ],
                    }
                    if k == 0:
                        h = _find(steps, "sam_heads")[0]
                        ys["chosen"].append(h["chosen_candidate"])
                        ys["margin"].append(h["iou_margin"])
                        ys["ious"].append(_f32(h["ious"]))
                        ma = _find(steps, "memattn")[0]
                        memattns.append(ma)
                        rowinfo.update(
                            chosen_candidate=h["chosen_candidate"],
                            iou_margin_top2=[round(v, 6) for v in h["iou_margin"]],
                            bank_spatial_frames=ma["bank_spatial_frames"],
                            bank_spatial_tpos_index=ma["bank_spatial_tpos_index"],
                            bank_ptr_frames=ma["bank_ptr_frames"],
                        )
                    else:
                        ys["chosen"].append([-1] * B)
                        ys["margin"].append([np.nan] * B)
                        ys["ious"].append(np.full((B, 3), np.nan, np.float32))
                    if f in before:
                        rowinfo["bit_identical_to_previous_output"] = bool(
                            torch.equal(before[f][0], o["pred_masks"])
                            and torch.equal(before[f][1], o["obj_ptr"])
                        )
                    per_frame.append(rowinfo)
                    if f in op.get("memory_frames", []):
                        mem_store[f] = _f32(o["maskmem_features"])
                    if f in op.get("video_res_frames", []):
                        video_res[f] = vres[op.get("video_res_objects", slice(None)), 0].clone()
                    ys.setdefault("vres_bits", []).append(
                        np.packbits((vres[:, 0] > 0).numpy(), axis=-1) if "video_hw" in spec else None
                    )
                n = len(ys["frames"])
                arrays[pre + "frames"] = np.asarray(ys["frames"], np.int32)
                arrays[pre + "kind"] = np.asarray(ys["kind"], np.int8)
                full = op.get("full_mask_frames")
                if full is None:
                    arrays[pre + "low_res_masks"] = np.stack(ys["masks"])
                else:
                    idx = [j for j, fr in enumerate(ys["frames"]) if fr in full]
                    arrays[pre + "low_res_masks_frames"] = np.asarray(
                        [ys["frames"][j] for j in idx], np.int32
                    )
                    arrays[pre + "low_res_masks"] = np.stack([ys["masks"][j] for j in idx])
                    arrays[pre + "low_res_masks_sub4"] = np.stack([m[:, ::4, ::4] for m in ys["masks"]])
                arrays[pre + "object_score_logits"] = np.stack(ys["score"]).astype(np.float32)
                arrays[pre + "obj_ptr"] = np.stack(ys["ptr"]).astype(np.float32)
                arrays[pre + "chosen_candidate"] = np.asarray(ys["chosen"], np.int8)
                arrays[pre + "iou_margin"] = np.asarray(ys["margin"], np.float32)
                arrays[pre + "ious"] = np.stack(ys["ious"]).astype(np.float32)
                if memattns:
                    tracked = [fr for fr, kk in zip(ys["frames"], ys["kind"], strict=True) if kk == 0]
                    arrays[pre + "tracked_frames"] = np.asarray(tracked, np.int32)
                    for kname, v in _bank_arrays(memattns).items():
                        arrays[pre + kname] = v
                if mem_store:
                    arrays[pre + "memory_frames"] = np.asarray(sorted(mem_store), np.int32)
                    arrays[pre + "memory_features"] = np.stack([mem_store[f] for f in sorted(mem_store)])
                if video_res:
                    arrays[pre + "video_res_frames"] = np.asarray(sorted(video_res), np.int32)
                    arrays[pre + "video_res_masks"] = np.stack(
                        [_f16(video_res[f]) for f in sorted(video_res)]
                    )
                if "video_hw" in spec:
                    arrays[pre + "video_res_binary_packed"] = np.stack(ys["vres_bits"])
                s["frames_yielded"] = ys["frames"]
                s["per_frame"] = per_frame
                s["num_yields"] = n
                s["frames_already_tracked_after"] = {
                    str(k): v["reverse"] for k, v in sorted(state["frames_already_tracked"].items())
                }
            else:
                raise ValueError(f"unknown op {kind}")
            summary["ops"].append(s)
        arrays["memory_pos_enc"] = (
            _f32(state["constants"]["maskmem_pos_enc"][0][0])
            if "maskmem_pos_enc" in state["constants"]
            else np.zeros((0,), np.float32)
        )
        if arrays["memory_pos_enc"].size == 0:
            del arrays["memory_pos_enc"]
    return arrays, summary


def _array_doc(arrays: dict[str, np.ndarray]) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()}


def run_extra(names: list[str], out_dir: Path, threads: int = 2) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "scenarios.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"scenarios": {}}
    predictors: dict[str, object] = {}
    # group scenarios that share weights so each model is built once (stable order otherwise)
    names = sorted(
        names,
        key=lambda n: json.dumps(
            [SCENARIOS[n]["salt"], SCENARIOS[n].get("weights_override")], sort_keys=True
        ),
    )
    for name in names:
        spec = SCENARIOS[name]
        wkey = json.dumps([spec["salt"], spec.get("weights_override")], sort_keys=True)
        if wkey not in predictors:
            predictors.clear()
            predictors[wkey] = build_official_predictor(
                spec["salt"], threads=threads, weights_override=spec.get("weights_override")
            )
        t0 = time.time()
        arrays, summary = run_scenario(predictors[wkey], name, spec)
        dt = time.time() - t0
        path = out_dir / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        entry = copy.deepcopy(spec)
        entry.update(
            file=path.name,
            video_hw=spec.get("video_hw", [1024, 1024]),
            coordinates="points/boxes in video pixels (x, y); video_hw=(H, W); with 1024x1024 these are 1024-px model coordinates",
            arrays=_array_doc(arrays),
            results=summary,
            runtime_s=round(dt, 1),
            file_bytes=path.stat().st_size,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        index["scenarios"][name] = entry
        print(f"{name}: {dt:.1f}s, {path.stat().st_size / 1e6:.2f} MB, {len(arrays)} arrays", flush=True)
    index.update(
        generator="tools/official_oracle.py (official edgetam-dimos==1.0.1 `sam2`, configs/edgetam.yaml, CPU fp32)",
        patches=[
            "P1 memory features fp32",
            "P2 fill_hole_area=0",
            "P3 perceiver forward_2d per object",
            "P4 pretrained=False",
            "P5 tensor frames",
        ],
        torch=torch.__version__,
        threads=threads,
        weights_recipe="edgetam-synth-v1 (edgetam_export.models.synthetic_state_dict(salt))",
        frames="edgetam_export.testing.procedural_frame(t) -> preprocess",
    )
    index["scenarios"] = dict(sorted(index["scenarios"].items()))
    index_path.write_text(json.dumps(index, indent=1, default=_json_default) + "\n")
    return index


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and o != o:
        return None
    raise TypeError(type(o))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser(
        "verify-golden", help="regenerate the salt-0 dev set and diff it against shared/golden"
    )
    v.add_argument("--golden", type=Path, default=SHARED_GOLDEN)
    v.add_argument("--save", type=Path, default=None, help="also write the regenerated .npz files here")
    v.add_argument("--threads", type=int, default=2)
    e = sub.add_parser("extra", help="generate extra golden scenarios")
    e.add_argument("--only", nargs="*", default=None, choices=sorted(SCENARIOS))
    e.add_argument("--out", type=Path, default=EXTRA_DIR)
    e.add_argument("--threads", type=int, default=2)
    sub.add_parser("list", help="list extra scenarios")
    args = ap.parse_args(argv)

    if args.cmd == "list":
        for k, s in SCENARIOS.items():
            print(f"{k}: salt {s['salt']}, {s['num_frames']} frames - {s['description']}")
        return 0
    if args.cmd == "verify-golden":
        t0 = time.time()
        p = build_official_predictor(0, threads=args.threads)
        regen = regenerate_dev_set(p)
        dt = time.time() - t0
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for name, arrays in regen.items():
                np.savez_compressed(args.save / f"{name}.npz", **arrays)
        report = compare_to_golden(regen, args.golden)
        worst = 0.0
        all_bits = True
        for name, rep in report.items():
            for k, r in rep.items():
                all_bits &= r["bit_identical"]
                worst = max(worst, r.get("max_abs_diff", 0.0))
                print(f"{name:15s} {k:28s} " + ", ".join(f"{a}={b}" for a, b in r.items()))
        print(f"runtime {dt:.1f}s; all bit-identical: {all_bits}; worst max|diff| {worst:.3g}")
        return (
            0
            if worst <= 1e-6
            and all(r.get("mismatches", 0) == 0 for rep in report.values() for r in rep.values())
            else 1
        )
    names = args.only or list(SCENARIOS)
    run_extra(names, args.out, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
