"""Structural reparameterization of the image encoder (docs/MODEL.md §2.2), always on a copy.

What is folded (eval-mode semantics: BatchNorm uses its running statistics):

* every ConvBN -> one Conv2d with bias: ``w' = w·γ/√(σ²+ε)``, ``b' = β − μ·γ/√(σ²+ε)``;
* every RepViT token mixer ``dw3x3BN(x) + dw1x1BN(x) + x`` -> one depthwise 3x3 Conv2d with bias
  (1x1 kernel padded into the centre tap, identity = +1 at the centre);
* ``conv_s0 ∘ neck.convs[3]`` -> one 1x1 conv 48 -> 32 and ``conv_s1 ∘ neck.convs[2]`` -> one
  1x1 conv 96 -> 64 (nothing else consumes FPN levels 0 and 1);
* nearest ×2 upsampling -> depthwise ConvTranspose2d(k=2, s=2) with all-ones weights.

Folds are computed in float64 and cast back, so the fused graph differs from the reference by
fp32 re-association only. Inputs are never modified: every fused weight is a new tensor.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .image_encoder import ImageEncoder
from .repvit import ConvBN, DwRepMixer


def _new_conv_like(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A fresh Conv2d with ``conv``'s geometry, bias enabled, holding ``weight``/``bias`` (cast to conv dtype)."""
    out = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    )
    dtype = conv.weight.dtype
    with torch.no_grad():
        out.weight.copy_(weight.to(dtype))
        out.bias.copy_(bias.to(dtype))
    return out.to(conv.weight.device)


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) in float64 of an eval-mode BatchNorm: ``bn(y) = scale·y + shift``."""
    inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv_std)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv_std)
    scale = gamma * inv_std
    return scale, beta - bn.running_mean.double() * scale


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``bn(conv(x))`` as one new Conv2d with bias (same kernel, stride, padding, groups)."""
    scale, shift = _bn_affine(bn)
    w = conv.weight.detach().double() * scale[:, None, None, None]
    b = shift if conv.bias is None else shift + conv.bias.detach().double() * scale
    return _new_conv_like(conv, w, b)


