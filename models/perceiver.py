"""EdgeTAM spatial perceiver: compresses a 64×64×64 memory map into 512 tokens of 64.

Checkpoint prefix ``spatial_perceiver``. Structure (docs/MODEL.md §2.8): 2 layers shared by two paths,
each layer = cross-attention of latents to inputs (``attn``), feed-forward (``ff``),
self-attention among latents (``self_attn``), feed-forward (``self_ff``); then a final
LayerNorm (``norm``) shared by both paths. One head of 64 channels, no biases in the
projections, LayerNorm eps 1e-5.

* Global path: 256 learned ``latents`` attend to all 4096 memory tokens; the 64-channel sine
  encoding of the 64×64 grid is added to keys **and** values after projection.
* 2-D path: latent i of ``latents_2d`` attends only to the 16 tokens of 4×4 window i (windows
  and tokens row-major), without position encoding. Its self-attention sees one token.

Output tokens are ``[global (256); 2-D (256)]``; their position encoding is
``[zeros (256); sine16 (256)]`` (buffer ``output_pos``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .position_encoding import GridTable, sine_position_encoding


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Explicit single-head attention ``softmax(q·kᵀ·scale)·v``: q (..., Nq, D), k/v (..., Nk, D) -> (..., Nq, D)."""
    return torch.softmax((q @ k.transpose(-2, -1)) * scale, dim=-1) @ v


def feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    """LN → Linear dim→mult·dim (no bias) → GELU → Linear back (no bias); checkpoint indices 0, 1, 3."""
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, dim * mult, bias=False),
        nn.GELU(),
        nn.Linear(dim * mult, dim, bias=False),
    )


class CrossAttention(nn.Module):
    """Latents attend to inputs: (B, L, dim) latents, (B, N, dim) inputs -> (B, L, dim) update."""

    def __init__(self, dim: int = 64, dim_head: int = 64):
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim_head, bias=False)
        self.to_out = nn.Linear(dim_head, dim, bias=False)
        self.scale = dim_head**-0.5
        self.dim_head = dim_head

    def forward(self, latents: torch.Tensor, x: torch.Tensor, pos: GridTable | None = None) -> torch.Tensor:
        """``pos`` a (N, dim_head) table or None: added to both k and v after projection."""
        q = self.to_q(self.norm_latents(latents))
        kv = self.to_kv(self.norm_x(x))
        k, v = kv[..., : self.dim_head], kv[..., self.dim_head :]
        if pos is not None:
            k = pos.add_to(k)
            v = pos.add_to(v)
        return self.to_out(attention(q, k, v, self.scale))


