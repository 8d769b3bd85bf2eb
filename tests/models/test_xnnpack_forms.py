"""The XNNPACK-lowerable rewrites (models/xnnpack_forms.py) equal the reference wrappers on real
feeds, and the session's ExecuTorch graphs run entirely inside the XNNPACK delegate."""

from __future__ import annotations

import copy

import pytest
import torch
from edgetam_export.models.layers import LayerNorm2d
from edgetam_export.models.xnnpack_forms import (
    FP16_OUTSIDE_DELEGATE,
    XnnHalfGELU,
    XnnHalfLayerNorm,
    XnnLayerNorm,
    XnnLayerNorm2d,
    equal,
    rewritten_types,
    step,
    xnnpack_forms,
)
from torch import nn

from edgetam_export.verify.bundle_check import OUTPUT_KINDS, reference_runtime
from edgetam_export.verify.metrics import compare
from edgetam_export.verify.tolerances import tolerance

# finite edge cases: signed zeros, denormals, values around the 0.5 threshold, huge magnitudes
EDGES = torch.tensor(
    [
        -3.0e38,
        -2.0,
        -1.0,
        -0.5,
        -1e-45,
        -0.0,
        0.0,
        1e-45,
        1e-30,
        0.25,
        0.5,
        0.50000006,
        0.75,
        1.0,
        2.0,
        3.0e38,
    ]
)


def test_step_and_equal_are_the_comparisons_bit_for_bit():
    assert torch.equal(step(EDGES), (EDGES > 0).float())
    assert torch.equal(step(EDGES - 0.5), (EDGES > 0.5).float())
    labels = torch.tensor([[-1.0, 0.0, 1.0, 2.0, 3.0, -1.0, 7.0, 0.5]])
    ids = torch.arange(4, dtype=torch.float32)
    assert torch.equal(equal(labels.unsqueeze(-1), ids), (labels.unsqueeze(-1) == ids).float())
    assert torch.equal(equal(labels, -1.0), (labels == -1.0).float())


def _check(kind: str, name: str, ref: torch.Tensor, got: torch.Tensor) -> None:
    problems = tolerance("xnnpack_forms", "fp32", kind).check(compare(name, ref.numpy(), got.numpy()))
    assert not problems, problems


def test_layer_norms_equal_the_reference():
    g = torch.Generator().manual_seed(0)
    ln = nn.LayerNorm(256)
    ln2 = LayerNorm2d(64)
    with torch.no_grad():
        for p in (ln.weight, ln.bias, ln2.weight, ln2.bias):
            p.copy_(torch.randn(p.shape, generator=g))
    x = 3.0 + 5.0 * torch.randn(1, 512, 256, generator=g)
    x2 = 3.0 + 5.0 * torch.randn(1, 64, 32, 32, generator=g)
    fast, fast2 = xnnpack_forms(ln), xnnpack_forms(ln2)
    assert isinstance(fast, XnnLayerNorm) and isinstance(fast2, XnnLayerNorm2d)
    assert isinstance(fast, nn.LayerNorm)  # fp16_compute still keeps it as an fp32 island
    with torch.no_grad():
        _check("features", "layer_norm", ln(x), fast(x))
        _check("features", "layer_norm_2d", ln2(x2), fast2(x2))


def test_fp16_forms_equal_the_reference():
    """fp32: within the rewrite tolerance; fp16: finite and within the fp16 tolerance where a
    plainly squared deviation (> 256) would overflow fp16."""
    g = torch.Generator().manual_seed(0)
    x = 4.0 * torch.randn(1, 64, 32, 32, generator=g)
    with torch.no_grad():
        _check("features", "gelu", torch.nn.functional.gelu(x), XnnHalfGELU()(x))
        ln = nn.LayerNorm(256)
        ln2 = LayerNorm2d(64)
        for p in (ln.weight, ln.bias, ln2.weight, ln2.bias):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        fast2 = xnnpack_forms(nn.Sequential(ln2, nn.GELU()), half=True)
        assert [type(m) for m in fast2] == [XnnHalfLayerNorm, XnnHalfGELU]
        half = XnnHalfLayerNorm(ln.weight, ln.bias, ln.eps, -1)
        half2 = XnnHalfLayerNorm(ln2.weight, ln2.bias, ln2.eps, 1)
        t = 600.0 * torch.randn(1, 512, 256, generator=g)
        _check("features", "half_layer_norm", ln(t), half(t))
        _check("features", "half_layer_norm_2d", ln2(x * 200), half2(x * 200))
        got = copy.deepcopy(half).half()(t.half()).float()
        assert torch.isfinite(got).all()
        want = ln(t)
        problems = tolerance("executorch", "fp16", "features").check(
            compare("fp16 ln", want.numpy(), got.numpy())
        )
        assert not problems, problems
        gelu16 = XnnHalfGELU().half()(x.half()).float()
        assert torch.isfinite(gelu16).all()
        problems = tolerance("executorch", "fp16", "features").check(
            compare("fp16 gelu", torch.nn.functional.gelu(x).numpy(), gelu16.numpy())
        )
        assert not problems, problems


