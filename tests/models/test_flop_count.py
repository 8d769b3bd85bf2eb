"""models/flop_count.py counts what a form computes: GEMMs exactly, and less for the memory
attention form whose cross-attention runs in the 64-d memory space."""

from __future__ import annotations

import torch
from edgetam_export.models.flop_count import forward_gflop
from edgetam_export.models.memory_attention import MemoryAttention
from edgetam_export.models.wrap_memory_attention import MemoryAttentionExport
from edgetam_export.models.xnnpack_forms import xnnpack_forms
from torch import nn


def test_a_linear_is_two_flops_per_multiply_add():
    lin = nn.Linear(64, 32)
    assert forward_gflop(lin, [torch.zeros(1, 100, 64)]) == 2 * 100 * 64 * 32 / 1e9


def test_memory_attention_form_does_less_work_than_the_reference():
    ref = MemoryAttentionExport(MemoryAttention(), torch.zeros(7, 1, 1, 64)).eval()
    fast = xnnpack_forms(ref)
    s, t = ref.num_spatial_slots, 4 * ref.num_ptr_slots
    nk, n_plain, n_rot = 512 * s + t, 256 * s + t, 256 * s
    # per layer, the cross-attention's two (4096 x Nk x 256) GEMMs become (Np x 65) + (256·S x 256)
    # + (Nk x 64) ones: 19.6 of 93.5 GFLOP; the 256 -> 65 fold and the projections moved to the
    # other side of the softmax add back 0.16 GFLOP (bound: 0.25)
    saved = (
        ref.memory_attention.num_layers * 2 * 4096 * (2 * nk * 256 - (n_plain * 65 + n_rot * 256 + nk * 64))
    )
    got = forward_gflop(fast)
    assert abs(forward_gflop(ref) - saved / 1e9 - got) < 0.25, (forward_gflop(ref), got, saved / 1e9)
