"""EdgeTAM memory attention: conditions the current frame's features on the memory bank.

Checkpoint prefix ``memory_attention``. Structure (docs/MODEL.md §2.9): input ``x = vis + 0.1·sine``
(sine: 256 channels on the 64×64 grid), then 2 layers of

1. self-attention with RoPE on q and k (64×64 grid), no additive position encoding;
2. cross-attention to the memory: ``q = RoPE64(Wq·LN2(x))``, ``k = Wk(M + P)``, ``v = Wv(M)``;
   key RoPE (16×16 grid) only on the 2-D-latent half of each spatial memory slot; global
   latents and object-pointer tokens are not rotated;
3. FFN 256→2048→256 with ReLU;

each pre-norm (LayerNorm eps 1e-5) with a residual, and a final LayerNorm. One head of 256
channels, scale 1/16. Attention is the explicit ``softmax(q·kᵀ·scale + bias)·v``; ``bias``
masks memory keys (−1e4 for invalid slots in the static export graph).

Memory layout used here: ``S`` spatial slots of 512 tokens each (perceiver order: 256 global
latents, then 256 2-D latents, row-major 16×16), followed by the pointer tokens (each object
pointer split into 4 tokens of 64; position 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .position_encoding import GridTable, sine_position_encoding
from .rope import ROPE_LAYOUTS, apply_rope, axial_rope_tables, rotate_half_permutation

KEY_MASK_BIAS = -1e4  # additive bias of an invalid key; finite so fp16 stays NaN-free


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q·kᵀ·scale + bias)·v``: q (B, Nq, D), k/v (B, Nk, D), bias (B, 1, Nk) or None -> (B, Nq, D)."""
    scores = (q @ k.transpose(-2, -1)) * scale
    if bias is not None:
        scores = scores + bias
    return torch.softmax(scores, dim=-1) @ v


