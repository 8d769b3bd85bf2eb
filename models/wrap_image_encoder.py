"""Export wrapper of the image encoder graph (docs/MODEL.md §4): image -> feat_s0, feat_s1, vis."""

from __future__ import annotations

import torch
from torch import nn

from .constants import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD
from .contracts import Contract, ExportModule, TensorSpec
from .image_encoder import ImageEncoder
from .reparam import fuse_image_encoder

IMAGE_ENCODER_CONTRACT = Contract(
    "image_encoder",
    inputs=(
        TensorSpec(
            "image",
            (1, 3, IMAGE_SIZE, IMAGE_SIZE),
            "float32",
            "normalized RGB: frame resized to 1024x1024 (no aspect ratio kept), /255, minus ImageNet mean "
            "(0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225)",
        ),
    ),
    outputs=(
        TensorSpec(
            "feat_s0",
            (1, 32, 256, 256),
            "float32",
            "stride-4 high-resolution features: sam_mask_decoder.conv_s0(FPN level 0)",
        ),
        TensorSpec(
            "feat_s1",
            (1, 64, 128, 128),
            "float32",
            "stride-8 high-resolution features: sam_mask_decoder.conv_s1(FPN level 1)",
        ),
        TensorSpec(
            "vis",
            (1, 256, 64, 64),
            "float32",
            "stride-16 vision features (FPN level 2 = convs[1](stage2) + nearest_up2(convs[0](stage3))), "
            "raw: no memory conditioning, no no_mem_embed",
        ),
    ),
    description="RepViT-M1 trunk + FPN neck + the mask decoder's conv_s0/conv_s1 projections for one frame.",
)


class _ReferenceImageHead(nn.Module):
    """Unfused reference path: (1,3,1024,1024) -> (conv_s0(L0) (1,32,256,256), conv_s1(L1) (1,64,128,128),
    vis (1,256,64,64)), using the given modules as they are (not copied)."""

    def __init__(self, image_encoder: ImageEncoder, conv_s0: nn.Conv2d, conv_s1: nn.Conv2d):
        super().__init__()
        self.image_encoder = image_encoder
        self.conv_s0 = conv_s0
        self.conv_s1 = conv_s1

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        l0, l1, vis = self.image_encoder(image)
        return self.conv_s0(l0), self.conv_s1(l1), vis


class ImageEncoderExport(ExportModule):
    """Statically shaped image-encoder graph.

    forward(image (1,3,1024,1024) float32 normalized RGB) ->
    (feat_s0 (1,32,256,256), feat_s1 (1,64,128,128), vis (1,256,64,64)).

    ``fuse=True`` (export default) builds a reparameterized copy (:func:`fuse_image_encoder`:
    BN folded, token mixers collapsed, conv_s0/conv_s1 folded into the neck, nearest ×2 as a
    depthwise ConvTranspose2d); the arguments are left untouched. ``fuse=False`` runs the
    reference modules directly (BatchNorm in eval mode, conv_s0/conv_s1 after the neck).
    """

    def __init__(
        self, image_encoder: ImageEncoder, conv_s0: nn.Conv2d, conv_s1: nn.Conv2d, fuse: bool = True
    ):
        super().__init__()
        self.fused = bool(fuse)
        if self.fused:
            self.encoder = fuse_image_encoder(image_encoder, conv_s0, conv_s1)
        else:
            self.encoder = _ReferenceImageHead(image_encoder, conv_s0, conv_s1)
        self.contract = Contract(
            IMAGE_ENCODER_CONTRACT.name,
            IMAGE_ENCODER_CONTRACT.inputs,
            IMAGE_ENCODER_CONTRACT.outputs,
            IMAGE_ENCODER_CONTRACT.description,
            {"fused": self.fused},
        )
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat_s0, feat_s1, vis = self.encoder(image)
        return feat_s0, feat_s1, vis

    def example_inputs(self) -> tuple[torch.Tensor]:
        """A normalized random RGB image (1,3,1024,1024): uniform [0,1] pixels, then mean/std."""
        g = torch.Generator().manual_seed(0)
        rgb = torch.rand((1, 3, IMAGE_SIZE, IMAGE_SIZE), generator=g)
        mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
        return ((rgb - mean) / std,)
