"""Export-only rewrites that put every op of the export wrappers inside ExecuTorch's XNNPACK delegate (on copies).

ExecuTorch's XNNPACK partitioner (1.5.x) lowers a fixed op set; what it rejects runs on the
portable kernels (single-threaded, unvectorised on a phone). :func:`xnnpack_forms` returns a
deep copy of an export wrapper in which each rejected construct is replaced by an equal form
built from lowered ops only. Nothing here changes the reference modules.

=====================================  ============================================  =========
construct (rejected op)                 rewrite (lowered ops)                         equality
=====================================  ============================================  =========
``nn.LayerNorm`` (native_layer_norm)    mean / variance as ``linear`` with a 1/C row   fp32 ulp
``LayerNorm2d`` mean over C (mean.out)  mean / variance as a 1x1 ``conv`` (1/C)        fp32 ulp
``x > t`` / ``.to(float)`` (gt, cast)   ``ceil(clamp(x − t, 0, 1))``                   exact
``a == b`` (eq.Scalar / eq.Tensor)      ``1 − ceil(clamp(|a − b|, 0, 1))``             exact
``where(k, a, 0)`` / ``full_like``      ``a · k`` / ``label·k + (k − 1)``              exact*
``expand`` / ``repeat`` (batch 1)       ``reshape`` or ``· ones``                      exact
``unsqueeze`` on a leading axis         ``reshape``                                    exact
``x[:, i]`` (select_copy), ``stack``    ``x[:, i:i+1]`` + ``cat``                      exact
``a @ B`` with a computed B (mm)        ``linear`` with B stored as a buffer          exact**
int scalars (int64 constant + cast)     float scalars                                 exact
``q @ k`` (a same-shape expand + bmm)   explicit ``bmm``; 4-D: heads folded in batch  exact
depthwise 7×7 conv (grouped IGEMM)      nine shifted depthwise 3×3 convs              fp32 ulp
memory cross-attention (speed, not      unrotated keys scored in the 64-d memory       fp32 ulp
lowering): 256-d keys and values        space, ``v_proj`` after the softmax (−17 GF)
fp16 only: long sums (precision, not    attention values summed in blocks of 256       fp16
lowering) on native-fp16 CPUs           keys; LayerNorm means in two passes            re-assoc.
=====================================  ============================================  =========

``*`` for finite inputs (the host sends finite tensors; a NaN in an unused slot would now
propagate). ``**`` bit-identical for one-hot inputs; otherwise fp32 re-association.

The copy keeps every module's type (rewritten classes are subclasses that override
``forward`` only), so :func:`~edgetam_export.models.precision.fp16_compute` still finds the
LayerNorms it keeps in fp32.
"""

from __future__ import annotations

import copy
import math
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .constants import IMAGE_SIZE
from .layers import LayerNorm2d
from .mask_decoder import NUM_MASK_TOKENS, NUM_OUTPUT_TOKENS, MaskDecoder
from .memory_attention import (
    KEY_MASK_BIAS,
    MemoryAttention,
    MemoryAttentionLayer,
    split_pointers,
)
from .memory_encoder import MASK_BIAS, MASK_SCALE, CXBlock, MemoryEncoder
from .perceiver import CrossAttention, PerceiverResampler, SelfAttention
from .prompt_encoder import PAD_LABEL, PromptEncoder, RandomFourierPE
from .rope import apply_rope
from .two_way_transformer import INVALID_KEY_BIAS, Attention, TwoWayTransformer
from .wrap_memory_attention import TOKENS_PER_PTR, TOKENS_PER_SLOT, MemoryAttentionExport
from .wrap_memory_encoder import MemoryEncoderExport
from .wrap_prompt_decoder import PromptDecoderExport

M = TypeVar("M", bound=nn.Module)

# Edge ops that stay outside the delegate in the fp16 programs, each with its reason. Only dtype
# conversions remain (ExecuTorch 1.5's XNNPACK partitioner lowers none): the float32 <-> float16
# casts of the graph inputs and outputs (the contract keeps float32 I/O), and casts of 0-dim
# constants: every Python scalar in an fp16 op (``x * 0.5``) becomes a float32 constant plus a
# cast (a registered buffer does not: ``fp16_compute`` halves it).
FP16_OUTSIDE_DELEGATE = {
    "dim_order_ops._to_dim_order_copy.default": "float32 -> float16 casts of the graph I/O and of 0-dim "
    "scalar constants: XNNPACK's partitioner rejects dtype conversions",
}


def step(x: torch.Tensor) -> torch.Tensor:
    """``1[x > 0]`` in the dtype of ``x``, as ``ceil(clamp(x, 0, 1))`` (any shape): exact for every finite x."""
    return torch.ceil(torch.clamp(x, 0.0, 1.0))