class RoPEAttention(nn.Module):
    """Single-head attention with checkpoint names ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``.

    q: 256 → 256; k, v: ``kv_in_dim`` → 256; out: 256 → 256. The caller rotates q and k (it
    owns the RoPE tables, shared by all layers), so this module only holds the projections.
    """

    def __init__(self, dim: int = 256, kv_in_dim: int = 256):
        super().__init__()
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kv_in_dim, dim)
        self.v_proj = nn.Linear(kv_in_dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.scale = dim**-0.5


def rotate_2d_latents(k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str) -> torch.Tensor:
    """RoPE on the 2-D latents of memory slots: k (B·S, 512, D) -> (B·S, 512, D).

    Tokens ``[0, 512 − N)`` (the global latents) pass unchanged, tokens ``[512 − N, 512)`` are
    rotated by cos/sin (N, D/2). Equal, for finite k, to rotating all 512 tokens with identity
    rows (cos 1, sin 0) for the global latents, as the official table does.
    """
    n_global = k.shape[1] - cos.shape[0]
    return torch.cat([k[:, :n_global], apply_rope(k[:, n_global:], cos, sin, layout)], dim=1)


class MemoryAttentionLayer(nn.Module):
    """One layer: (B, 4096, 256) tokens -> (B, 4096, 256)."""

    def __init__(self, dim: int = 256, mem_dim: int = 64, ffn_dim: int = 2048):
        super().__init__()
        self.self_attn = RoPEAttention(dim, dim)
        self.cross_attn_image = RoPEAttention(dim, mem_dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        q_cos: torch.Tensor,
        q_sin: torch.Tensor,
        mem_k_spatial: torch.Tensor,
        mem_k_ptr: torch.Tensor,
        mem_v: torch.Tensor,
        k_cos: torch.Tensor,
        k_sin: torch.Tensor,
        key_bias: torch.Tensor | None,
        layout: str,
    ) -> torch.Tensor:
        """Shapes (B = batch, S = spatial slots, T = pointer tokens, Nk = 512·S + T):

        x (B, 4096, 256); q_cos/q_sin (4096, 128); mem_k_spatial (B, S, 512, 64) = M + P of the
        slots; mem_k_ptr (B, T, 64) pointer tokens; mem_v (B, Nk, 64) = [M slots; pointers];
        k_cos/k_sin (256, 128) key tables of a slot's 2-D latents (its 256 global latents are
        not rotated);
        key_bias (B, 1, Nk) or None.
        """
        # 1. self-attention with RoPE on q and k
        sa = self.self_attn
        t = self.norm1(x)
        q = apply_rope(sa.q_proj(t), q_cos, q_sin, layout)
        k = apply_rope(sa.k_proj(t), q_cos, q_sin, layout)
        x = x + sa.out_proj(attention(q, k, sa.v_proj(t), sa.scale))

        # 2. cross-attention to the memory
        ca = self.cross_attn_image
        q = apply_rope(ca.q_proj(self.norm2(x)), q_cos, q_sin, layout)
        b, s, n_slot, _ = mem_k_spatial.shape
        k_sp = ca.k_proj(mem_k_spatial.reshape(b * s, n_slot, -1))  # (B·S, 512, 256)
        k_sp = rotate_2d_latents(k_sp, k_cos, k_sin, layout).reshape(b, s * n_slot, -1)
        k = torch.cat([k_sp, ca.k_proj(mem_k_ptr)], dim=1)  # (B, Nk, 256)
        x = x + ca.out_proj(attention(q, k, ca.v_proj(mem_v), ca.scale, key_bias))

        # 3. feed-forward
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


class MemoryAttention(nn.Module):
    """Memory-conditioned features: vis (B, 256, 64, 64) + memory bank -> pix (B, 256, 64, 64).

    Constants (not in the checkpoint):

    * ``curr_pos()`` (4096, 256): sine encoding of the 64×64 grid (added ×0.1 to the input);
    * ``rope_q_cos()`` / ``rope_q_sin()`` (4096, 128): RoPE of the 64×64 query grid
      (self-attention q and k, cross-attention q);
      these three are :class:`~.position_encoding.GridTable` s (row and column factors,
      rebuilt exactly by one add), so artifacts carry 128 KB instead of 8 MB;
    * ``rope_k_cos()`` / ``rope_k_sin()`` (256, 128): RoPE of the 16×16 grid of one memory
      slot's 2-D latents (GridTables); its 256 global latents are not rotated (the official
      identity rows, cos 1 / sin 0, leave them exactly unchanged).

    ``rope_layout`` is ``"pairs"`` (checkpoint channel order) until :meth:`fold_rotate_half_`
    permutes the q/k projections for the export-friendly ``"halves"`` form.
    """

    dim = 256
    mem_dim = 64
    num_layers = 2
    grid = 64
    mem_grid = 16
    tokens_per_slot = 512
    rope_theta = 10000.0

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(self.dim, self.mem_dim) for _ in range(self.num_layers)
        )
        self.norm = nn.LayerNorm(self.dim)
        self.rope_layout = "pairs"
        curr_pos = sine_position_encoding(self.dim, self.grid, self.grid).flatten(1).t()
        self.curr_pos = GridTable(curr_pos, self.grid, self.grid)
        q_cos, q_sin = axial_rope_tables(self.dim, self.grid, self.grid, self.rope_theta)
        self.rope_q_cos = GridTable(q_cos, self.grid, self.grid)
        self.rope_q_sin = GridTable(q_sin, self.grid, self.grid)
        m_cos, m_sin = axial_rope_tables(self.dim, self.mem_grid, self.mem_grid, self.rope_theta)
        self.rope_k_cos = GridTable(m_cos, self.mem_grid, self.mem_grid)
        self.rope_k_sin = GridTable(m_sin, self.mem_grid, self.mem_grid)

    @torch.no_grad()
    def fold_rotate_half_(self) -> MemoryAttention:
        """Switch to the "halves" RoPE layout in place (for export); returns ``self``.

        Permutes the output rows (weights and biases) of every q_proj and k_proj so that even
        channels come first; q·k, and hence the output, is unchanged up to fp32 rounding. After
        this the state dict no longer has the checkpoint layout: call it on a copy.
        """
        if self.rope_layout == "halves":
            return self
        perm = rotate_half_permutation(self.dim)
        for layer in self.layers:
            for proj in (
                layer.self_attn.q_proj,
                layer.self_attn.k_proj,
                layer.cross_attn_image.q_proj,
                layer.cross_attn_image.k_proj,
            ):
                proj.weight.copy_(proj.weight[perm].clone())
                proj.bias.copy_(proj.bias[perm].clone())
        self.rope_layout = "halves"
        return self

    def forward(
        self,
        vis: torch.Tensor,
        mem_spatial: torch.Tensor,
        mem_spatial_pos: torch.Tensor,
        ptr_tokens: torch.Tensor,
        key_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the memory attention.

        Args:
            vis: (B, 256, 64, 64) raw image features of the current frame.
            mem_spatial: (B, S·512, 64) memory tokens of S spatial slots (perceiver order).
            mem_spatial_pos: (B, S·512, 64) their position encoding (``[0; sine16] + tpos``).
            ptr_tokens: (B, T, 64) object-pointer tokens (4 per pointer, position 0); T may be 0.
            key_bias: (B, S·512 + T) additive key bias (0 valid, −1e4 invalid) or None.

        Returns:
            pix (B, 256, 64, 64).
        """
        if self.rope_layout not in ROPE_LAYOUTS:
            raise ValueError(f"unknown RoPE layout {self.rope_layout!r}")
        b, c, h, w = vis.shape
        n_sp = mem_spatial.shape[1]
        if n_sp % self.tokens_per_slot:
            raise ValueError(f"spatial memory has {n_sp} tokens, not a multiple of {self.tokens_per_slot}")
        s = n_sp // self.tokens_per_slot
        x = vis.flatten(2).transpose(1, 2) + 0.1 * self.curr_pos()  # (B, 4096, 256)
        mem_k_spatial = (mem_spatial + mem_spatial_pos).reshape(b, s, self.tokens_per_slot, self.mem_dim)
        mem_v = torch.cat([mem_spatial, ptr_tokens], dim=1)
        bias = None if key_bias is None else key_bias.unsqueeze(1)
        q_cos, q_sin = self.rope_q_cos(), self.rope_q_sin()  # (4096, 128) each
        k_cos, k_sin = self.rope_k_cos(), self.rope_k_sin()  # (256, 128) each
        for layer in self.layers:
            x = layer(
                x,
                q_cos,
                q_sin,
                mem_k_spatial,
                ptr_tokens,
                mem_v,
                k_cos,
                k_sin,
                bias,
                self.rope_layout,
            )
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)


def split_pointers(ptr: torch.Tensor, mem_dim: int = 64) -> torch.Tensor:
    """Object pointers (B, P, 256) -> pointer tokens (B, 4P, 64): ``ptr[0:64], ptr[64:128], …`` per pointer."""
    b, p, c = ptr.shape
    return ptr.reshape(b, p * (c // mem_dim), mem_dim)
