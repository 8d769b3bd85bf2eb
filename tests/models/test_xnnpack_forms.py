"""The XNNPACK-lowerable rewrites (models/xnnpack_forms.py) equal the reference wrappers on real
feeds, and the session's ExecuTorch graphs run entirely inside the XNNPACK delegate."""

from __future__ import annotations

import copy

import pytest
import torch
from edgetam_export.exporters.onnx_exporter import MOBILE_FORMS_KEEP
from edgetam_export.models.layers import LayerNorm2d
from edgetam_export.models.memory_attention import MemoryAttention
from edgetam_export.models.memory_encoder import CXBlock
from edgetam_export.models.wrap_memory_attention import MemoryAttentionExport
from edgetam_export.models.xnnpack_forms import (
    FP16_OUTSIDE_DELEGATE,
    HALF_AV_BLOCK,
    HALF_TINY,
    XnnHalfGELU,
    XnnHalfLayerNorm,
    XnnLayerNorm,
    XnnLayerNorm2d,
    equal,
    rewritten_types,
    row_max,
    softmax_weighted_sum,
    split_depthwise,
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
    onnx_form = xnnpack_forms(module, keep=MOBILE_FORMS_KEEP)
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


def test_split_depthwise_is_the_7x7_convolution():
    """Nine shifted 3x3 depthwise convolutions equal the 7x7 one (bias included) at every pixel,
    borders too; a wrong shift or a dropped block moves the output by the kernel's scale."""
    g = torch.Generator().manual_seed(0)
    block = CXBlock(16).eval()
    with torch.no_grad():
        for prm in block.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g))
    fast = xnnpack_forms(block)
    blocks, shifts, extent = split_depthwise(block.dwconv.weight.detach())
    assert (
        len(blocks) == 9
        and extent == 3
        and sorted(shifts) == [(a, b) for a in (-3, 0, 3) for b in (-3, 0, 3)]
    )
    x = torch.randn(1, 16, 12, 9, generator=g)
    with torch.no_grad():
        want, got = block.dwconv(x), fast._depthwise(x)
        assert (want - got).abs().max() <= 1e-5 * want.abs().max()
        assert (block(x) - fast(x)).abs().max() <= 1e-5 * block(x).abs().max()
    with pytest.raises(ValueError, match="depthwise"):
        split_depthwise(torch.zeros(4, 1, 6, 6))


def test_cross_attention_in_memory_space_equals_the_reference_with_masked_slots():
    """The memory attention form (unrotated keys scored in 64-d, values projected after the
    softmax, keys regrouped) equals the reference wrapper with invalid slots and pointers holding
    garbage; swapping two valid slots changes nothing (permutation invariance is what the
    regrouping relies on)."""
    g = torch.Generator().manual_seed(2)
    ma = MemoryAttention()
    with torch.no_grad():
        for prm in ma.parameters():
            prm.copy_(0.05 * torch.randn(prm.shape, generator=g))
    ref = MemoryAttentionExport(ma, 0.1 * torch.randn(7, 1, 1, 64, generator=g), 3, 5).eval()
    fast = xnnpack_forms(ref)
    vis, mem, tpos, ptr, slot_valid, ptr_valid = ref.example_inputs()
    vis, mem, ptr = (torch.randn(t.shape, generator=g) for t in (vis, mem, ptr))
    tpos = torch.nn.functional.one_hot(torch.tensor([[0, 3, 5]]), 7).float()
    slot_valid = torch.tensor([[1.0, 0.0, 1.0]])
    ptr_valid = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0]])
    mem[:, 512:1024] = 10.0 * torch.randn(1, 512, 64, generator=g)  # the invalid slot: garbage
    with torch.no_grad():
        want = ref(vis, mem, tpos, ptr, slot_valid, ptr_valid)[0]
        got = fast(vis, mem, tpos, ptr, slot_valid, ptr_valid)[0]
        swapped = torch.cat([mem[:, 1024:], mem[:, 512:1024], mem[:, :512]], 1)
        got_swapped = fast(vis, swapped, tpos.flip(1), ptr, slot_valid.flip(1), ptr_valid)[0]
    _check("features", "memory attention form", want, got)
    _check("features", "memory attention form, slots swapped", want, got_swapped)
    assert {"XnnMemoryAttention", "XnnMemoryAttentionLayer"} <= set(rewritten_types(fast))


def test_softmax_weighted_sum_is_softmax_times_values_and_fp16_forms_use_it(wrappers):
    """The fp16 form (unnormalized ``exp(s − rowmax)``, blocked ``u @ [v | 1]``, one division)
    equals ``softmax(s) @ v`` in float64 for key counts that do and do not divide into blocks and
    for logits offset by ±1e4 (no overflow: the row max is subtracted); ``row_max`` is ``amax``
    for odd and even lengths; ``xnnpack_forms(half=True)`` sets the block on every attention form
    and the float forms keep ``softmax`` + one product."""
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 255, 3665, 4096):
        x = torch.randn(2, 3, n, generator=g, dtype=torch.float64)
        assert torch.equal(row_max(x), x.amax(-1, keepdim=True)), n
    for nk, offset in ((HALF_AV_BLOCK - 1, 0.0), (4096, 1e4), (3648 + 17, -1e4)):
        s = torch.randn(2, 5, nk, generator=g, dtype=torch.float64) * 4 + offset
        v = torch.randn(2, nk, 16, generator=g, dtype=torch.float64)
        want = torch.softmax(s, -1) @ v
        torch.testing.assert_close(softmax_weighted_sum(s, v, HALF_AV_BLOCK), want, rtol=0, atol=1e-12)
        torch.testing.assert_close(softmax_weighted_sum(s, v), want, rtol=0, atol=1e-12)
    for graph in ("prompt_decoder", "memory_encoder", "memory_attention"):
        ref = wrappers[graph][0]
        half = [m for m in xnnpack_forms(ref, half=True).modules() if hasattr(type(m), "av_block")]
        full = [m for m in xnnpack_forms(ref).modules() if hasattr(type(m), "av_block")]
        assert half and all(m.av_block == HALF_AV_BLOCK for m in half), graph
        assert all(m.av_block is None for m in full), graph


