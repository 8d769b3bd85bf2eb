"""Export wrapper ``memory_encoder``: raw features + low-res mask logits -> 512 memory tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .constants import IMAGE_SIZE, LOW_RES
from .contracts import Contract, ExportModule, TensorSpec
from .memory_encoder import MemoryEncoder, scale_mask_for_memory
from .perceiver import PerceiverResampler


class MemoryEncoderExport(ExportModule):
    """``(vis, mask_low, binarize) -> (mem,)``, statically shaped, batch 1, float32.

    * ``vis`` (1, 256, 64, 64): raw image features of the frame (not memory-conditioned).
    * ``mask_low`` (1, 1, 256, 256): selected low-res mask logits (after the host's score gate).
    * ``binarize`` (1, 1): 1 for user-prompted (consolidated) frames, 0 for tracked frames.
    * ``mem`` (1, 512, 64): perceiver tokens ``[global 256; 2-D 256]``.

    In-graph: bilinear 256→1024 (align_corners=False), ``binarize·1[m>0] + (1−binarize)·sigmoid(m)``,
    ``·20 − 10``, mask downsampler, pixel projection, fuser, out_proj, perceiver. The memory
    position encoding ``[0; sine16]`` is constant and lives in the memory-attention graph.
    The parts are shared with the reference model (no copy).
    """

    def __init__(self, memory_encoder: MemoryEncoder, spatial_perceiver: PerceiverResampler):
        super().__init__()
        self.memory_encoder = memory_encoder
        self.spatial_perceiver = spatial_perceiver
        n_tok = spatial_perceiver.num_latents + spatial_perceiver.num_latents_2d
        dim = spatial_perceiver.dim
        self.contract = Contract(
            name="memory_encoder",
            inputs=(
                TensorSpec(
                    "vis", (1, 256, 64, 64), "float32", "raw image features of the frame (image_encoder vis)"
                ),
                TensorSpec(
                    "mask_low", (1, 1, LOW_RES, LOW_RES), "float32", "low-res mask logits of the frame"
                ),
                TensorSpec(
                    "binarize", (1, 1), "float32", "1: memory from 1[mask>0] (prompted frame); 0: sigmoid"
                ),
            ),
            outputs=(
                TensorSpec(
                    "mem",
                    (1, n_tok, dim),
                    "float32",
                    "memory tokens: 256 global latents, then 256 2-D latents (16x16)",
                ),
            ),
            description="memory encoder + spatial perceiver: one frame's mask and features -> 512 memory tokens",
            options={"mem_tokens_per_frame": n_tok, "mem_dim": dim},
        )

    def forward(
        self, vis: torch.Tensor, mask_low: torch.Tensor, binarize: torch.Tensor
    ) -> tuple[torch.Tensor]:
        m = F.interpolate(mask_low, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        m = scale_mask_for_memory(m, binarize.reshape(1, 1, 1, 1))
        feats = self.memory_encoder(vis, m)  # (1, 64, 64, 64)
        return (self.spatial_perceiver(feats),)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Features ~N(0, 0.5²); smooth mask logits of both signs (|m| up to ~10); binarize = 0 (tracking)."""
        g = torch.Generator().manual_seed(0)
        vis = 0.5 * torch.randn(1, 256, 64, 64, generator=g)
        coarse = 4.0 * torch.randn(1, 1, 16, 16, generator=g)
        mask = F.interpolate(coarse, size=(LOW_RES, LOW_RES), mode="bilinear", align_corners=False)
        return vis, mask, torch.zeros(1, 1)
