"""``prompt_decoder`` export graph: prompt encoder + mask decoder + object-pointer head (docs/MODEL.md §4).

Static shapes: NP point slots (``max_points``), *including* the padding point (0, 0, label -1)
that the official model always appends (it is a real, valid token). Slots with
``pt_valid == 0`` are sanitised to that padding point and masked as attention keys, so they
are exactly inert. Data-dependent choices are arithmetic blends on host flags:

* ``pix = pix + use_no_mem · no_mem_embed``
* ``dense = has_mask · mask_downscaling(mask_in) + (1 − has_mask) · no_mask_embed``

All four mask candidates, IoUs and pointers are returned; selection and object-score gating
happen on the host (``edgetam_export.decisions``).
"""

from __future__ import annotations

import torch
from torch import nn

from .contracts import Contract, ExportModule, TensorSpec
from .layers import MLP
from .mask_decoder import MaskDecoder
from .prompt_encoder import PAD_LABEL, DenseFourierTable, PromptEncoder


def prompt_decoder_contract(max_points: int = 8) -> Contract:
    """The ``prompt_decoder`` contract for ``max_points`` (NP) point slots."""
    n = max_points
    return Contract(
        "prompt_decoder",
        inputs=(
            TensorSpec(
                "pix",
                (1, 256, 64, 64),
                description="image features: raw vis (first frame) or memory-conditioned pix",
            ),
            TensorSpec(
                "use_no_mem",
                (1, 1),
                description="1 to add no_mem_embed to pix (initial conditioning frame), else 0",
            ),
            TensorSpec(
                "feat_s0", (1, 32, 256, 256), description="high-res skip features, stride 4 (image_encoder)"
            ),
            TensorSpec(
                "feat_s1", (1, 64, 128, 128), description="high-res skip features, stride 8 (image_encoder)"
            ),
            TensorSpec(
                "pt_xy",
                (1, n, 2),
                description="point (x, y) in 1024-pixel space without the +0.5 shift; box corners first, "
                "then clicks, then the padding point (0, 0)",
            ),
            TensorSpec(
                "pt_label",
                (1, n),
                description="point labels as float: 0 negative, 1 positive, 2 box top-left, 3 box bottom-right, "
                "-1 padding point",
            ),
            TensorSpec(
                "pt_valid",
                (1, n),
                description="1 for real slots (points and the official padding point), 0 for unused slots",
            ),
            TensorSpec(
                "mask_in", (1, 1, 256, 256), description="low-res mask prompt logits (ignored if has_mask=0)"
            ),
            TensorSpec(
                "has_mask", (1, 1), description="1 to use mask_in as dense prompt, 0 for no_mask_embed"
            ),
        ),
        outputs=(
            TensorSpec(
                "masks", (1, 4, 256, 256), description="low-res mask logits of the 4 mask tokens (ungated)"
            ),
            TensorSpec("iou", (1, 4), description="sigmoid IoU predictions of the 4 masks"),
            TensorSpec("obj_logit", (1, 1), description="object-score logit; object appears iff > 0"),
            TensorSpec(
                "ptr_all",
                (1, 4, 256),
                description="obj_ptr_proj of each of the 4 mask-token outputs (ungated; host selects and gates)",
            ),
        ),
        description="prompt encoder + mask decoder + object-pointer projection for one object",
        options={"max_points": n},
    )


