"""The developer golden set (shared golden folder): regenerate it on the official predictor and diff it.

Outputs: image_encoder, prompt_point, prompt_box, track_single (same arrays as the shared ``*.npz``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .inputs import frames_tensor
from .patches import TensorVideo, official_session
from .recorder import Recorder, _find

DEV_FRAMES = 12
DEV_CLICK = [[260.0, 380.0]]
DEV_BOX = [570.0, 130.0, 830.0, 390.0]


def regenerate_dev_set(predictor) -> dict[str, dict[str, np.ndarray]]:
    """The four developer-set groups from salt-0 ``predictor``: {group: {array name: array}}."""
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


def compare_to_golden(regen: dict, golden_dir: Path) -> dict:
    """Per array of ``regen``: max|diff| and bit identity against ``golden_dir/<name>.npz`` (asserts same keys/shapes)."""
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
