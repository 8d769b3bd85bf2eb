"""The four statically shaped export submodules, built from one EdgeTAM reference."""

from __future__ import annotations

from collections.abc import Mapping

from .constants import GRAPH_NAMES
from .contracts import ExportModule
from .edgetam import EdgeTAM
from .wrap_image_encoder import ImageEncoderExport
from .wrap_memory_attention import MemoryAttentionExport
from .wrap_memory_encoder import MemoryEncoderExport
from .wrap_prompt_decoder import PromptDecoderExport

SUBMODULE_NAMES = GRAPH_NAMES
NUM_RECENT_FRAMES = 6  # num_maskmem - 1


def export_submodules(
    model: EdgeTAM,
    fuse: bool = True,
    max_points: int = 8,
    max_cond_frames: int = 2,
    max_obj_ptrs: int = 16,
) -> dict[str, ExportModule]:
    """Return ``{name: wrapper}`` for image_encoder, prompt_decoder, memory_encoder, memory_attention.

    - ``max_points``: point slots of the prompt decoder, including the padding point the
      official model always appends (so up to ``max_points - 1`` user points/box corners).
    - ``max_cond_frames``: conditioning slots; spatial slots S = max_cond_frames + 6.
    - ``max_obj_ptrs``: the official ``max_obj_ptrs_in_encoder`` (16): pointers from past
      conditioning frames plus the 15 nearest tracked frames, so P = max_cond_frames +
      max_obj_ptrs - 1 pointer slots (17 by default), which keeps the bank exact.
    ``fuse`` reparameterizes a copy of the image encoder (BN folding, RepViT token mixer,
    conv_s0/conv_s1 folded into the neck); the reference ``model`` is not modified.
    """
    model = model.eval()
    mods = {
        "image_encoder": ImageEncoderExport(
            model.image_encoder, model.sam_mask_decoder.conv_s0, model.sam_mask_decoder.conv_s1, fuse=fuse
        ),
        "prompt_decoder": PromptDecoderExport(
            model.sam_prompt_encoder,
            model.sam_mask_decoder,
            model.obj_ptr_proj,
            model.no_mem_embed,
            max_points,
        ),
        "memory_encoder": MemoryEncoderExport(model.memory_encoder, model.spatial_perceiver),
        "memory_attention": MemoryAttentionExport(
            model.memory_attention,
            model.maskmem_tpos_enc,
            num_spatial_slots=max_cond_frames + NUM_RECENT_FRAMES,
            num_ptr_slots=max_cond_frames + max_obj_ptrs - 1,
        ),
    }
    return {name: mods[name].eval() for name in SUBMODULE_NAMES}


def export_options(
    modules: Mapping[str, ExportModule], fuse: bool, max_points: int, max_cond_frames: int, max_obj_ptrs: int
) -> dict:
    """The options a runtime exposes: the export arguments plus every contract's options."""
    return {
        "fuse": fuse,
        "max_points": max_points,
        "max_cond_frames": max_cond_frames,
        "max_obj_ptrs": max_obj_ptrs,
        **{k: v for m in modules.values() for k, v in m.contract.options.items()},
    }
