"""EdgeTAM image encoder (unfused reference): RepViT-M1 trunk + FPN neck, ``scalp: 1``."""

from __future__ import annotations

import torch
from torch import nn

from .fpn_neck import FpnNeck
from .repvit import RepViTM1


class ImageEncoder(nn.Module):
    """``trunk`` (RepViT-M1) and ``neck`` (FpnNeck); checkpoint prefix ``image_encoder``.

    forward(image (1, 3, 1024, 1024) normalised RGB) ->
    (l0 (1,256,256,256), l1 (1,256,128,128), vis (1,256,64,64)).
    ``vis`` is the top kept FPN level (the official ``vision_features``); l0/l1 feed the mask
    decoder's ``conv_s0`` / ``conv_s1``.
    """

    def __init__(self):
        super().__init__()
        self.trunk = RepViTM1()
        self.neck = FpnNeck(256, self.trunk.channel_list)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.neck(self.trunk(image))
