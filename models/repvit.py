"""RepViT-M1 trunk of EdgeTAM (timm ``repvit_m1`` with ``legacy=True``), written from docs/MODEL.md §2.2.

The module tree reproduces timm's ``FeatureListNet`` parameter names under ``.body`` so that
``image_encoder.trunk.*`` checkpoint keys load strictly:
``body.stem.conv{1,2}.{c,bn}``, ``body.stages_{s}.downsample.{pre_block,spatial_downsample,
channel_downsample,ffn}``, ``body.stages_{s}.blocks.{b}.{token_mixer,se,channel_mixer}``.

BatchNorm is a plain ``nn.BatchNorm2d`` (eps 1e-5); in eval mode it uses its running
statistics, which is what the official trunk does at inference. GELU is the exact (erf) form.
Reparameterization (BN folding, token-mixer collapse) lives in :mod:`.reparam` and works on a
copy; this file is the unfused reference.
"""

from __future__ import annotations

import torch
from torch import nn

EMBED_DIMS = (48, 96, 192, 384)
DEPTHS = (2, 2, 14, 2)
MLP_RATIO = 2
BN_EPS = 1e-5


def make_divisible(value: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` to ``value`` (ties up), at least ``divisor``: 12 -> 16, 24 -> 24."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class ConvBN(nn.Module):
    """Conv2d without bias followed by BatchNorm2d: (B, Cin, H, W) -> (B, Cout, H/stride, W/stride).

    Children ``c`` (the conv) and ``bn`` match the checkpoint's ``*.c.weight`` / ``*.bn.*`` keys.
    """

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1
    ):
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.c(x))


class DwRepMixer(nn.Module):
    """Legacy RepVGG-style depthwise token mixer: ``dw3x3BN(x) + dw1x1BN(x) + x``; (B, C, H, W) -> same.

    Checkpoint children: ``conv`` (3x3 depthwise ConvBN) and ``conv1`` (1x1 depthwise ConvBN).
    There is no normalisation after the sum.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, 1, 1, groups=channels)
        self.conv1 = ConvBN(channels, channels, 1, 1, 0, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv1(x) + x


class SqueezeExcite(nn.Module):
    """Channel gate: ``x · sigmoid(fc2(relu(fc1(mean_HW(x)))))``; (B, C, H, W) -> same.

    ``fc1``: 1x1 conv C -> r with bias, ``fc2``: r -> C with bias, r = make_divisible(C/4, 8).
    """

    def __init__(self, channels: int):
        super().__init__()
        reduced = make_divisible(channels / 4, 8)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.fc2(self.act(self.fc1(s)))
        return x * torch.sigmoid(s)


class ConvMlp(nn.Module):
    """Pointwise FFN without residual: ``conv2(gelu(conv1(x)))``; (B, C, H, W) -> (B, C, H, W).

    ``conv1``: ConvBN 1x1 C -> hidden, ``conv2``: ConvBN 1x1 hidden -> C; GELU is exact (erf).
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv1 = ConvBN(channels, hidden)
        self.act = nn.GELU()
        self.conv2 = ConvBN(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class RepViTBlock(nn.Module):
    """RepViT block: token mixer -> optional SE -> channel-mixer FFN with residual.

    (B, C, H, W) -> (B, C, H, W). Without SE, ``se`` is an ``nn.Identity`` (no checkpoint keys).
    """

    def __init__(self, channels: int, use_se: bool):
        super().__init__()
        self.token_mixer = DwRepMixer(channels)
        self.se = SqueezeExcite(channels) if use_se else nn.Identity()
        self.channel_mixer = ConvMlp(channels, channels * MLP_RATIO)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.se(self.token_mixer(x))
        return t + self.channel_mixer(t)


class Downsample(nn.Module):
    """Stage entry: (B, Cin, H, W) -> (B, Cout, H/2, W/2).

    ``pre_block`` (RepViTBlock without SE) -> ``spatial_downsample`` (dw 3x3 s2 ConvBN) ->
    ``channel_downsample`` (1x1 ConvBN Cin -> Cout) -> ``y + ffn(y)``.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pre_block = RepViTBlock(cin, use_se=False)
        self.spatial_downsample = ConvBN(cin, cin, 3, 2, 1, groups=cin)
        self.channel_downsample = ConvBN(cin, cout)
        self.ffn = ConvMlp(cout, cout * MLP_RATIO)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return y + self.ffn(y)


class Stage(nn.Module):
    """Optional ``downsample`` then ``blocks``; SE on blocks 0, 2, 4, ... (B, Cin, H, W) -> (B, C, H', W')."""

    def __init__(self, cin: int, channels: int, depth: int):
        super().__init__()
        self.downsample = Downsample(cin, channels) if cin != channels else nn.Identity()
        self.blocks = nn.Sequential(*(RepViTBlock(channels, use_se=(i % 2 == 0)) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Stem(nn.Module):
    """``conv1`` (3x3 s2 ConvBN 3 -> 24) -> GELU -> ``conv2`` (3x3 s2 ConvBN 24 -> 48).

    (B, 3, H, W) -> (B, 48, H/4, W/4).
    """

    def __init__(self, cin: int = 3, cout: int = EMBED_DIMS[0]):
        super().__init__()
        self.conv1 = ConvBN(cin, cout // 2, 3, 2, 1)
        self.act1 = nn.GELU()
        self.conv2 = ConvBN(cout // 2, cout, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act1(self.conv1(x)))


class RepViTBody(nn.Module):
    """Stem and the four stages, returning every stage output.

    (1, 3, 1024, 1024) -> [f0 (1,48,256,256), f1 (1,96,128,128), f2 (1,192,64,64), f3 (1,384,32,32)].
    """

    def __init__(self):
        super().__init__()
        self.stem = Stem()
        prev = EMBED_DIMS[0]
        for s, (dim, depth) in enumerate(zip(EMBED_DIMS, DEPTHS, strict=True)):
            self.add_module(f"stages_{s}", Stage(prev, dim, depth))
            prev = dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for s in range(len(EMBED_DIMS)):
            x = getattr(self, f"stages_{s}")(x)
            feats.append(x)
        return feats


class RepViTM1(nn.Module):
    """RepViT-M1 feature trunk; the layers live under ``body`` (checkpoint ``image_encoder.trunk.body.*``).

    forward: image (B, 3, H, W) -> [f0 (B,48,H/4,W/4), f1 (B,96,H/8,W/8), f2 (B,192,H/16,W/16),
    f3 (B,384,H/32,W/32)]; at 1024² that is 256², 128², 64², 32².
    """

    channel_list = tuple(reversed(EMBED_DIMS))  # (384, 192, 96, 48), lowest resolution first

    def __init__(self):
        super().__init__()
        self.body = RepViTBody()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)