class _FlushHalfSubnormals(torch.overrides.TorchFunctionMode):
    """Every float16 result below :data:`HALF_TINY` in magnitude becomes 0, as under XNNPACK's
    disabled denormals on ARM (FPCR.FZ16); arithmetic otherwise as torch's (fp32 accumulation)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.dtype == torch.float16:
            out = torch.where(out.abs() < HALF_TINY, torch.zeros_like(out), out)
        return out


def test_fp16_attention_survives_flushed_subnormals():
    """A spread-out attention (the memory attention's cross-attention over ~3.6k memory keys is one)
    in fp16 with subnormals flushed: a normalized softmax loses every probability under 6.1e-5 and
    misses the float64 result by 3.7e-2 of scale (the size of the error measured on the real graph
    under qemu), the fp16 form by 1.6e-3. Case: 8 queries, 3665 keys, logits N(0, 1.5²), so most
    probabilities sit near or under 1/3665 ≈ 2.7e-4; values N(0.5, 1)."""
    g = torch.Generator().manual_seed(0)
    nk = 3648 + 17
    s = torch.randn(1, 8, nk, generator=g, dtype=torch.float64) * 1.5
    v = torch.randn(1, nk, 16, generator=g, dtype=torch.float64) + 0.5
    want = torch.softmax(s, -1) @ v
    with _FlushHalfSubnormals():
        p = torch.softmax(s.half(), -1)
        normalized = sum(p[..., i : i + 256] @ v.half()[:, i : i + 256] for i in range(0, nk, 256))
        form = softmax_weighted_sum(s.half(), v.half(), HALF_AV_BLOCK)
    scale = want.abs().max()
    err_normalized = ((normalized.double() - want).abs().max() / scale).item()
    err_form = ((form.double() - want).abs().max() / scale).item()
    assert int((p == 0).sum()) > nk  # the flush is real: thousands of probabilities vanished
    assert err_normalized > 1.5e-2, err_normalized
    assert err_form < 5e-3, err_form


def test_fp16_softmax_weighted_sum_through_executorch():
    """The fp16 attention form over 4096 near-uniform keys through ExecuTorch's XNNPACK delegate
    (every op inside it) stays within 5e-3 of max|out|. On CPUs with native fp16 arithmetic
    (AVX512-FP16 here; phones) one long product was measured at 0.17 on the decoder's real feeds."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    class Attend(nn.Module):
        def forward(self, s, v):
            return softmax_weighted_sum(s, v, HALF_AV_BLOCK)

    g = torch.Generator().manual_seed(0)
    s = torch.randn(8, 14, 4096, generator=g)
    v = torch.randn(8, 4096, 16, generator=g) * 0.3
    args = (s.half(), v.half())
    edge = to_edge_transform_and_lower(
        torch.export.export(Attend().half(), args), partitioner=[XnnpackPartitioner()]
    )
    outside = [
        n.target
        for n in edge.exported_program().graph.nodes
        if n.op == "call_function" and "delegate" not in str(n.target) and "getitem" not in str(n.target)
    ]
    assert all("_to_dim_order_copy" in str(t) for t in outside), outside  # 0-dim scalar casts only
    method = Runtime.get().load_program(edge.to_executorch().buffer).load_method("forward")
    got = method.execute(list(args))[0].double()
    want = torch.softmax(s.double(), -1) @ v.double()
    err = ((got - want).abs().max() / want.abs().max()).item()
    assert err < 5e-3, err


def test_half_layer_norm_squares_unit_sized_deviations():
    """XnnHalfLayerNorm brings each token's deviations to unit size before squaring, so the variance
    it takes the rsqrt of stays inside fp16's normal range (>= 6.1e-5, which ARM's fp16 units keep:
    they flush subnormals to zero) and below overflow, for token scales from 1e-3 to 1e3; and it
    still equals LayerNorm there (float64)."""
    g = torch.Generator().manual_seed(0)
    ln = nn.LayerNorm(256, eps=1e-6).double()
    half = XnnHalfLayerNorm(ln.weight, ln.bias, ln.eps, -1).double()
    for scale in (1e-3, 1.0, 1e3):
        x = torch.randn(4, 256, generator=g, dtype=torch.float64) * scale + 7.0 * scale
        y, _ = half.unit_deviations(x)
        var = half._mean(y * y)
        assert var.min() >= 6.1e-5 and var.max() < 1e3, (scale, var.min(), var.max())
        torch.testing.assert_close(half(x), ln(x), rtol=1e-9, atol=1e-9)
