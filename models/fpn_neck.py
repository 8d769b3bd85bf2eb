"""FPN neck of EdgeTAM (``edgetam.yaml``: d_model 256, 1x1 laterals, top-down on levels 2 and 3).

Only the outputs EdgeTAM consumes are produced; the 32² level (L3) is computed because L2
needs it but is then dropped (``scalp: 1``). Position encodings are not computed here: the
only one ever used (64², 256 channels) is a constant owned by its consumers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .repvit import EMBED_DIMS


class _Lateral(nn.Module):
    """One 1x1 lateral conv with bias under the checkpoint name ``conv``: (B, Cin, H, W) -> (B, 256, H, W)."""

    def __init__(self, cin: int, d_model: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, d_model, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FpnNeck(nn.Module):
    """Lateral 1x1 convs ``convs.{0..3}.conv`` indexed from the lowest resolution up.

    convs[0]: 384 -> 256 (f3, 32²), convs[1]: 192 -> 256 (f2, 64²), convs[2]: 96 -> 256 (f1, 128²),
    convs[3]: 48 -> 256 (f0, 256²).

    forward([f0 (B,48,256,256), f1 (B,96,128,128), f2 (B,192,64,64), f3 (B,384,32,32)])
    -> (L0 (B,256,256,256), L1 (B,256,128,128), L2 (B,256,64,64)) with
    L2 = convs[1](f2) + nearest_up2(convs[0](f3)), L1 = convs[2](f1), L0 = convs[3](f0).
    """

    def __init__(
        self, d_model: int = 256, backbone_channel_list: tuple[int, ...] = tuple(reversed(EMBED_DIMS))
    ):
        super().__init__()
        self.d_model = d_model
        self.backbone_channel_list = tuple(backbone_channel_list)
        self.convs = nn.ModuleList(_Lateral(c, d_model) for c in self.backbone_channel_list)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f0, f1, f2, f3 = feats
        l3 = self.convs[0](f3)
        l2 = self.convs[1](f2) + F.interpolate(l3.float(), scale_factor=2.0, mode="nearest")
        l1 = self.convs[2](f1)
        l0 = self.convs[3](f0)
        return l0, l1, l2