def _folded_weights(convbn: ConvBN) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) in float64 of a ConvBN after BN folding."""
    scale, shift = _bn_affine(convbn.bn)
    return convbn.c.weight.detach().double() * scale[:, None, None, None], shift


def fold_token_mixer(mixer: DwRepMixer) -> nn.Conv2d:
    """``dw3x3BN(x) + dw1x1BN(x) + x`` as one depthwise 3x3 Conv2d with bias: (C,1,3,3) weight, (C,) bias."""
    w3, b3 = _folded_weights(mixer.conv)  # (C,1,3,3)
    w1, b1 = _folded_weights(mixer.conv1)  # (C,1,1,1)
    w = w3 + F.pad(w1, (1, 1, 1, 1))
    w[:, 0, 1, 1] += 1.0  # the identity branch is a centre tap of weight 1
    return _new_conv_like(mixer.conv.c, w, b3 + b1)


def fold_pointwise_chain(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """``second(first(x))`` for two 1x1 convs with bias as one 1x1 conv: Cin -> Cout of ``second``.

    W = W2·W1 and b = W2·b1 + b2.
    """
    if first.kernel_size != (1, 1) or second.kernel_size != (1, 1) or first.groups != 1 or second.groups != 1:
        raise ValueError("fold_pointwise_chain needs two dense 1x1 convs")
    w1 = first.weight.detach().double()[:, :, 0, 0]  # (Cmid, Cin)
    w2 = second.weight.detach().double()[:, :, 0, 0]  # (Cout, Cmid)
    b1 = (
        first.bias.detach().double()
        if first.bias is not None
        else torch.zeros(w1.shape[0], dtype=torch.float64)
    )
    b2 = (
        second.bias.detach().double()
        if second.bias is not None
        else torch.zeros(w2.shape[0], dtype=torch.float64)
    )
    out = nn.Conv2d(w1.shape[1], w2.shape[0], kernel_size=1, bias=True)
    with torch.no_grad():
        out.weight.copy_((w2 @ w1)[:, :, None, None].to(second.weight.dtype))
        out.bias.copy_((w2 @ b1 + b2).to(second.weight.dtype))
    return out.to(second.weight.device)


def nearest_upsample_x2(channels: int) -> nn.ConvTranspose2d:
    """Nearest-neighbour ×2 upsampling as a depthwise ConvTranspose2d: (B, C, H, W) -> (B, C, 2H, 2W).

    Kernel 2, stride 2, groups C, weight (C, 1, 2, 2) of ones, no bias: each output pixel receives
    exactly one input pixel times 1, so it is bit-exact.
    """
    up = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2, groups=channels, bias=False)
    with torch.no_grad():
        up.weight.fill_(1.0)
    up.weight.requires_grad_(False)
    return up


def _fuse_children_inplace(module: nn.Module) -> None:
    """Replace, inside ``module`` (already a private copy), token mixers and ConvBNs by fused convs."""
    for name, child in list(module.named_children()):
        if isinstance(child, DwRepMixer):
            setattr(module, name, fold_token_mixer(child))
        elif isinstance(child, ConvBN):
            setattr(module, name, fold_conv_bn(child.c, child.bn))
        else:
            _fuse_children_inplace(child)


def fuse_trunk(trunk: nn.Module) -> nn.Module:
    """A reparameterized copy of a RepViT-M1 trunk (no BatchNorm; token mixers are dw 3x3 convs).

    Same forward signature: (B, 3, H, W) -> [f0, f1, f2, f3]. The argument is not modified.
    """
    fused = copy.deepcopy(trunk)
    _fuse_children_inplace(fused)
    return fused.eval()


class FusedImageEncoder(nn.Module):
    """Image encoder with every fold applied; forward(image) -> (feat_s0, feat_s1, vis).

    image (1, 3, 1024, 1024) -> feat_s0 (1,32,256,256), feat_s1 (1,64,128,128), vis (1,256,64,64).

    * ``trunk``: fused RepViT-M1 (103 Conv2d, no BN).
    * ``lateral_s3`` / ``lateral_s2``: copies of ``neck.convs[0]`` (384 -> 256) and ``neck.convs[1]``
      (192 -> 256).
    * ``upsample``: nearest ×2 as a depthwise ConvTranspose2d (256 channels).
    * ``proj_s0``: conv_s0∘convs[3], 48 -> 32; ``proj_s1``: conv_s1∘convs[2], 96 -> 64.
    """

    def __init__(
        self,
        trunk: nn.Module,
        lateral_s3: nn.Conv2d,
        lateral_s2: nn.Conv2d,
        proj_s0: nn.Conv2d,
        proj_s1: nn.Conv2d,
    ):
        super().__init__()
        self.trunk = trunk
        self.lateral_s3 = lateral_s3
        self.lateral_s2 = lateral_s2
        self.upsample = nearest_upsample_x2(lateral_s3.out_channels)
        self.proj_s0 = proj_s0
        self.proj_s1 = proj_s1

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f0, f1, f2, f3 = self.trunk(image)
        vis = self.lateral_s2(f2) + self.upsample(self.lateral_s3(f3))
        return self.proj_s0(f0), self.proj_s1(f1), vis


def fuse_image_encoder(
    image_encoder: ImageEncoder, conv_s0: nn.Conv2d, conv_s1: nn.Conv2d
) -> FusedImageEncoder:
    """Build the reparameterized encoder from the reference parts; none of the inputs is modified.

    ``image_encoder``: :class:`ImageEncoder` (trunk + neck); ``conv_s0``: 1x1 256 -> 32;
    ``conv_s1``: 1x1 256 -> 64 (the mask decoder's high-resolution projections).
    Returns a :class:`FusedImageEncoder` in eval mode.
    """
    convs = image_encoder.neck.convs
    return FusedImageEncoder(
        trunk=fuse_trunk(image_encoder.trunk),
        lateral_s3=copy.deepcopy(convs[0].conv),
        lateral_s2=copy.deepcopy(convs[1].conv),
        proj_s0=fold_pointwise_chain(convs[3].conv, conv_s0),
        proj_s1=fold_pointwise_chain(convs[2].conv, conv_s1),
    ).eval()
