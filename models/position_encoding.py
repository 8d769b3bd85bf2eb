"""Constant position encodings, computed once and stored as buffers (never in forward).

Export note: building these inside ``forward`` breaks Core ML conversion (lifted
constants), so every consumer registers the result of these functions as a buffer.
Large per-token tables whose channels each vary along one grid axis only are stored
factored (:class:`GridTable`): an artifact then carries two small factors instead of the
table (4 MB -> 128 KB for a 64×64×256 table), and rebuilding it in the graph is one add.
"""

from __future__ import annotations

import math

import torch
from torch import nn


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


class GridTable(nn.Module):
    """A constant (H·W, C) token table (tokens row-major) stored as a row and a column factor.

    Every channel of the table must depend on the row only or on the column only, as in the
    sine encoding (first half y, second half x) and the axial RoPE tables. The factors are
    ``rows`` (H, 1, C), zero in the column channels, and ``cols`` (1, W, C), zero in the row
    channels; ``forward()`` returns ``(rows + cols).reshape(H·W, C)``, equal to the table bit
    for bit (each sum adds an exact 0). Buffers are non-persistent: not in any checkpoint.
    """

    def __init__(self, table: torch.Tensor, height: int, width: int):
        super().__init__()
        t = table.detach().reshape(height, width, -1)
        by_row = (t == t[:, :1]).all(dim=1).all(dim=0)  # (C,) constant along each row
        rows = torch.where(by_row, t[:, :1], torch.zeros_like(t[:, :1]))
        cols = torch.where(by_row, torch.zeros_like(t[:1]), t[:1])
        if not torch.equal(rows + cols, t):
            raise ValueError("GridTable needs every channel to vary along the rows or the columns only")
        self.register_buffer("rows", rows.contiguous(), persistent=False)  # (H, 1, C)
        self.register_buffer("cols", cols.contiguous(), persistent=False)  # (1, W, C)

    def forward(self) -> torch.Tensor:
        """The table: (H·W, C)."""
        return (self.rows + self.cols).reshape(-1, self.rows.shape[-1])

    def add_to(self, x: torch.Tensor) -> torch.Tensor:
        """``x + table`` for x (B, H·W, C), as ``(x + rows) + cols``: equal to it bit for bit.

        Every op takes ``x``, so no exporter can constant-fold the factors back into the full
        table (ONNX's optimizer folds constant subgraphs up to 2^18 elements).
        """
        h, w, c = self.rows.shape[0], self.cols.shape[1], self.rows.shape[2]
        return (x.reshape(-1, h, w, c) + self.rows + self.cols).reshape(x.shape)