@pytest.fixture(scope="module")
def wrappers(exported_bundles):
    """``{graph: (reference wrapper, rewritten copy)}`` built from the session bundle's weights."""
    ref = reference_runtime(exported_bundles["main"])
    return {g: (m, xnnpack_forms(m)) for g, m in ref.modules.items()}


@pytest.mark.parametrize("graph", ["prompt_decoder", "memory_encoder", "memory_attention"])
def test_rewritten_wrappers_equal_the_reference_on_real_feeds(wrappers, bench_capture, graph):
    """Both the ExecuTorch forms and the ONNX ones (LayerNorms kept) equal the reference wrapper."""
    module, fast = wrappers[graph]
    onnx_form = xnnpack_forms(module, keep=(nn.LayerNorm, LayerNorm2d))
    assert rewritten_types(fast) and not rewritten_types(module)
    norms = {"XnnLayerNorm", "XnnLayerNorm2d"}
    assert norms & set(rewritten_types(fast)) and not norms & set(rewritten_types(onnx_form))
    assert set(rewritten_types(onnx_form)) < set(rewritten_types(fast))
    calls = [c for c in bench_capture.calls.values() if c.graph == graph and c.key.endswith("/obj0")]
    assert calls, f"no recorded {graph} call"
    names = module.contract.input_names
    for call in calls:
        args = [torch.from_numpy(call.feeds[n]) for n in names]
        with torch.no_grad():
            want, got, got_onnx = module(*args), fast(*args), onnx_form(*args)
        for spec, w, o, x in zip(module.contract.outputs, want, got, got_onnx, strict=True):
            _check(OUTPUT_KINDS[spec.name], f"{call.key}/{spec.name}", w, o)
            _check(OUTPUT_KINDS[spec.name], f"{call.key}/{spec.name} (onnx form)", w, x)


def test_prompt_decoder_ignores_garbage_in_unused_slots_as_before(wrappers):
    """Invalid point slots and an unused mask prompt may hold any finite values: both forms ignore them."""
    module, fast = wrappers["prompt_decoder"]
    args = list(module.example_inputs())
    g = torch.Generator().manual_seed(1)
    pt_xy, pt_label, pt_valid = args[4].clone(), args[5].clone(), args[6]
    unused = pt_valid[0] == 0
    pt_xy[0, unused] = 1e6 * torch.randn(int(unused.sum()), 2, generator=g)
    pt_label[0, unused] = torch.tensor([3.0, 0.5, 7.0, 2.0, 1.0, -5.0])[: int(unused.sum())]
    args[4], args[5] = pt_xy, pt_label
    args[7] = 50.0 * torch.randn(1, 1, 256, 256, generator=g)  # mask_in with has_mask = 0
    with torch.no_grad():
        clean = module(*module.example_inputs())
        want, got = module(*args), fast(*args)
    for spec, c, w, o in zip(module.contract.outputs, clean, want, got, strict=True):
        assert torch.equal(c, w), spec.name  # the reference ignores them exactly
        _check(OUTPUT_KINDS[spec.name], spec.name, w, o)


def test_image_encoder_needs_no_rewrite(wrappers):
    _, fast = wrappers["image_encoder"]
    assert rewritten_types(fast) == []


def test_every_executorch_graph_runs_inside_the_xnnpack_delegate(exported_bundles):
    """fp32: 100% of the compute ops in the delegate; fp16: only the named exceptions stay outside."""
    arts = [a for a in exported_bundles["main"].artifacts if a["backend"] == "executorch"]
    assert {a["precision"] for a in arts} == {"fp32", "fp16"}
    for a in arts:
        n = a["notes"]
        where = f"{a['graph']} {a['precision']}: {n['non_delegated']}"
        if a["precision"] == "fp32":
            assert n["coverage"] == 1.0 and n["non_delegated_ops"] == 0, where
        else:
            assert set(n["non_delegated"]) <= set(FP16_OUTSIDE_DELEGATE), where
        assert n["delegate_calls"] >= 1, where


def test_rank4_window_partition_is_the_rank5_one_bit_for_bit():
    """The perceiver's window partition (rank <= 4 for the Neural Engine) moves exactly the values
    the former rank-5 form (B·nh, ws, nw, ws, C) did."""
    from edgetam_export.models.perceiver import PerceiverResampler

    x = torch.randn(2, 64, 64, 64, generator=torch.Generator().manual_seed(0))
    b, c = x.shape[:2]
    ws, nh, nw = 4, 16, 16
    rank5 = x.permute(0, 2, 3, 1).reshape(b * nh, ws, nw, ws, c).permute(0, 2, 1, 3, 4)
    assert torch.equal(
        PerceiverResampler.window_tokens(PerceiverResampler(), x), rank5.reshape(-1, ws * ws, c)
    )