def equal(a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """``1[a == b]`` (broadcast) as ``1 − step(|a − b|)``: exact for finite a, b (``a − b = 0`` iff ``a = b``)."""
    return 1.0 - step(torch.abs(a - b))


# Keys per partial product of an attention's value sum in fp16 programs (see
# :func:`softmax_weighted_sum`): measured on the decoder's token-to-image attention (4096 keys, head
# dim 16) through ExecuTorch on an AVX512-FP16 CPU, rel. error 0.17 in one product, 1.8e-3 in blocks of 256.
HALF_AV_BLOCK = 256
# Smallest normal float16 (2^-14). XNNPACK runs every operator with denormals disabled
# (PTHREADPOOL_FLAG_DISABLE_DENORMALS: FPCR.FZ16 on ARM), so an fp16 value below it is flushed to 0.
HALF_TINY = 2.0**-14


def row_max(x: torch.Tensor) -> torch.Tensor:
    """``x.amax(-1, keepdim=True)``: x (..., N) -> (..., 1), as a tree of ``maximum`` over two
    overlapping halves (XNNPACK lowers ``maximum`` and slices, not ``amax``; the overlap is
    harmless because max is idempotent). Exact."""
    while x.shape[-1] > 1:
        n = x.shape[-1]
        h = (n + 1) // 2
        x = torch.maximum(x[..., :h], x[..., n - h :])
    return x


def softmax_weighted_sum(scores: torch.Tensor, v: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """``softmax(scores) @ v``: scores (B, Nq, Nk), v (B, Nk, D) -> (B, Nq, D).

    Without ``block`` (fp32 programs): ``torch.softmax`` then ``bmm``. With ``block`` (fp16
    programs), the probabilities are never normalized: ``u = exp(scores - rowmax)`` lies in
    (0, 1] with 1 at the top key, and one blocked product ``u @ [v | 1]`` gives numerator and
    denominator, divided at the end (exact in real arithmetic). The blocks: on CPUs with native
    fp16 arithmetic (x86 AVX512-FP16; ARMv8.2 FP16, i.e. phones) XNNPACK accumulates an fp16 GEMM
    in fp16, and one accumulation over thousands of keys whose weighted values cancel loses most
    of a small result, while ``block``-key partials added in turn do not. A normalized fp16 softmax over
    Nk keys has probabilities near 1/Nk; every one below :data:`HALF_TINY` is flushed to zero
    under XNNPACK's disabled denormals, which on an emulated ARMv8.2 core (qemu cortex-a76) lost
    enough of the memory attention's spread-out cross-attention to move its output by 3.7e-2 of
    scale (1.7e-2 with that attention in fp32; 8e-3 in this form, in an emulation of the same
    flush). Here only keys below ``rowmax − 9.7`` (where ``exp`` leaves the normal range, as in
    XNNPACK's own softmax) are lost. The values are scaled by a power of two ``≤ 1/#blocks`` so
    the running sums stay below ``block · max|v|`` (fp16 overflows at 65504); values under
    ``HALF_TINY / scale`` (≤ 1e-3) flush to zero, an absolute error that small in the output.
    """
    if block is None:
        return torch.bmm(torch.softmax(scores, dim=-1), v)
    u = torch.exp(scores - row_max(scores))
    nk = u.shape[-1]
    blocks = -(-nk // block)
    scale = 2.0 ** -math.ceil(math.log2(blocks)) if blocks > 1 else 1.0
    # (B, Nk, D + 1): the values and a ones column (the sum of u), both times `scale`
    v1 = torch.cat([v * scale, v[..., :1] * 0.0 + scale], dim=-1)
    if blocks == 1:
        out = torch.bmm(u, v1)
    else:
        out = None
        for s in range(0, nk, block):
            part = torch.bmm(u[:, :, s : s + block], v1[:, s : s + block])
            out = part if out is None else out + part
    d = v.shape[-1]
    return out[..., :d] / out[..., d:]


def bmm_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    bias: torch.Tensor | None = None,
    block: int | None = None,
) -> torch.Tensor:
    """``softmax(q·kᵀ·scale + bias)·v`` with explicit ``bmm``: q (B, Nq, D), k/v (B, Nk, D), bias
    broadcastable to (B, Nq, Nk) or None -> (B, Nq, D). ``q @ kᵀ`` on 3-D tensors decomposes to
    a same-shape ``expand`` (not lowered) before its ``bmm``; the kernel is the same, so this is
    bit-identical to the ``@`` form. ``block``: see :func:`softmax_weighted_sum` (fp16 programs).
    """
    scores = torch.bmm(q, k.transpose(1, 2)) * scale
    if bias is not None:
        scores = scores + bias
    return softmax_weighted_sum(scores, v, block)


# ----------------------------------------------------------------------------- layer norms


class XnnLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last axis (..., C) -> (..., C) with both means as ``linear`` by a 1/C row.

    Buffer ``avg`` (1, C) = 1/C. Same parameters and eps as the module it replaces.
    """

    def _prepare(self) -> None:
        c = self.normalized_shape[-1]
        w = self.weight
        self.register_buffer("avg", torch.full((1, c), 1.0 / c, dtype=w.dtype, device=w.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.avg
        d = x - F.linear(x, avg)  # (..., C) - (..., 1)
        var = F.linear(d * d, avg)
        return d * torch.rsqrt(var + self.eps) * self.weight + self.bias


class XnnLayerNorm2d(LayerNorm2d):
    """:class:`LayerNorm2d` (B, C, H, W) -> (B, C, H, W) with the channel means as a 1x1 conv by 1/C.

    Buffer ``avg`` (1, C, 1, 1) = 1/C.
    """

    def _prepare(self) -> None:
        c = self.weight.shape[0]
        w = self.weight
        self.register_buffer("avg", torch.full((1, c, 1, 1), 1.0 / c, dtype=w.dtype, device=w.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.avg
        d = x - F.conv2d(x, avg)  # (B, C, H, W) - (B, 1, H, W)
        var = F.conv2d(d * d, avg)
        x = d / torch.sqrt(var + self.eps)
        c = self.weight.shape[0]
        return self.weight.reshape(1, c, 1, 1) * x + self.bias.reshape(1, c, 1, 1)


class XnnHalfLayerNorm(nn.Module):
    """LayerNorm over the last axis (..., C), or the channels of (B, C, H, W), safe to compute in
    fp16 with fp16 accumulation, for fp16 programs without fp32 islands.

    ``d = x − mean(x)`` in two passes (``d0 = x − mean(x)``, ``d = d0 − mean(d0)``; ``mean(d0)`` is
    0 in real arithmetic): XNNPACK accumulates fp16 GEMMs in fp16 on CPUs with native fp16
    arithmetic (x86 AVX512-FP16; ARMv8.2 FP16, i.e. phones), and one pass loses the mean of tokens
    whose channels share a large offset (offset 50: rel. error 0.47 with one pass, 0.013 with two).

    The deviations are then brought to unit size per token before squaring: ``k = 1 / (2·(mean|d|
    + 2^-10))``, ``y = k·d`` (so |y| <= C/2 and y² cannot overflow), and the output is
    ``y·rsqrt(mean(y²) + (k·√eps)²)``, which equals ``d·rsqrt(mean(d²) + eps)`` for any k > 0.
    A fixed scale cannot serve every token: with the former ``2^-4`` the variances of whole
    LayerNorms (the decoder's first norm1, the prompt encoder's mask path, the perceiver's latents)
    fell below fp16's smallest normal number (6.1e-5), which ARM's fp16 units flush to zero
    (rsqrt(0) = inf: non-finite outputs under qemu's cortex-a76).

    Not a ``nn.LayerNorm`` subclass, so ``fp16_compute`` does not wrap it in an fp32 island.
    Holds the replaced module's ``weight``/``bias`` (C,), and buffers ``avg`` (1, C) = 1/C,
    ``one``, ``floor`` (2^-10) and ``root_eps`` (√eps), each (1,).
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter, eps: float, channels_dim: int):
        super().__init__()
        self.weight, self.bias, self.eps = weight, bias, eps
        self.channels_dim = channels_dim  # -1: (..., C) tokens; 1: (B, C, H, W) maps
        c = weight.shape[0]
        shape = (1, c) if channels_dim == -1 else (1, c, 1, 1)
        self.register_buffer("avg", torch.full(shape, 1.0 / c, dtype=weight.dtype))
        # tensors, not Python scalars: a scalar becomes a float32 constant cast outside the delegate
        self.register_buffer("one", torch.ones(1, dtype=weight.dtype))
        self.register_buffer("floor", torch.full((1,), 2.0**-10, dtype=weight.dtype))
        self.register_buffer("root_eps", torch.full((1,), math.sqrt(eps), dtype=weight.dtype))

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.avg) if self.channels_dim == -1 else F.conv2d(x, self.avg)

    def unit_deviations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, e)``: the deviations of ``x`` brought to unit size, ``y = k·d``, and ``e = k·√eps``."""
        d0 = x - self._mean(x)
        d = d0 - self._mean(d0)
        m = self._mean(torch.abs(d)) + self.floor
        k = self.one / (m + m)
        return d * k, k * self.root_eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, e = self.unit_deviations(x)
        out = y * torch.rsqrt(self._mean(y * y) + e * e)
        if self.channels_dim == -1:
            return out * self.weight + self.bias
        c = self.weight.shape[0]
        return self.weight.reshape(1, c, 1, 1) * out + self.bias.reshape(1, c, 1, 1)


# Abramowitz & Stegun 7.1.26: erfc(z) ~= (a1 t + ... + a5 t^5) exp(-z^2), t = 1/(1 + p z), z >= 0,
# absolute error <= 1.5e-7 (far below fp16's 4.9e-4 unit roundoff).
_ERFC_P = 0.3275911
_ERFC_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


class XnnHalfGELU(nn.Module):
    """Exact-erf GELU from ops XNNPACK lowers in fp16 (it has no fp16 GELU): (any shape) -> same.

    ``gelu(x) = x·Φ(x)``, ``Φ(x) = Q/2 + 1[x > 0]·(1 − Q)`` with ``Q = erfc(|x|/√2)`` from
    A&S 7.1.26 (|error| <= 1.5e-7, i.e. <= 0.75e-7·|x| on gelu). Used only in fp16 programs.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("one", torch.ones(1))  # a tensor numerator: ``1.0 / t`` would be reciprocal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.abs(x) * 0.7071067811865476
        t = self.one / (1.0 + _ERFC_P * z)
        poly = _ERFC_A[4]
        for a in reversed(_ERFC_A[:4]):
            poly = poly * t + a
        q = poly * t * torch.exp(-(z * z))
        return x * (0.5 * q + step(x) * (1.0 - q))


def _half_form(m: nn.Module) -> nn.Module | None:
    """The fp16 form of a LayerNorm / LayerNorm2d / exact GELU, or None for any other module."""
    if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
        return XnnHalfLayerNorm(m.weight, m.bias, m.eps, -1)
    if isinstance(m, LayerNorm2d):
        return XnnHalfLayerNorm(m.weight, m.bias, m.eps, 1)
    if isinstance(m, nn.GELU) and m.approximate == "none":
        return XnnHalfGELU()
    return None


# ----------------------------------------------------------------------------- memory attention


class XnnMemoryAttentionExport(MemoryAttentionExport):
    """:class:`MemoryAttentionExport` with the key bias built by ``· ones`` (no expand) and the
    temporal lookup as ``linear`` (exact for one-hot ``mem_tpos``). Same I/O."""

    def _prepare(self) -> None:
        t = self.tpos_table
        self.register_buffer("tpos_table_t", t.t().contiguous())  # (64, 7)
        self.register_buffer("ones_slot", torch.ones(TOKENS_PER_SLOT, dtype=t.dtype))
        self.register_buffer("ones_ptr", torch.ones(TOKENS_PER_PTR, dtype=t.dtype))

    def forward(self, vis, mem, mem_tpos, ptr, slot_valid, ptr_valid):
        s, p = self.num_spatial_slots, self.num_ptr_slots
        tpos = F.linear(mem_tpos, self.tpos_table_t)  # (1, S, 64)
        base = self.mem_pos_base.reshape(1, 1, TOKENS_PER_SLOT, -1)
        pos = (base + tpos.reshape(1, s, 1, -1)).reshape(1, s * TOKENS_PER_SLOT, -1)
        ptr_tokens = split_pointers(ptr, self.mem_pos_base.shape[-1])
        slot_bias = ((1.0 - slot_valid) * KEY_MASK_BIAS).unsqueeze(-1) * self.ones_slot  # (1, S, 512)
        ptr_bias = ((1.0 - ptr_valid) * KEY_MASK_BIAS).unsqueeze(-1) * self.ones_ptr  # (1, P, 4)
        key_bias = torch.cat(
            [slot_bias.reshape(1, s * TOKENS_PER_SLOT), ptr_bias.reshape(1, p * TOKENS_PER_PTR)], 1
        )
        return (self.memory_attention(vis, mem, pos, ptr_tokens, key_bias),)


class XnnMemoryAttention(MemoryAttention):
    """:class:`MemoryAttention` with the memory keys regrouped for :class:`XnnMemoryAttentionLayer`.

    The cross-attention keys are reordered once per call into the unrotated ones (every slot's
    256 global latents, then the pointer tokens: ``Np = 256·S + T``) and the rotated 2-D latents
    (``256·S``); values and key bias follow the same order. Attention is invariant to a common
    permutation of keys, values and bias, so the output is the reference's.
    """

    def _prepare(self) -> None:
        pass

    def forward(self, vis, mem_spatial, mem_spatial_pos, ptr_tokens, key_bias=None):
        b, c, h, w = vis.shape
        n_slot = self.tokens_per_slot
        s = mem_spatial.shape[1] // n_slot
        n_glob = n_slot - self.mem_grid * self.mem_grid  # global latents lead each slot
        x = vis.flatten(2).transpose(1, 2) + 0.1 * self.curr_pos()
        mem_k = (mem_spatial + mem_spatial_pos).reshape(b, s, n_slot, self.mem_dim)
        mem_v = mem_spatial.reshape(b, s, n_slot, self.mem_dim)
        glob_k = mem_k[:, :, :n_glob].reshape(b, s * n_glob, self.mem_dim)
        # (B, Np, 65): the unrotated keys in the 64-d memory space, with a ones column that
        # carries q·b_k (see XnnMemoryAttentionLayer); 0·k + 1 keeps the column in the graph.
        plain = torch.cat([glob_k, ptr_tokens], dim=1)
        plain = torch.cat([plain, plain[..., :1] * 0.0 + 1.0], dim=-1)
        rot_in = mem_k[:, :, n_glob:].reshape(b * s, n_slot - n_glob, self.mem_dim)  # (B·S, 256, 64)
        v = torch.cat(
            [
                mem_v[:, :, :n_glob].reshape(b, s * n_glob, self.mem_dim),
                ptr_tokens,
                mem_v[:, :, n_glob:].reshape(b, s * (n_slot - n_glob), self.mem_dim),
            ],
            dim=1,
        )  # (B, Nk, 64)
        bias = None
        if key_bias is not None:
            sb = key_bias[:, : s * n_slot].reshape(b, 1, s, n_slot)
            bias = torch.cat(
                [
                    sb[..., :n_glob].reshape(b, 1, s * n_glob),
                    key_bias[:, s * n_slot :].reshape(b, 1, -1),
                    sb[..., n_glob:].reshape(b, 1, s * (n_slot - n_glob)),
                ],
                dim=-1,
            )  # (B, 1, Nk)
        q_cos, q_sin = self.rope_q_cos(), self.rope_q_sin()
        k_cos, k_sin = self.rope_k_cos(), self.rope_k_sin()
        for layer in self.layers:
            x = layer(x, q_cos, q_sin, plain, rot_in, v, k_cos, k_sin, bias, self.rope_layout)
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)