class PromptDecoderExport(ExportModule):
    """Statically shaped prompt encoder + mask decoder (+ obj_ptr_proj) for one object.

    forward(pix (1,256,64,64), use_no_mem (1,1), feat_s0 (1,32,256,256), feat_s1 (1,64,128,128),
    pt_xy (1,NP,2), pt_label (1,NP), pt_valid (1,NP), mask_in (1,1,256,256), has_mask (1,1))
    -> masks (1,4,256,256), iou (1,4), obj_logit (1,1), ptr_all (1,4,256).
    """

    def __init__(
        self,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        obj_ptr_proj: MLP,
        no_mem_embed: torch.Tensor,
        max_points: int = 8,
    ):
        super().__init__()
        if max_points < 1:
            raise ValueError("max_points must be >= 1 (the padding point is always a slot)")
        self.max_points = max_points
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.obj_ptr_proj = obj_ptr_proj
        # (1, 1, 256): shared with the model when given as its Parameter, else a buffer copy.
        if isinstance(no_mem_embed, nn.Parameter):
            self.no_mem_embed = no_mem_embed
        else:
            self.register_buffer("no_mem_embed", no_mem_embed.detach().reshape(1, 1, -1).clone())
        # The dense PE derives from the (already loaded) Gaussian matrix; the export form stores
        # it factored (128 KB instead of 4 MB in every artifact), the reference keeps the table.
        prompt_encoder.refresh_dense_pe()
        self.dense_pe = DenseFourierTable(prompt_encoder.pe_layer, prompt_encoder.grid, prompt_encoder.grid)
        self.contract = prompt_decoder_contract(max_points)

    def forward(
        self,
        pix: torch.Tensor,
        use_no_mem: torch.Tensor,
        feat_s0: torch.Tensor,
        feat_s1: torch.Tensor,
        pt_xy: torch.Tensor,
        pt_label: torch.Tensor,
        pt_valid: torch.Tensor,
        mask_in: torch.Tensor,
        has_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        pe = self.prompt_encoder
        pix = pix + use_no_mem.reshape(1, 1, 1, 1) * self.no_mem_embed.reshape(1, -1, 1, 1)

        # Unused slots become padding points (finite, whatever the caller put there); they are
        # additionally masked as keys in the decoder, so they cannot influence any output.
        keep = pt_valid > 0.5
        xy = torch.where(keep.unsqueeze(-1), pt_xy, torch.zeros_like(pt_xy))
        label = torch.where(keep, pt_label, torch.full_like(pt_label, PAD_LABEL))
        sparse = pe.embed_points(xy, label)  # (1, NP, 256)

        m = has_mask.reshape(1, 1, 1, 1)
        # keep the unused branch finite; a broadcast (1, 1, 1, 1) zero, not a 256×256 constant
        mask = torch.where(m > 0.5, mask_in, torch.zeros_like(m))
        dense = m * pe.embed_mask(mask) + (1.0 - m) * pe.no_mask_dense()  # (1, 256, 64, 64)

        masks, iou, mask_tokens, obj_logit = self.mask_decoder(
            pix, self.dense_pe().unsqueeze(0), sparse, dense, feat_s0, feat_s1, keep.to(pix.dtype)
        )
        ptr_all = self.obj_ptr_proj(mask_tokens)  # (1, 4, 256)
        return masks, iou, obj_logit, ptr_all

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Realistic inputs: features ~N(0,1)·scale, one positive click + the padding point valid."""
        g = torch.Generator().manual_seed(0)
        n = self.max_points
        pix = torch.randn(1, 256, 64, 64, generator=g)
        feat_s0 = 0.35 * torch.randn(1, 32, 256, 256, generator=g)
        feat_s1 = 0.35 * torch.randn(1, 64, 128, 128, generator=g)
        pt_xy = torch.zeros(1, n, 2)
        pt_label = torch.full((1, n), PAD_LABEL)
        pt_valid = torch.zeros(1, n)
        pt_xy[0, 0] = torch.tensor([260.0, 380.0])
        pt_label[0, 0] = 1.0
        pt_valid[0, :2] = 1.0  # the click and the official padding point (0, 0, -1)
        if n == 1:  # degenerate: only the padding point
            pt_xy.zero_()
            pt_label.fill_(PAD_LABEL)
        return (
            pix,
            torch.ones(1, 1),
            feat_s0,
            feat_s1,
            pt_xy,
            pt_label,
            pt_valid,
            torch.zeros(1, 1, 256, 256),
            torch.zeros(1, 1),
        )


def pack_points(
    points_xy: list[tuple[float, float]] | None = None,
    labels: list[int] | None = None,
    box_xyxy: tuple[float, float, float, float] | None = None,
    max_points: int = 8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Build (pt_xy (1,NP,2), pt_label (1,NP), pt_valid (1,NP)) the official way.

    Box corners (labels 2, 3) come first, then the clicks, then the padding point (0,0,-1),
    all valid; remaining slots are invalid. Coordinates are 1024-pixel (x, y), no +0.5.
    """
    xy: list[tuple[float, float]] = []
    lab: list[float] = []
    if box_xyxy is not None:
        x0, y0, x1, y1 = box_xyxy
        xy += [(x0, y0), (x1, y1)]
        lab += [2.0, 3.0]
    if points_xy:
        if labels is None or len(labels) != len(points_xy):
            raise ValueError("labels must be given for every point")
        xy += [(float(x), float(y)) for x, y in points_xy]
        lab += [float(v) for v in labels]
    xy.append((0.0, 0.0))
    lab.append(PAD_LABEL)
    if len(xy) > max_points:
        raise ValueError(f"{len(xy)} point slots needed (incl. padding point) but max_points={max_points}")
    pt_xy = torch.zeros(1, max_points, 2)
    pt_label = torch.full((1, max_points), PAD_LABEL)
    pt_valid = torch.zeros(1, max_points)
    pt_xy[0, : len(xy)] = torch.tensor(xy)
    pt_label[0, : len(lab)] = torch.tensor(lab)
    pt_valid[0, : len(xy)] = 1.0
    return pt_xy, pt_label, pt_valid
