"""Replays one extra scenario (a list of official API calls) on the official predictor and records arrays.

Returns the ``.npz`` arrays (named ``op{i}_*``, see tests/golden/extra/README.md) and a JSON summary.
"""

from __future__ import annotations

import numpy as np
import torch

from .inputs import frames_tensor, mask_from_source
from .patches import TensorVideo, official_session
from .recorder import Recorder, _find


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
