"""EdgeTAM mask decoder (SAM-2 style with high-resolution skip features, docs/MODEL.md §2.5).

Always returns all four mask-token outputs; choosing among them (multimask / dynamic
stability) and object-score gating are host decisions (``edgetam_export.decisions``).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import MLP, LayerNorm2d
from .two_way_transformer import TwoWayTransformer

DIM = 256
NUM_MASK_TOKENS = 4  # token 0 = single-mask output, tokens 1..3 = multimask candidates
NUM_OUTPUT_TOKENS = 2 + NUM_MASK_TOKENS  # [obj_score, iou, mask x4]


class MaskDecoder(nn.Module):
    """Two-way transformer + upscaling with high-res skips + hypernetwork/IoU/object-score heads.

    Checkpoint prefix ``sam_mask_decoder``. Also owns ``conv_s0`` (1x1 256→32) and ``conv_s1``
    (1x1 256→64), which project FPN levels 0/1 into the skip features ``feat_s0``/``feat_s1``
    (applied by the image-encoder wrapper, not here).
    """

    def __init__(self):
        super().__init__()
        self.transformer = TwoWayTransformer(depth=2, dim=DIM, num_heads=8, mlp_dim=2048)
        self.obj_score_token = nn.Embedding(1, DIM)
        self.iou_token = nn.Embedding(1, DIM)
        self.mask_tokens = nn.Embedding(NUM_MASK_TOKENS, DIM)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(DIM, DIM // 4, kernel_size=2, stride=2),
            LayerNorm2d(DIM // 4),
            nn.GELU(),
            nn.ConvTranspose2d(DIM // 4, DIM // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(DIM, DIM // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(DIM, DIM // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(DIM, DIM, DIM // 8, 3) for _ in range(NUM_MASK_TOKENS)
        )
        self.iou_prediction_head = MLP(DIM, DIM, NUM_MASK_TOKENS, 3, sigmoid_output=True)
        self.pred_obj_score_head = MLP(DIM, DIM, 1, 3)

    def output_tokens(self) -> torch.Tensor:
        """The learned output tokens [obj_score, iou, mask0..3]: (6, 256)."""
        return torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        feat_s0: torch.Tensor,
        feat_s1: torch.Tensor,
        sparse_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict all four masks.

        image_embeddings (B,256,64,64) (``pix``), image_pe (1,256,64,64), sparse (B,Ns,256),
        dense (B or 1,256,64 or 1,64 or 1), feat_s0 (B,32,256,256), feat_s1 (B,64,128,128),
        sparse_valid (B,Ns) in {0,1} or None (all valid).

        Returns masks (B,4,256,256) logits, iou (B,4) sigmoid scores, mask_tokens (B,4,256)
        (transformer outputs of the 4 mask tokens), obj_logit (B,1).
        """
        b = sparse.shape[0]
        out_tokens = self.output_tokens().unsqueeze(0).expand(b, -1, -1)
        tokens = torch.cat([out_tokens, sparse], dim=1)  # (B, 6+Ns, 256)
        token_valid = None
        if sparse_valid is not None:
            # pad the validity on the left with 1 for the 6 output tokens
            token_valid = nn.functional.pad(sparse_valid, (NUM_OUTPUT_TOKENS, 0), value=1.0)

        src = image_embeddings + dense
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, img = self.transformer(src, pos, tokens, token_valid)
        obj_token = hs[:, 0, :]
        iou_token = hs[:, 1, :]
        mask_tokens = hs[:, 2 : 2 + NUM_MASK_TOKENS, :]

        img = img.transpose(1, 2).reshape(b, c, h, w)
        up1, ln1, act1, up2, act2 = self.output_upscaling
        u = act1(ln1(up1(img) + feat_s1))  # (B, 64, 128, 128)
        u = act2(up2(u) + feat_s0)  # (B, 32, 256, 256)

        hyper = torch.stack(
            [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # (B, 4, 32)
        _, cu, hu, wu = u.shape
        masks = (hyper @ u.reshape(b, cu, hu * wu)).reshape(b, NUM_MASK_TOKENS, hu, wu)
        iou = self.iou_prediction_head(iou_token)
        obj_logit = self.pred_obj_score_head(obj_token)
        return masks, iou, mask_tokens, obj_logit