class SelfAttention(nn.Module):
    """Self-attention among latents: (B, L, dim) -> (B, L, dim) update."""

    def __init__(self, dim: int = 64, dim_head: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim_head, bias=False)
        self.to_out = nn.Linear(dim_head, dim, bias=False)
        self.scale = dim_head**-0.5
        self.dim_head = dim_head

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        t = self.norm(latents)
        kv = self.to_kv(t)
        k, v = kv[..., : self.dim_head], kv[..., self.dim_head :]
        return self.to_out(attention(self.to_q(t), k, v, self.scale))

    def forward_single_token(self, latents: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`forward` when every sequence has exactly one token: (..., 1, dim) -> (..., 1, dim).

        Softmax over one key is exactly 1, so attention returns the value unchanged; this skips
        the q projection and the score computation (bit-identical result).
        """
        v = F.linear(self.norm(latents), self.to_kv.weight[self.dim_head :])
        return self.to_out(v)


class PerceiverLayer(nn.Module):
    """One perceiver layer: latents (B, L, 64) + inputs (B, N, 64) -> latents (B, L, 64)."""

    def __init__(self, dim: int = 64, dim_head: int = 64, ff_mult: int = 4):
        super().__init__()
        self.attn = CrossAttention(dim, dim_head)
        self.ff = feed_forward(dim, ff_mult)
        self.self_attn = SelfAttention(dim, dim_head)
        self.self_ff = feed_forward(dim, ff_mult)

    def forward(
        self,
        latents: torch.Tensor,
        x: torch.Tensor,
        pos: GridTable | None = None,
        single_token: bool = False,
    ) -> torch.Tensor:
        """``single_token``: every latent sequence has length 1 (the 2-D path)."""
        latents = latents + self.attn(latents, x, pos)
        latents = latents + self.ff(latents)
        if single_token:
            latents = latents + self.self_attn.forward_single_token(latents)
        else:
            latents = latents + self.self_attn(latents)
        return latents + self.self_ff(latents)


class PerceiverResampler(nn.Module):
    """Memory map (B, 64, 64, 64) -> memory tokens (B, 512, 64): ``[global 256; 2-D 256]``.

    Constants (not in the checkpoint): ``input_pos()`` (4096, 64) sine encoding of the
    64×64 input grid (global path keys/values; a factored
    :class:`~.position_encoding.GridTable`), buffer ``output_pos`` (512, 64) = ``[0; sine16]``,
    the position encoding of the output tokens.
    """

    dim = 64
    depth = 2
    num_latents = 256
    num_latents_2d = 256
    grid = 64  # input map is grid × grid
    window = 4  # 2-D path: window × window tokens per latent

    def __init__(self):
        super().__init__()
        dim = self.dim
        self.latents = nn.Parameter(torch.zeros(self.num_latents, dim))
        self.latents_2d = nn.Parameter(torch.zeros(self.num_latents_2d, dim))
        self.layers = nn.ModuleList(PerceiverLayer(dim) for _ in range(self.depth))
        self.norm = nn.LayerNorm(dim)
        n2d = self.grid // self.window  # 16 windows per side
        assert n2d * n2d == self.num_latents_2d
        pos_in = sine_position_encoding(dim, self.grid, self.grid).flatten(1).t()
        pos_2d = sine_position_encoding(dim, n2d, n2d).flatten(1).t()
        self.input_pos = GridTable(pos_in, self.grid, self.grid)
        self.register_buffer(
            "output_pos",
            torch.cat([torch.zeros(self.num_latents, dim), pos_2d]).contiguous(),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 64, 64, 64) NCHW memory map -> (B, 512, 64) tokens (position: ``output_pos``)."""
        return torch.cat([self.forward_global(x), self.forward_2d(x)], dim=1)

    def forward_global(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 64, 64, 64) -> (B, 256, 64): learned latents over all 4096 tokens, with pos."""
        b = x.shape[0]
        tokens = x.flatten(2).transpose(1, 2)  # (B, 4096, 64), row-major
        latents = self.latents.unsqueeze(0).expand(b, -1, -1)
        for layer in self.layers:
            latents = layer(latents, tokens, self.input_pos)
        return self.norm(latents)

    def window_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B·nh·nw, ws·ws, C): the tokens of each ws×ws window (windows and tokens row-major).

        Every intermediate has rank ≤ 4 (the Neural Engine's layout; Core ML stops at 5): the
        column offset inside a window is folded into the channel axis, ``(B·nh, ws, nw, ws·C)``,
        then window columns and rows swap. Pure data movement, so the values are exact.
        """
        b, c, h, w = x.shape
        ws, nh, nw = self.window, h // self.window, w // self.window
        t = x.permute(0, 2, 3, 1).reshape(b * nh, ws, nw, ws * c)  # [b·nh+wy, i, wx, j·C+c]
        return t.permute(0, 2, 1, 3).reshape(b * nh * nw, ws * ws, c)  # [(b·nh+wy)·nw+wx, i·ws+j, c]

    def forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 64, 64, 64) -> (B, 256, 64): latent i over the 16 tokens of 4×4 window i, no pos."""
        b, c, h, w = x.shape
        nh, nw = h // self.window, w // self.window
        t = self.window_tokens(x)  # (B·256, 16, C)
        latents = self.latents_2d.unsqueeze(1).repeat(b, 1, 1)  # (B·256, 1, C)
        for layer in self.layers:
            latents = layer(latents, t, None, single_token=True)
        return self.norm(latents.reshape(b, nh * nw, c))
