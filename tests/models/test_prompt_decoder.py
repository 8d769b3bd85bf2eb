"""Prompt encoder + mask decoder reference and the ``prompt_decoder`` export wrapper.

Golden parity (frame 0, salt 0) for the click and the box prompts, exact inertness of unused
point slots, the has_mask / use_no_mem blends, and torch.export.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from edgetam_export.models.layers import MLP, sub_state_dict
from edgetam_export.models.mask_decoder import MaskDecoder
from edgetam_export.models.prompt_encoder import PromptEncoder
from edgetam_export.models.wrap_prompt_decoder import PromptDecoderExport, pack_points

from edgetam_export.tracker.decisions import decide

CLICK = {"points_xy": [(260.0, 380.0)], "labels": [1]}
BOX = {"box_xyxy": (570.0, 130.0, 830.0, 390.0)}


@pytest.fixture(scope="module")
def parts(synthetic_sd):
    pe = PromptEncoder()
    pe.load_state_dict(sub_state_dict(synthetic_sd, "sam_prompt_encoder"), strict=True)
    md = MaskDecoder()
    md.load_state_dict(sub_state_dict(synthetic_sd, "sam_mask_decoder"), strict=True)
    ptr = MLP(256, 256, 256, 3)
    ptr.load_state_dict(sub_state_dict(synthetic_sd, "obj_ptr_proj"), strict=True)
    return pe.eval(), md.eval(), ptr.eval(), synthetic_sd["no_mem_embed"], synthetic_sd["no_obj_ptr"]


def _wrapper(parts, max_points=8) -> PromptDecoderExport:
    pe, md, ptr, no_mem, _ = parts
    return PromptDecoderExport(pe, md, ptr, no_mem, max_points=max_points).eval()


@pytest.fixture(scope="module")
def wrapper(parts):
    return _wrapper(parts)


@pytest.fixture(scope="module")
def golden_vis(golden):
    return torch.from_numpy(golden("image_encoder")["vision_features"])[None]


@pytest.fixture(scope="module")
def rand_feats():
    g = torch.Generator().manual_seed(1)
    return 0.35 * torch.randn(1, 32, 256, 256, generator=g), 0.35 * torch.randn(1, 64, 128, 128, generator=g)


@pytest.fixture(scope="module")
def encoder_feats(synthetic_sd, frame_tensor, parts):
    """Frame 0 through the unfused reference image encoder: (feat_s0, feat_s1, vis)."""
    from edgetam_export.models.image_encoder import ImageEncoder

    enc = ImageEncoder()
    enc.load_state_dict(sub_state_dict(synthetic_sd, "image_encoder"), strict=True)
    md = parts[1]
    with torch.no_grad():
        l0, l1, vis = enc.eval()(frame_tensor(0))
        return md.conv_s0(l0), md.conv_s1(l1), vis


def _run(w, pix, s0, s1, xy, lab, valid, mask_in=None, has_mask=0.0, use_no_mem=1.0, dtype=torch.float32):
    mask_in = torch.zeros(1, 1, 256, 256, dtype=dtype) if mask_in is None else mask_in
    no_mem_flag = torch.full((1, 1), use_no_mem, dtype=dtype)
    mask_flag = torch.full((1, 1), has_mask, dtype=dtype)
    with torch.no_grad():
        return w(pix, no_mem_flag, s0, s1, xy, lab, valid, mask_in, mask_flag)


def _assert_fp32_same(outs, refs):
    """Same computation up to fp32 summation order: 1e-5 on logits (scale ~5), 1e-6 elsewhere."""
    names, atols = ("masks", "iou", "obj_logit", "ptr_all"), (1e-5, 1e-6, 1e-6, 2e-6)
    for name, a, r, atol in zip(names, outs, refs, atols, strict=True):
        torch.testing.assert_close(a, r, atol=atol, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def _official_style(parts, pix, s0, s1, xy, lab, mask_in=None, add_no_mem=True):
    """Unpadded, unmasked reference (official semantics): exactly the given tokens, no key bias."""
    pe, md, ptr, no_mem, _ = parts
    if add_no_mem:
        pix = pix + no_mem.reshape(1, 256, 1, 1)
    with torch.no_grad():
        sparse, dense = pe(xy, lab, mask_in)
        masks, iou, tokens, obj = md(pix, pe.get_dense_pe(), sparse, dense, s0, s1)
        return masks, iou, obj, ptr(tokens)


# ----------------------------------------------------------------------------- structure


def test_checkpoint_names_and_dense_pe_buffer(parts, synthetic_sd):
    pe, md, *_ = parts
    assert set(pe.state_dict()) == set(sub_state_dict(synthetic_sd, "sam_prompt_encoder"))
    assert set(md.state_dict()) == set(sub_state_dict(synthetic_sd, "sam_mask_decoder"))
    assert "dense_pe" in dict(pe.named_buffers()) and "dense_pe" not in pe.state_dict()
    # independent formula, docs/MODEL.md §2.3: u = ((col+.5)/64, (row+.5)/64), phi = 2π(2u−1)G, [sin, cos]
    g = synthetic_sd["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].double()
    for row, col in [(0, 0), (5, 63), (40, 17)]:
        u = torch.tensor([(col + 0.5) / 64, (row + 0.5) / 64], dtype=torch.float64)
        phi = 2 * math.pi * ((2 * u - 1) @ g)
        ref = torch.cat([phi.sin(), phi.cos()])
        torch.testing.assert_close(pe.dense_pe[:, row, col].double(), ref, atol=2e-5, rtol=0)


def test_dense_pe_follows_a_parent_load(synthetic_sd):
    """The dense PE is recomputed when the prompt encoder is loaded as part of a container."""
    parent = torch.nn.Module()
    parent.sam_prompt_encoder = PromptEncoder()
    before = parent.sam_prompt_encoder.dense_pe.clone()
    sd = {k: v for k, v in synthetic_sd.items() if k.startswith("sam_prompt_encoder.")}
    parent.load_state_dict(sd, strict=True)
    fresh = PromptEncoder()
    fresh.load_state_dict(sub_state_dict(synthetic_sd, "sam_prompt_encoder"))
    assert not torch.equal(before, parent.sam_prompt_encoder.dense_pe)
    assert torch.equal(fresh.dense_pe, parent.sam_prompt_encoder.dense_pe)


def test_functional_point_embedding_matches_masked_assignment(parts):
    """where/one-hot form == the official in-place masked-assignment semantics (exactly)."""
    pe = parts[0]
    xy = torch.tensor([[[570.0, 130.0], [830.0, 390.0], [260.0, 380.0], [17.0, 1000.0], [0.0, 0.0]]])
    lab = torch.tensor([[2.0, 3.0, 1.0, 0.0, -1.0]])
    with torch.no_grad():
        got = pe.embed_points(xy, lab)
        u = (xy + 0.5) / 1024.0
        ref = pe.pe_layer(u).clone()
        ref[lab == -1] = 0.0
        ref[lab == -1] += pe.not_a_point_embed.weight
        for k in range(4):
            ref[lab == k] += pe.point_embeddings[k].weight
    assert torch.equal(got, ref)


def test_contract_and_example_inputs(wrapper):
    c = wrapper.contract
    assert c.name == "prompt_decoder"
    assert c.input_names == [
        "pix",
        "use_no_mem",
        "feat_s0",
        "feat_s1",
        "pt_xy",
        "pt_label",
        "pt_valid",
        "mask_in",
        "has_mask",
    ]
    assert c.output_names == ["masks", "iou", "obj_logit", "ptr_all"]
    assert [s.shape for s in c.outputs] == [(1, 4, 256, 256), (1, 4), (1, 1), (1, 4, 256)]
    assert all(s.description for s in c.inputs + c.outputs)
    ex = wrapper.example_inputs()
    assert [tuple(t.shape) for t in ex] == [s.shape for s in c.inputs]
    feeds = dict(zip(c.input_names, ex, strict=True))
    for flag in ("use_no_mem", "pt_valid", "has_mask"):
        assert set(feeds[flag].unique().tolist()) <= {0.0, 1.0}
    assert feeds["pt_valid"].sum() == 2 and feeds["pt_label"][0, 1] == -1  # click + padding point
    outs = wrapper.run(**feeds)
    assert [tuple(outs[n].shape) for n in c.output_names] == [s.shape for s in c.outputs]
    assert all(torch.isfinite(v).all() for v in outs.values())


# ----------------------------------------------------------------------------- golden


def test_golden_tokens_from_golden_vis(parts, wrapper, golden, golden_vis, rand_feats, parity):
    """IoU, object score and pointers do not depend on feat_s0/s1: check them with golden vis."""
    no_obj = parts[4]
    s0, s1 = rand_feats
    pt = golden("prompt_point")
    masks, iou, obj, ptr_all = _run(wrapper, golden_vis, s0, s1, *pack_points(**CLICK))
    d = decide(masks, iou, obj, ptr_all, no_obj, multimask=True)
    parity.check(
        "prompt_point.iou_predictions[vis]", pt["iou_predictions"], iou[0, 1:], "official", "fp32", "scores"
    )
    parity.check(
        "prompt_point.object_score[vis]", pt["object_score_logit"], obj[0], "official", "fp32", "scores"
    )
    parity.check("prompt_point.obj_ptr[vis]", pt["obj_ptr"], d.ptr, "official", "fp32", "features")
    assert d.candidate_index == int(pt["best_index"])

    box = golden("prompt_box")
    masks, iou, obj, ptr_all = _run(wrapper, golden_vis, s0, s1, *pack_points(**BOX))
    parity.check(
        "prompt_box.decoder_ious_all4[vis]", box["decoder_ious_all4"], iou[0], "official", "fp32", "scores"
    )
    parity.check(
        "prompt_box.object_score[vis]", box["object_score_logit"], obj[0], "official", "fp32", "scores"
    )
    parity.check("prompt_box.obj_ptr[vis]", box["obj_ptr"], ptr_all[0, 0], "official", "fp32", "features")


def test_golden_prompt_point(parts, wrapper, encoder_feats, golden, parity):
    s0, s1, vis = encoder_feats
    g = golden("prompt_point")
    masks, iou, obj, ptr_all = _run(wrapper, vis, s0, s1, *pack_points(**CLICK))
    d = decide(masks, iou, obj, ptr_all, parts[4], multimask=True)
    assert d.appear and (obj.item() > 0) == (float(g["object_score_logit"][0]) > 0)
    assert d.candidate_index == int(g["best_index"])
    parity.check(
        "prompt_point.low_res_multimasks", g["low_res_multimasks"], masks[0, 1:], "official", "fp32", "logits"
    )
    parity.check(
        "prompt_point.iou_predictions", g["iou_predictions"], iou[0, 1:], "official", "fp32", "scores"
    )
    parity.check(
        "prompt_point.object_score_logit", g["object_score_logit"], obj[0], "official", "fp32", "scores"
    )
    parity.check("prompt_point.obj_ptr", g["obj_ptr"], d.ptr, "official", "fp32", "features")
    parity.check(
        "prompt_point.selected_mask",
        g["low_res_multimasks"][g["best_index"]],
        d.low_res_mask[0],
        "official",
        "fp32",
        "logits",
    )


def test_golden_prompt_box(parts, wrapper, encoder_feats, golden, parity):
    s0, s1, vis = encoder_feats
    g = golden("prompt_box")
    masks, iou, obj, ptr_all = _run(wrapper, vis, s0, s1, *pack_points(**BOX))
    d = decide(masks, iou, obj, ptr_all, parts[4], multimask=False)
    assert d.appear and (float(g["object_score_logit"][0]) > 0)
    assert d.chosen == int(g["selected_token_index"])
    assert d.ptr_token == 0
    parity.check(
        "prompt_box.low_res_mask", g["low_res_mask"], d.low_res_mask[0], "official", "fp32", "logits"
    )
    parity.check("prompt_box.iou_prediction", g["iou_prediction"], [d.iou], "official", "fp32", "scores")
    parity.check(
        "prompt_box.object_score_logit", g["object_score_logit"], obj[0], "official", "fp32", "scores"
    )
    parity.check("prompt_box.obj_ptr", g["obj_ptr"], d.ptr, "official", "fp32", "features")
    parity.check("prompt_box.decoder_ious_all4", g["decoder_ious_all4"], iou[0], "official", "fp32", "scores")
    # golden stores mask 0 as fp16: compare after casting ours to fp16
    m0_16 = masks[0, 0].numpy().astype(np.float16).astype(np.float32)
    parity.check(
        "prompt_box.decoder_mask0_fp16",
        g["decoder_mask0_fp16"].astype(np.float32),
        m0_16,
        "official",
        "fp32",
        "fp16_stored",
    )
    # stability counts pixels against ±0.05: a logit within fp32 noise (~1e-6) of the threshold can
    # flip, worth 1/14433 each; allow 2 such pixels (the decision margin to 0.98 is 0.197).
    assert d.stability == pytest.approx(float(g["stability_token0"]), abs=2.5 / 14433)


# ----------------------------------------------------------------------------- static-shape semantics


def _garbage_slots(max_points: int = 8):
    """Click + padding point valid, then unused slots full of garbage (incl. non-finite values)."""
    xy, lab, valid = pack_points(**CLICK, max_points=max_points)
    g = torch.Generator().manual_seed(3)
    n = max_points - 2
    xy[0, 2:] = torch.rand(n, 2, generator=g) * 1024
    lab[0, 2:] = torch.tensor([0.0, 1.0, 2.0, 3.0, 1.0, 0.0])[:n]
    xy[0, -1] = torch.tensor([float("nan"), float("inf")])
    return xy, lab, valid


def test_padding_slots_are_inert_float64(parts, golden_vis, rand_feats):
    """In float64 rounding cannot hide a leak: NP=8 with garbage == NP=2 == unpadded official form."""
    parts64 = (*(copy.deepcopy(p).double() for p in parts[:4]), parts[4])
    parts64[0].refresh_dense_pe()  # float64 dense PE, before any wrapper or reference uses it
    vis, s0, s1 = golden_vis.double(), rand_feats[0].double(), rand_feats[1].double()
    xy2, lab2, valid2 = (t.double() for t in pack_points(**CLICK, max_points=2))
    ref = _official_style(parts64, vis, s0, s1, xy2, lab2)
    small = _run(_wrapper(parts64, max_points=2), vis, s0, s1, xy2, lab2, valid2, dtype=torch.float64)
    big = _run(
        _wrapper(parts64, 8), vis, s0, s1, *(t.double() for t in _garbage_slots()), dtype=torch.float64
    )
    for a, b, r in zip(small, big, ref, strict=True):
        torch.testing.assert_close(b, a, atol=1e-11, rtol=0)
        torch.testing.assert_close(b, r, atol=1e-11, rtol=0)


def test_padding_slots_are_inert(parts, wrapper, golden_vis, rand_feats):
    """fp32: equal up to GEMM-blocking rounding (the official 1- vs 2-thread noise is 4e-6 on logits)."""
    s0, s1 = rand_feats
    xy2, lab2, valid2 = pack_points(**CLICK, max_points=2)
    ref = _official_style(parts, golden_vis, s0, s1, xy2, lab2)
    small = _run(_wrapper(parts, max_points=2), golden_vis, s0, s1, xy2, lab2, valid2)
    xy8, lab8, valid8 = _garbage_slots()
    big = _run(wrapper, golden_vis, s0, s1, xy8, lab8, valid8)
    _assert_fp32_same(big, small)
    _assert_fp32_same(big, ref)

    # controls: the same slots made valid, or naive (0,0,-1) padding left valid, change the outputs
    valid_all = torch.ones_like(valid8)
    xy8[0, -1] = 0.0
    leaky = _run(wrapper, golden_vis, s0, s1, xy8, lab8, valid_all)
    assert (leaky[0] - ref[0]).abs().max() > 1e-2
    xy_naive, lab_naive, _ = pack_points(**CLICK, max_points=8)
    naive = _run(wrapper, golden_vis, s0, s1, xy_naive, lab_naive, valid_all)
    assert (naive[0] - ref[0]).abs().max() > 1e-3


def test_has_mask_and_use_no_mem_blends(parts, wrapper, golden_vis, rand_feats):
    s0, s1 = rand_feats
    xy, lab, valid = pack_points(**BOX)
    xy3, lab3 = xy[:, :3], lab[:, :3]
    g = torch.Generator().manual_seed(4)
    mask_in = 8.0 * torch.randn(1, 1, 256, 256, generator=g)

    # has_mask = 1: dense = mask_downscaling(mask_in)
    got = _run(wrapper, golden_vis, s0, s1, xy, lab, valid, mask_in=mask_in, has_mask=1.0)
    ref = _official_style(parts, golden_vis, s0, s1, xy3, lab3, mask_in=mask_in)
    _assert_fp32_same(got, ref)

    # has_mask = 0: mask_in is ignored, even when it is garbage
    garbage = torch.full((1, 1, 256, 256), float("nan"))
    got0 = _run(wrapper, golden_vis, s0, s1, xy, lab, valid, mask_in=garbage, has_mask=0.0)
    ref0 = _official_style(parts, golden_vis, s0, s1, xy3, lab3)
    _assert_fp32_same(got0, ref0)
    assert (got[0] - got0[0]).abs().max() > 1e-2  # the mask prompt does matter

    # use_no_mem = 0: pix is used as is (the mask-prompt / memory-conditioned path)
    got_raw = _run(wrapper, golden_vis, s0, s1, xy, lab, valid, use_no_mem=0.0)
    ref_raw = _official_style(parts, golden_vis, s0, s1, xy3, lab3, add_no_mem=False)
    _assert_fp32_same(got_raw, ref_raw)
    assert (got_raw[0] - got0[0]).abs().max() > 1e-2


def test_torch_export(wrapper, golden_vis, rand_feats):
    ex = wrapper.example_inputs()
    ep = torch.export.export(wrapper, ex)
    gm = ep.module()
    # no data-dependent control flow: the same program is right for another prompt/flag pattern
    s0, s1 = rand_feats
    xy, lab, valid = pack_points(**BOX)
    inputs = (
        golden_vis,
        torch.zeros(1, 1),
        s0,
        s1,
        xy,
        lab,
        valid,
        torch.randn(1, 1, 256, 256),
        torch.ones(1, 1),
    )
    for args in (ex, inputs):
        with torch.no_grad():
            want = wrapper(*args)
            got = gm(*args)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
