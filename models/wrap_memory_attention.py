"""Export wrapper ``memory_attention``: current features + a fixed-size memory bank -> pix."""

from __future__ import annotations

import copy

import torch

from .constants import NUM_MASKMEM
from .contracts import Contract, ExportModule, TensorSpec
from .memory_attention import KEY_MASK_BIAS, MemoryAttention, split_pointers
from .position_encoding import sine_position_encoding

TOKENS_PER_SLOT = 512
NUM_GLOBAL_LATENTS = 256
MEM_GRID = 16
MEM_DIM = 64
PTR_DIM = 256
TOKENS_PER_PTR = PTR_DIM // MEM_DIM


def memory_pos_base(dim: int = MEM_DIM) -> torch.Tensor:
    """Position encoding of one memory slot before the temporal term: (512, dim) = ``[0 (256); sine16 (256)]``."""
    sine = sine_position_encoding(dim, MEM_GRID, MEM_GRID).flatten(1).t()
    return torch.cat([torch.zeros(NUM_GLOBAL_LATENTS, dim), sine]).contiguous()


class MemoryAttentionExport(ExportModule):
    """``(vis, mem, mem_tpos, ptr, slot_valid, ptr_valid) -> (pix,)``, statically shaped, batch 1.

    S = ``num_spatial_slots`` memory frames, P = ``num_ptr_slots`` object pointers:

    * ``vis`` (1, 256, 64, 64): raw image features of the current frame.
    * ``mem`` (1, S·512, 64): slot j holds tokens ``[512·j, 512·(j+1))`` = one memory_encoder output.
    * ``mem_tpos`` (1, S, 7): one-hot temporal index per slot: 6 for a conditioning frame,
      d−1 for the tracked frame d steps away (d = 1..6).
    * ``ptr`` (1, P, 256): object pointers; each becomes 4 tokens ``ptr[0:64], …, ptr[192:256]``
      with position 0.
    * ``slot_valid`` (1, S), ``ptr_valid`` (1, P): 1 for used entries, 0 for padding. Keys of
      padding entries get an additive bias of −1e4, so their content is irrelevant (zeros are
      recommended; anything finite of normal magnitude is exactly ignored).
    * ``pix`` (1, 256, 64, 64): memory-conditioned features for the prompt decoder.

    Baked-in buffers: the memory position base ``[0; sine16]`` (512, 64) and the temporal table
    (7, 64); slot position = base + ``mem_tpos @ tpos``. RoPE is applied to every slot's 2-D
    half unconditionally (padding slots are masked anyway). Slot and pointer order inside the
    bank does not matter (attention is permutation-invariant over keys).

    ``rope_layout="halves"`` (default) runs a private copy of ``memory_attention`` with its q/k
    projections permuted for the rotate-half RoPE form (slicing only, no strided reshapes);
    ``"pairs"`` shares the reference module as is. Both are exact rewrites of the same math.
    """

    def __init__(
        self,
        memory_attention: MemoryAttention,
        maskmem_tpos_enc: torch.Tensor,
        num_spatial_slots: int = 8,
        num_ptr_slots: int = 17,
        rope_layout: str = "halves",
    ):
        super().__init__()
        if num_spatial_slots < 1 or num_ptr_slots < 1:
            raise ValueError("need at least one spatial slot and one pointer slot")
        if rope_layout == "halves":
            memory_attention = copy.deepcopy(memory_attention).fold_rotate_half_()
        elif rope_layout != "pairs":
            raise ValueError(f"rope_layout must be 'halves' or 'pairs', got {rope_layout!r}")
        self.memory_attention = memory_attention
        self.num_spatial_slots = num_spatial_slots
        self.num_ptr_slots = num_ptr_slots
        tpos = maskmem_tpos_enc.detach().reshape(NUM_MASKMEM, MEM_DIM).clone().float()
        self.register_buffer("tpos_table", tpos)
        self.register_buffer("mem_pos_base", memory_pos_base())
        s, p = num_spatial_slots, num_ptr_slots
        self.contract = Contract(
            name="memory_attention",
            inputs=(
                TensorSpec("vis", (1, 256, 64, 64), "float32", "raw image features of the current frame"),
                TensorSpec(
                    "mem",
                    (1, s * TOKENS_PER_SLOT, MEM_DIM),
                    "float32",
                    f"{s} memory slots of 512 tokens (memory_encoder mem)",
                ),
                TensorSpec(
                    "mem_tpos",
                    (1, s, NUM_MASKMEM),
                    "float32",
                    "one-hot temporal index per slot: 6 = conditioning frame, d-1 = tracked frame d steps away",
                ),
                TensorSpec("ptr", (1, p, PTR_DIM), "float32", f"{p} object pointer slots"),
                TensorSpec("slot_valid", (1, s), "float32", "1 = slot holds a memory, 0 = padding (masked)"),
                TensorSpec("ptr_valid", (1, p), "float32", "1 = pointer slot used, 0 = padding (masked)"),
            ),
            outputs=(
                TensorSpec("pix", (1, 256, 64, 64), "float32", "memory-conditioned features for the decoder"),
            ),
            description="memory attention over a static bank of spatial slots and object pointers with validity masks",
            options={
                "num_spatial_slots": s,
                "num_ptr_slots": p,
                "num_maskmem": NUM_MASKMEM,
                "mem_tokens_per_slot": TOKENS_PER_SLOT,
                "tokens_per_ptr": TOKENS_PER_PTR,
                "key_mask_bias": KEY_MASK_BIAS,
                "rope_layout": rope_layout,
            },
        )

    def forward(
        self,
        vis: torch.Tensor,
        mem: torch.Tensor,
        mem_tpos: torch.Tensor,
        ptr: torch.Tensor,
        slot_valid: torch.Tensor,
        ptr_valid: torch.Tensor,
    ) -> tuple[torch.Tensor]:
        s, p = self.num_spatial_slots, self.num_ptr_slots
        tpos = mem_tpos @ self.tpos_table  # (1, S, 64)
        pos = (self.mem_pos_base.unsqueeze(0) + tpos.unsqueeze(2)).reshape(1, s * TOKENS_PER_SLOT, MEM_DIM)
        ptr_tokens = split_pointers(ptr, MEM_DIM)  # (1, 4P, 64)
        slot_bias = ((1.0 - slot_valid) * KEY_MASK_BIAS).unsqueeze(2).expand(1, s, TOKENS_PER_SLOT)
        ptr_bias = ((1.0 - ptr_valid) * KEY_MASK_BIAS).unsqueeze(2).expand(1, p, TOKENS_PER_PTR)
        key_bias = torch.cat([slot_bias.reshape(1, -1), ptr_bias.reshape(1, -1)], dim=1)  # (1, Nk)
        return (self.memory_attention(vis, mem, pos, ptr_tokens, key_bias),)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """A bank early in a track: slot 0 = conditioning frame, slots 1..2 = frames 1..2 back, rest padding.

        Pointers: 3 valid, rest padding. Features ~N(0, 0.5²), memory and pointers ~N(0, 1);
        padding entries are zeros, as the host should send them.
        """
        s, p = self.num_spatial_slots, self.num_ptr_slots
        g = torch.Generator().manual_seed(0)
        n_mem, n_ptr = min(3, s), min(3, p)
        vis = 0.5 * torch.randn(1, 256, 64, 64, generator=g)
        slot_valid = torch.zeros(1, s)
        slot_valid[0, :n_mem] = 1.0
        ptr_valid = torch.zeros(1, p)
        ptr_valid[0, :n_ptr] = 1.0
        mem = torch.randn(1, s, TOKENS_PER_SLOT, MEM_DIM, generator=g) * slot_valid[0, :, None, None]
        ptr = torch.randn(1, p, PTR_DIM, generator=g) * ptr_valid[0, :, None]
        tpos_index = [NUM_MASKMEM - 1, *range(s - 1)]
        mem_tpos = torch.nn.functional.one_hot(torch.tensor(tpos_index[:s]) % NUM_MASKMEM, NUM_MASKMEM)
        mem_tpos = mem_tpos.float().unsqueeze(0)
        return vis, mem.reshape(1, s * TOKENS_PER_SLOT, MEM_DIM), mem_tpos, ptr, slot_valid, ptr_valid
