"""SAM-2 two-way transformer of the EdgeTAM mask decoder (docs/MODEL.md §2.5).

Tokens (prompt/output tokens) and image tokens attend to each other in both directions.
Attention is written out explicitly as ``softmax(Q·Kᵀ·scale + bias)·V`` so that invalid key
slots (padding point tokens) can be switched off with an additive key bias of -1e4 (fp16
safe, unlike -inf); ``exp(-1e4 + ...)`` underflows to exactly 0 in fp32 and fp16.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import MLP

INVALID_KEY_BIAS = -1e4


def key_bias_from_valid(valid: torch.Tensor) -> torch.Tensor:
    """(B, Nk) validity in {0, 1} -> additive key bias (B, 1, 1, Nk): 0 valid, -1e4 invalid."""
    return ((1.0 - valid) * INVALID_KEY_BIAS)[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention with an optional internal downsampling of the channel dimension.

    q: (B, Nq, dim), k and v: (B, Nk, dim), optional key_bias broadcastable to
    (B, heads, Nq, Nk) -> (B, Nq, dim). Internal width dim/downsample_rate, split over heads.
    Checkpoint names: ``{q,k,v,out}_proj.{weight,bias}``.
    """

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1):
        super().__init__()
        inner = dim // downsample_rate
        if inner % num_heads:
            raise ValueError(f"num_heads {num_heads} must divide the internal dim {inner}")
        self.num_heads = num_heads
        self.head_dim = inner // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, N, d)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        qh = self._heads(self.q_proj(q))
        kh = self._heads(self.k_proj(k))
        vh = self._heads(self.v_proj(v))
        logits = (qh @ kh.transpose(-2, -1)) * self.scale  # (B, h, Nq, Nk)
        if key_bias is not None:
            logits = logits + key_bias
        out = torch.softmax(logits, dim=-1) @ vh  # (B, h, Nq, d)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class TwoWayBlock(nn.Module):
    """One two-way block: token self-attn, token→image, token MLP, image→token.

    ``first`` (block 0): the self-attention takes the raw tokens (no token PE) and has no
    residual connection.
    """

    def __init__(self, dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048, first: bool = False):
        super().__init__()
        self.first = first
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim, dim, 2)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate=2)

    def forward(
        self,
        tokens: torch.Tensor,
        image: torch.Tensor,
        token_pe: torch.Tensor,
        image_pe: torch.Tensor,
        token_bias: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B,Nt,C), image (B,HW,C), token_pe (B,Nt,C), image_pe (B,HW,C),
        token_bias (B,1,1,Nt) or None -> (tokens (B,Nt,C), image (B,HW,C))."""
        if self.first:
            tokens = self.self_attn(tokens, tokens, tokens, token_bias)
        else:
            qk = tokens + token_pe
            tokens = tokens + self.self_attn(qk, qk, tokens, token_bias)
        tokens = self.norm1(tokens)

        image_k = image + image_pe
        tokens = self.norm2(tokens + self.cross_attn_token_to_image(tokens + token_pe, image_k, image))
        tokens = self.norm3(tokens + self.mlp(tokens))

        image = self.norm4(
            image + self.cross_attn_image_to_token(image_k, tokens + token_pe, tokens, token_bias)
        )
        return tokens, image


class TwoWayTransformer(nn.Module):
    """Depth-2, 8-head two-way transformer (256-d, MLP 2048) plus a final token→image attention.

    Checkpoint names: ``layers.{0,1}.*``, ``final_attn_token_to_image.*``, ``norm_final_attn``.
    """

    def __init__(self, depth: int = 2, dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048):
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayBlock(dim, num_heads, mlp_dim, first=(i == 0)) for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        tokens: torch.Tensor,
        token_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B,C,H,W), image_pe (B,C,H,W), tokens (B,Nt,C), token_valid (B,Nt) in {0,1} or None
        -> (tokens (B,Nt,C), image tokens (B,H·W,C)).

        Tokens with ``token_valid == 0`` are excluded as keys wherever tokens are attended to
        (token self-attention and image→token attention), which makes them exactly inert for
        every valid token and every image position.
        """
        image = image.flatten(2).transpose(1, 2)
        image_pe = image_pe.flatten(2).transpose(1, 2)
        bias = None if token_valid is None else key_bias_from_valid(token_valid)
        q, k = tokens, image
        for layer in self.layers:
            q, k = layer(q, k, tokens, image_pe, bias)
        q = self.norm_final_attn(q + self.final_attn_token_to_image(q + tokens, k + image_pe, k))
        return q, k