class XnnMemoryAttentionLayer(MemoryAttentionLayer):
    """:class:`MemoryAttentionLayer` with :func:`bmm_attention` (no matmul expand) and the
    cross-attention computed in the 64-d memory space where no RoPE is in the way.

    For an unrotated key ``k = Wk·m + bk`` (m in 64-d), ``q·k = (Wkᵀq)·m + q·bk``: one GEMM
    ``q → [Wkᵀq; q·bk]`` (the ``k_fold`` linear, 256 → 65) scores all ``Np`` of them against
    ``[m; 1]`` with inner dimension 65 instead of 256. Values need no RoPE at all: the
    softmax rows sum to 1, so ``A·(Wv·M + bv) = Wv·(A·M) + bv`` and ``v_proj`` runs on the
    (4096, 64) result instead of the (Nk, 64) memory. Exact in real arithmetic; the cross-
    attention GEMMs drop from 2·4096·Nk·256·2 to 4096·(Np·65 + 256·S·256 + Nk·64)·2 FLOPs
    (about 15.3 → 6.8 GFLOP per layer with 7 slots and 16 pointer tokens).
    """

    av_block: int | None = None  # HALF_AV_BLOCK in fp16 programs (xnnpack_forms(half=True))

    def _prepare(self) -> None:
        k = self.cross_attn_image.k_proj  # weight (256, 64), bias (256,)
        self.k_fold = nn.Linear(k.out_features, k.in_features + 1, bias=False)
        with torch.no_grad():  # (65, 256): q -> [Wkᵀq; q·bk]
            self.k_fold.weight.copy_(torch.cat([k.weight.t(), k.bias[None, :]], dim=0))

    def forward(self, x, q_cos, q_sin, plain, rot_in, v, k_cos, k_sin, key_bias, layout):
        """x (B, 4096, 256); plain (B, Np, 65) unrotated keys with a ones column; rot_in (B·S, 256, 64)
        2-D-latent keys before ``k_proj``; v (B, Nk, 64) values in key order; key_bias (B, 1, Nk)."""
        sa = self.self_attn
        t = self.norm1(x)
        q = apply_rope(sa.q_proj(t), q_cos, q_sin, layout)
        k = apply_rope(sa.k_proj(t), q_cos, q_sin, layout)
        x = x + sa.out_proj(bmm_attention(q, k, sa.v_proj(t), sa.scale, block=self.av_block))
        ca = self.cross_attn_image
        q = apply_rope(ca.q_proj(self.norm2(x)), q_cos, q_sin, layout)
        b = x.shape[0]
        k_rot = apply_rope(ca.k_proj(rot_in), k_cos, k_sin, layout).reshape(b, -1, q.shape[-1])
        scores = (
            torch.cat(
                [torch.bmm(self.k_fold(q), plain.transpose(1, 2)), torch.bmm(q, k_rot.transpose(1, 2))],
                dim=-1,
            )
            * ca.scale
        )
        if key_bias is not None:
            scores = scores + key_bias
        x = x + ca.out_proj(ca.v_proj(softmax_weighted_sum(scores, v, self.av_block)))
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


