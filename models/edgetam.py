"""The EdgeTAM container: owns every part under its official checkpoint name."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .image_encoder import ImageEncoder
from .layers import MLP
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .perceiver import PerceiverResampler
from .prompt_encoder import PromptEncoder


class EdgeTAM(nn.Module):
    """EdgeTAM at 1024x1024 with the ``edgetam.yaml`` configuration.

    Attribute names equal the official checkpoint prefixes, so
    ``load_state_dict(official_state_dict, strict=True)`` works as is.
    """

    image_size = 1024
    num_maskmem = 7

    def __init__(self):
        super().__init__()
        self.image_encoder = ImageEncoder()
        self.sam_prompt_encoder = PromptEncoder()
        self.sam_mask_decoder = MaskDecoder()
        self.memory_attention = MemoryAttention()
        self.memory_encoder = MemoryEncoder()
        self.spatial_perceiver = PerceiverResampler()
        self.obj_ptr_proj = MLP(256, 256, 256, 3)
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(self.num_maskmem, 1, 1, 64))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, 256))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, 256))  # in the checkpoint, unused at inference
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, 256))

    def forward_image(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(1, 3, 1024, 1024) normalised image -> feat_s0 (1,32,256,256), feat_s1 (1,64,128,128), vis (1,256,64,64)."""
        l0, l1, vis = self.image_encoder(image)
        return self.sam_mask_decoder.conv_s0(l0), self.sam_mask_decoder.conv_s1(l1), vis

    def host_constants(self) -> dict[str, torch.Tensor]:
        """Constants the host-side tracker needs besides the four graphs."""
        return {
            "no_obj_ptr": self.no_obj_ptr.detach().reshape(256).clone(),
            "mask_downsample_weight": self.mask_downsample.weight.detach().clone(),
            "mask_downsample_bias": self.mask_downsample.bias.detach().clone(),
        }


def build_edgetam(checkpoint: str | Mapping[str, torch.Tensor] | None = None) -> EdgeTAM:
    """Build EdgeTAM in eval mode from an official ``.pt`` path, a Hugging Face checkpoint (folder with
    ``config.json`` + ``model.safetensors``, or a ``.safetensors`` file), a state dict, or None (salt-0 synthetic)."""
    from .checkpoint import load_checkpoint
    from .synthetic_weights import synthetic_state_dict

    sd = synthetic_state_dict(0) if checkpoint is None else load_checkpoint(checkpoint)
    if checkpoint is None:
        from .checkpoint import validate_state_dict

        validate_state_dict(sd)
    model = EdgeTAM()
    model.load_state_dict(sd, strict=True)
    return model.eval()
