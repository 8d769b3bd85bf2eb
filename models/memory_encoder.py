"""EdgeTAM memory encoder: fuses raw image features with a (scaled) mask into 64-channel memory.

Checkpoint prefix ``memory_encoder``. Structure (docs/MODEL.md §2.7):

* ``mask_downsampler.encoder``: 4 × [Conv3×3 s2 p1 → LayerNorm2d(1e-6) → GELU] with channels
  1→4→16→64→256 (1024² → 64²), then Conv1×1 256→256. Sequential indices 0..12 match the
  checkpoint (GELUs at 2, 5, 8, 11 carry no weights).
* ``pix_feat_proj``: Conv1×1 256→256 on the raw image features.
* ``fuser.layers.{0,1}``: ConvNeXt blocks (:class:`CXBlock`).
* ``out_proj``: Conv1×1 256→64.

The 64-channel sine position encoding of the output is a constant; the spatial perceiver,
its only consumer, owns it as a buffer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LayerNorm2d

MASK_SCALE = 20.0  # memory-encoder mask range: m'·MASK_SCALE + MASK_BIAS (official sigmoid_scale/bias)
MASK_BIAS = -10.0


class MaskDownSampler(nn.Module):
    """(B, 1, 1024, 1024) scaled mask -> (B, 256, 64, 64)."""

    def __init__(self, embed_dim: int = 256, channels: tuple[int, ...] = (4, 16, 64, 256)):
        super().__init__()
        mods: list[nn.Module] = []
        c_in = 1
        for c_out in channels:
            mods += [
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
                LayerNorm2d(c_out),
                nn.GELU(),
            ]
            c_in = c_out
        mods.append(nn.Conv2d(c_in, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*mods)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(mask)


class CXBlock(nn.Module):
    """ConvNeXt block, (B, C, H, W) -> (B, C, H, W).

    ``x + γ · W2·GELU(W1·LN(dwconv7x7(x)))``, where LN normalises over channels per pixel
    (eps 1e-6) and W1/W2 are per-pixel linear layers (C → 4C → C).
    """

    def __init__(self, dim: int = 256, kernel_size: int = 7):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of :class:`CXBlock` (no input projection): (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, dim: int = 256, num_layers: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Raw image features + scaled mask -> 64-channel memory features.

    ``forward(pix (B,256,64,64), mask (B,1,1024,1024)) -> (B,64,64,64)``. ``pix`` is the raw
    ``vis`` of the frame (no memory conditioning, no no_mem_embed). ``mask`` is already in the
    memory-encoder range: ``m'·20 − 10`` with ``m'`` the binarised or sigmoid mask (see
    :func:`scale_mask_for_memory`).
    """

    in_dim = 256
    out_dim = 64

    def __init__(self):
        super().__init__()
        self.mask_downsampler = MaskDownSampler(self.in_dim)
        self.pix_feat_proj = nn.Conv2d(self.in_dim, self.in_dim, kernel_size=1)
        self.fuser = Fuser(self.in_dim, 2)
        self.out_proj = nn.Conv2d(self.in_dim, self.out_dim, kernel_size=1)

    def forward(self, pix: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.pix_feat_proj(pix) + self.mask_downsampler(mask)
        return self.out_proj(self.fuser(x))


def scale_mask_for_memory(
    mask_logits: torch.Tensor,
    binarize: torch.Tensor | float,
    scale: float = MASK_SCALE,
    bias: float = MASK_BIAS,
) -> torch.Tensor:
    """Memory-encoder mask input from logits: ``(binarize·1[m>0] + (1−binarize)·sigmoid(m))·scale + bias``.

    ``mask_logits`` (B, 1, H, W); ``binarize`` a 0/1 flag broadcastable to it (a float or a
    tensor such as (B, 1, 1, 1)). With a flag of exactly 0 or 1 the blend equals the official
    branch bit for bit. Returns (B, 1, H, W).
    """
    step = (mask_logits > 0).to(mask_logits.dtype)
    m = binarize * step + (1.0 - binarize) * torch.sigmoid(mask_logits)
    return m * scale + bias