# ----------------------------------------------------------------------------- memory encoder


class XnnMemoryEncoderExport(MemoryEncoderExport):
    """:class:`MemoryEncoderExport` with ``1[m > 0]`` as :func:`step` (no comparison, no cast). Same I/O."""

    def _prepare(self) -> None:
        pass

    def forward(self, vis, mask_low, binarize):
        m = F.interpolate(mask_low, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        b = binarize.reshape(1, 1, 1, 1)
        m = b * step(m) + (1.0 - b) * torch.sigmoid(m)
        feats = self.memory_encoder(vis, m * MASK_SCALE + MASK_BIAS)
        return (self.spatial_perceiver(feats),)


class XnnCXBlock(CXBlock):
    """:class:`CXBlock` with its GELU as a module (``act``), so the fp16 form can replace it, and
    its depthwise 7×7 convolution as nine shifted depthwise 3×3 ones (:func:`split_depthwise`):
    XNNPACK has depthwise micro-kernels for 3×3 but runs a 7×7 one as a grouped IGEMM with one
    channel per group (2.4× slower measured in ExecuTorch 1.5.1). Same math, fp32 re-association.
    """

    def _prepare(self) -> None:
        self.act = nn.GELU()
        blocks, self.dw_shifts, self.dw_extent = split_depthwise(self.dwconv.weight.detach())
        for i, w in enumerate(blocks):  # separate buffers: an indexed stack is not a constant weight
            self.register_buffer(f"dw_block{i}", w.contiguous())

    def _depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W): ``self.dwconv(x)`` as a sum of shifted 3×3 depthwise convs."""
        h, w = x.shape[-2:]
        e, c = self.dw_extent, x.shape[1]
        y = None
        for i, (p, q) in enumerate(self.dw_shifts):
            bias = self.dwconv.bias if i == 0 else None
            z = F.conv2d(x, getattr(self, f"dw_block{i}"), bias, padding=1 + e, groups=c)
            z = z[:, :, e + p : e + p + h, e + q : e + q + w]
            y = z if y is None else y + z
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self._depthwise(x)).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


def split_depthwise(weight: torch.Tensor) -> tuple[list[torch.Tensor], list[tuple[int, int]], int]:
    """A depthwise k×k kernel (C, 1, k, k), k odd, as 3×3 blocks: ``(blocks, shifts, extent)``.

    The kernel is zero-padded to ``3n × 3n`` (n = ceil(k/3), odd) and cut into n² blocks
    (C, 1, 3, 3) centred at tap offsets ``shifts`` (multiples of 3, |offset| <= extent); then
    ``conv_k(x) = Σ shift_(p,q)(conv_3(x, block))`` with the 3×3 convs padded by ``1 + extent``.
    """
    _, one, k, k2 = weight.shape
    n = -(-k // 3)
    if one != 1 or k != k2 or k % 2 == 0 or n % 2 == 0:
        raise ValueError(
            f"need a depthwise (C, 1, k, k) kernel with k odd and ceil(k/3) odd, got {tuple(weight.shape)}"
        )
    pad = (3 * n - k) // 2
    wp = F.pad(weight, (pad, pad, pad, pad))
    half = 3 * n // 2
    blocks, shifts = [], []
    for a in range(n):
        for b in range(n):
            blocks.append(wp[:, :, 3 * a : 3 * a + 3, 3 * b : 3 * b + 3])
            shifts.append((3 * a + 1 - half, 3 * b + 1 - half))
    return blocks, shifts, 3 * (n // 2)


class XnnPerceiverResampler(PerceiverResampler):
    """:class:`PerceiverResampler` (batch 1) with the latents reshaped instead of expanded / repeated."""

    def _prepare(self) -> None:
        pass

    def forward_global(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        tokens = x.flatten(2).transpose(1, 2)
        latents = self.latents.reshape(1, self.num_latents, self.dim)
        if b != 1:
            latents = latents.expand(b, -1, -1)
        for layer in self.layers:
            latents = layer(latents, tokens, self.input_pos)
        return self.norm(latents)

    def forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        nh, nw = h // self.window, w // self.window
        t = self.window_tokens(x)
        latents = self.latents_2d.reshape(self.num_latents_2d, 1, c)
        if b != 1:
            latents = latents.repeat(b, 1, 1)
        for layer in self.layers:
            latents = layer(latents, t, None, single_token=True)
        return self.norm(latents.reshape(b, nh * nw, c))


class XnnCrossAttention(CrossAttention):
    """:class:`CrossAttention` with :func:`bmm_attention` (no matmul expand)."""

    av_block: int | None = None  # HALF_AV_BLOCK in fp16 programs (xnnpack_forms(half=True))

    def _prepare(self) -> None:
        pass

    def forward(self, latents, x, pos=None):
        q = self.to_q(self.norm_latents(latents))
        kv = self.to_kv(self.norm_x(x))
        k, v = kv[..., : self.dim_head], kv[..., self.dim_head :]
        if pos is not None:
            k = pos.add_to(k)
            v = pos.add_to(v)
        return self.to_out(bmm_attention(q, k, v, self.scale, block=self.av_block))


class XnnSelfAttention(SelfAttention):
    """:class:`SelfAttention` with :func:`bmm_attention`; its single-token path uses a stored value
    weight (a weight slice would be a computed operand: mm outside the delegate)."""

    av_block: int | None = None  # HALF_AV_BLOCK in fp16 programs (xnnpack_forms(half=True))

    def _prepare(self) -> None:
        self.register_buffer("to_v_weight", self.to_kv.weight.detach()[self.dim_head :].clone())

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        t = self.norm(latents)
        kv = self.to_kv(t)
        k, v = kv[..., : self.dim_head], kv[..., self.dim_head :]
        return self.to_out(bmm_attention(self.to_q(t), k, v, self.scale, block=self.av_block))

    def forward_single_token(self, latents: torch.Tensor) -> torch.Tensor:
        return self.to_out(F.linear(self.norm(latents), self.to_v_weight))


# ----------------------------------------------------------------------------- prompt decoder


class XnnPromptDecoderExport(PromptDecoderExport):
    """:class:`PromptDecoderExport` with slot and mask selection as arithmetic. Same I/O.

    ``keep = 1[pt_valid > 0.5]``, ``xy = pt_xy · keep``, ``label = pt_label · keep + (keep − 1)``,
    ``mask = mask_in · 1[has_mask > 0.5]``: equal to the ``where`` forms for finite inputs.
    """

    def _prepare(self) -> None:
        pass

    def forward(self, pix, use_no_mem, feat_s0, feat_s1, pt_xy, pt_label, pt_valid, mask_in, has_mask):
        pe = self.prompt_encoder
        c = self.no_mem_embed.shape[-1]
        pix = pix + use_no_mem.reshape(1, 1, 1, 1) * self.no_mem_embed.reshape(1, c, 1, 1)
        keep = step(pt_valid - 0.5)  # (1, NP)
        xy = pt_xy * keep.unsqueeze(-1)
        label = pt_label * keep + (keep - 1.0)  # invalid slots -> -1 (PAD_LABEL)
        sparse = pe.embed_points(xy, label)
        m = has_mask.reshape(1, 1, 1, 1)
        mask = mask_in * step(m - 0.5)
        dense = m * pe.embed_mask(mask) + (1.0 - m) * pe.no_mask_dense()
        dense_pe = self.dense_pe()  # (256, 64, 64)
        masks, iou, mask_tokens, obj_logit = self.mask_decoder(
            pix, dense_pe.reshape(1, *dense_pe.shape), sparse, dense, feat_s0, feat_s1, keep
        )
        return masks, iou, obj_logit, self.obj_ptr_proj(mask_tokens)


class XnnRandomFourierPE(RandomFourierPE):
    """:class:`RandomFourierPE` with ``(2u − 1) @ G`` as ``linear`` by the stored ``Gᵀ``: same values.

    Still called as the ``pe_layer`` module, so exported graphs keep the ``pe_layer`` scope that
    the ONNX quantization recipes name to keep the point encoding float.
    """

    def _prepare(self) -> None:
        g = self.positional_encoding_gaussian_matrix
        self.register_buffer("gauss_t", g.detach().t().contiguous(), persistent=False)  # (128, 2)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """(..., 2) normalised (x, y) -> (..., 256) [sin φ, cos φ]; float scalars only (see below)."""
        phi = 2.0 * torch.pi * F.linear(2.0 * u - 1.0, self.gauss_t)
        return torch.cat([torch.sin(phi), torch.cos(phi)], dim=-1)


class XnnPromptEncoder(PromptEncoder):
    """:class:`PromptEncoder` with label one-hots as :func:`equal` and table lookups as ``linear``."""

    def _prepare(self) -> None:
        table = torch.cat([e.weight.detach() for e in self.point_embeddings], dim=0)  # (4, 256)
        self.register_buffer("point_table_t", table.t().contiguous(), persistent=False)  # (256, 4)
        self.register_buffer("nap", self.not_a_point_embed.weight.detach().clone(), persistent=False)
        # The export wrapper reads the factored dense PE; torch.export would still carry this
        # unused (256, 64, 64) buffer into the program (4 MB in the .pte).
        del self._buffers["dense_pe"]

    def embed_points(self, xy: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # float scalars only: an int scalar becomes an int64 constant plus a cast outside the delegate
        u = (xy + 0.5) / float(self.image_size)
        pe = self.pe_layer(u)  # (B, N, 256): XnnRandomFourierPE
        is_pad = equal(labels, PAD_LABEL).unsqueeze(-1)  # (B, N, 1)
        onehot = equal(labels.unsqueeze(-1), self.label_ids)  # (B, N, 4)
        return pe * (1.0 - is_pad) + F.linear(onehot, self.point_table_t) + is_pad * self.nap


class XnnMaskDecoder(MaskDecoder):
    """:class:`MaskDecoder` (batch 1) without expand / select / stack: reshapes, slices and cat."""

    def _prepare(self) -> None:
        pass

    def forward(self, image_embeddings, image_pe, sparse, dense, feat_s0, feat_s1, sparse_valid=None):
        b = sparse.shape[0]
        out_tokens = self.output_tokens().reshape(1, NUM_OUTPUT_TOKENS, -1)
        if b != 1:
            out_tokens = out_tokens.expand(b, -1, -1)
        tokens = torch.cat([out_tokens, sparse], dim=1)
        token_valid = None
        if sparse_valid is not None:
            token_valid = F.pad(sparse_valid, (NUM_OUTPUT_TOKENS, 0), value=1.0)
        src = image_embeddings + dense
        pos = image_pe if b == 1 else image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, img = self.transformer(src, pos, tokens, token_valid)
        obj_token = hs[:, 0:1, :].reshape(b, c)
        iou_token = hs[:, 1:2, :].reshape(b, c)
        mask_tokens = hs[:, 2 : 2 + NUM_MASK_TOKENS, :]
        img = img.transpose(1, 2).reshape(b, c, h, w)
        up1, ln1, act1, up2, act2 = self.output_upscaling
        u = act1(ln1(up1(img) + feat_s1))
        u = act2(up2(u) + feat_s0)
        hyper = torch.cat(
            [mlp(mask_tokens[:, i : i + 1, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # (B, 4, 32)
        _, cu, hu, wu = u.shape
        masks = torch.bmm(hyper, u.reshape(b, cu, hu * wu)).reshape(b, NUM_MASK_TOKENS, hu, wu)
        return masks, self.iou_prediction_head(iou_token), mask_tokens, self.pred_obj_score_head(obj_token)


class XnnTwoWayTransformer(TwoWayTransformer):
    """:class:`TwoWayTransformer` whose key bias becomes (B, 1, 1, Nt) by ``reshape``."""

    def _prepare(self) -> None:
        pass

    def forward(self, image, image_pe, tokens, token_valid=None):
        image = image.flatten(2).transpose(1, 2)
        image_pe = image_pe.flatten(2).transpose(1, 2)
        bias = None
        if token_valid is not None:
            b, n = token_valid.shape
            bias = ((1.0 - token_valid) * INVALID_KEY_BIAS).reshape(b, 1, 1, n)
        q, k = tokens, image
        for layer in self.layers:
            q, k = layer(q, k, tokens, image_pe, bias)
        q = self.norm_final_attn(q + self.final_attn_token_to_image(q + tokens, k + image_pe, k))
        return q, k


class XnnAttention(Attention):
    """Two-way :class:`Attention` with heads folded into the batch: 3-D ``bmm`` (no 4-D matmul/expand)."""

    av_block: int | None = None  # HALF_AV_BLOCK in fp16 programs (xnnpack_forms(half=True))

    def _prepare(self) -> None:
        pass

    def forward(self, q, k, v, key_bias=None):
        h, d = self.num_heads, self.head_dim
        b, nq, _ = q.shape
        nk = k.shape[1]
        qh = self.q_proj(q).reshape(b, nq, h, d).transpose(1, 2).reshape(b * h, nq, d)
        kh = self.k_proj(k).reshape(b, nk, h, d).transpose(1, 2).reshape(b * h, nk, d)
        vh = self.v_proj(v).reshape(b, nk, h, d).transpose(1, 2).reshape(b * h, nk, d)
        logits = torch.bmm(qh, kh.transpose(1, 2)) * self.scale  # (B·h, Nq, Nk)
        if key_bias is not None:
            logits = (logits.reshape(b, h, nq, nk) + key_bias).reshape(b * h, nq, nk)
        out = softmax_weighted_sum(logits, vh, self.av_block)  # (B·h, Nq, d)
        out = out.reshape(b, h, nq, d).transpose(1, 2).reshape(b, nq, h * d)
        return self.out_proj(out)


_FORMS: dict[type[nn.Module], type[nn.Module]] = {
    nn.LayerNorm: XnnLayerNorm,
    LayerNorm2d: XnnLayerNorm2d,
    MemoryAttentionExport: XnnMemoryAttentionExport,
    MemoryAttention: XnnMemoryAttention,
    MemoryAttentionLayer: XnnMemoryAttentionLayer,
    CrossAttention: XnnCrossAttention,
    MemoryEncoderExport: XnnMemoryEncoderExport,
    CXBlock: XnnCXBlock,
    PerceiverResampler: XnnPerceiverResampler,
    SelfAttention: XnnSelfAttention,
    PromptDecoderExport: XnnPromptDecoderExport,
    PromptEncoder: XnnPromptEncoder,
    RandomFourierPE: XnnRandomFourierPE,
    MaskDecoder: XnnMaskDecoder,
    TwoWayTransformer: XnnTwoWayTransformer,
    Attention: XnnAttention,
}
_UNCHANGED = (MemoryEncoder,)  # listed for the reader: its convs / GELUs already lower


def xnnpack_forms(module: M, half: bool = False, keep: tuple[type, ...] = ()) -> M:
    """A deep copy of ``module`` (an export wrapper, or any module) with every sub-module of a
    known type in its XNNPACK-lowerable form (see the module table); the argument is not
    modified. Same contract, same ``example_inputs``; the copy is in eval mode.

    ``keep``: module types left in their reference form (e.g. ``(nn.LayerNorm, LayerNorm2d)``
    for ONNX, whose runtimes have a fused LayerNormalization that the rewrite would decompose).

    ``half``: for an fp16 program (``fp16_compute`` of the result). LayerNorms become
    :class:`XnnHalfLayerNorm` (computed in fp16, no fp32 island and hence no casts), exact
    GELUs (including the ConvNeXt blocks', see :class:`XnnCXBlock`) become :class:`XnnHalfGELU`,
    and attentions take unnormalized probabilities and sum their values in blocks of
    :data:`HALF_AV_BLOCK` keys (:func:`softmax_weighted_sum`).
    """
    out = copy.deepcopy(module).eval()
    for m in list(out.modules()):
        form = None if type(m) in keep else _FORMS.get(type(m))
        if form is not None:
            m.__class__ = form
            m._prepare()
    if half:
        for m in out.modules():
            if hasattr(type(m), "av_block"):
                m.av_block = HALF_AV_BLOCK
        for name, m in list(out.named_modules()):
            form = _half_form(m)
            if form is not None and name:
                parent_name, _, child = name.rpartition(".")
                parent = out.get_submodule(parent_name) if parent_name else out
                setattr(parent, child, form)
    return out


def rewritten_types(module: nn.Module) -> list[str]:
    """Names of the rewritten classes present in ``module`` (sorted, unique): for export notes."""
    forms = (*_FORMS.values(), XnnHalfLayerNorm, XnnHalfGELU)
    return sorted({type(m).__name__ for m in module.modules() if type(m) in forms})
