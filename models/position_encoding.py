"""Constant position encodings, computed once and stored as buffers (never in forward).

Export note: building these inside ``forward`` breaks Core ML conversion (lifted
constants), so every consumer registers the result of these functions as a buffer.
"""

from __future__ import annotations

import math

import torch


def sine_position_encoding(
    channels: int, height: int, width: int, temperature: float = 10000.0
) -> torch.Tensor:
    """Normalised 2-D sine encoding (DETR/SAM 2 ``PositionEmbeddingSine``): (channels, height, width).

    The first channels/2 encode y, the rest x; within each half even channels are sin and odd
    channels cos of the same frequency. Coordinates are (i+1)/(n+1e-6)·2π. Computed in float32
    with the same operation order as the official module, so the result is bit-identical.
    """
    if channels % 2:
        raise ValueError(f"channels must be even, got {channels}")
    half = channels // 2
    scale = 2 * math.pi
    eps = 1e-6
    y = torch.arange(1, height + 1, dtype=torch.float32).view(-1, 1).repeat(1, width)
    x = torch.arange(1, width + 1, dtype=torch.float32).view(1, -1).repeat(height, 1)
    y = y / (y[-1:, :] + eps) * scale
    x = x / (x[:, -1:] + eps) * scale
    dim_t = torch.arange(half, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    px = x[:, :, None] / dim_t
    py = y[:, :, None] / dim_t
    px = torch.stack((px[:, :, 0::2].sin(), px[:, :, 1::2].cos()), dim=3).flatten(2)
    py = torch.stack((py[:, :, 0::2].sin(), py[:, :, 1::2].cos()), dim=3).flatten(2)
    return torch.cat((py, px), dim=2).permute(2, 0, 1).contiguous()
