"""EdgeTAM prompt encoder (docs/MODEL.md §2.3 random-Fourier PE, §2.4 sparse/dense prompt embeddings).

Export-oriented design:

* Points are embedded functionally (no in-place masked assignment), so the same code runs
  eagerly and under ``torch.export``; labels arrive as a float tensor in {-1, 0, 1, 2, 3}.
* The dense decoder PE (256, 64, 64) is a registered (non-persistent) buffer derived from the
  Gaussian frequency matrix. The matrix is only known after the checkpoint is loaded, so the
  dense PE is recomputed by a ``load_state_dict`` post-hook (and by :meth:`refresh_dense_pe`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .constants import IMAGE_SIZE
from .layers import LayerNorm2d

EMBED_DIM = 256
GRID = 64  # image embedding size (1024 / 16)
MASK_IN_CHANS = 16
NUM_POINT_LABELS = 4  # 0 negative, 1 positive, 2 box top-left, 3 box bottom-right
PAD_LABEL = -1.0


class RandomFourierPE(nn.Module):
    """Random spatial-frequency encoding: u in [0,1]^2 -> [sin φ, cos φ] with φ = 2π·(2u−1)·G.

    ``positional_encoding_gaussian_matrix`` G is a (2, num_feats) buffer taken from the
    checkpoint; row 0 multiplies the x coordinate, row 1 the y coordinate.
    """

    def __init__(self, num_feats: int = EMBED_DIM // 2):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.zeros(2, num_feats))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """(..., 2) normalised (x, y) in [0, 1] -> (..., 2·num_feats) encoding [sin, cos].

        Called as a module (``pe_layer(u)``) so exported graphs carry the ``pe_layer`` scope,
        which quantization recipes name to keep these few, phase-sensitive ops float.
        """
        phi = (2 * u - 1) @ self.positional_encoding_gaussian_matrix
        phi = 2 * math.pi * phi
        return torch.cat([torch.sin(phi), torch.cos(phi)], dim=-1)

    def dense(self, height: int, width: int) -> torch.Tensor:
        """Encoding of the pixel centres of an (height, width) grid: (2·num_feats, height, width)."""
        g = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(height, dtype=g.dtype, device=g.device) + 0.5) / height
        xs = (torch.arange(width, dtype=g.dtype, device=g.device) + 0.5) / width
        u = torch.stack(
            [xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)], dim=-1
        )  # (H, W, 2) as (x, y)
        return self(u).permute(2, 0, 1).contiguous()


class DenseFourierTable(nn.Module):
    """The dense PE (2F, H, W) of a :class:`RandomFourierPE`, stored as per-axis sin/cos factors.

    The angle is a sum of an x term and a y term, φ = φx(x) + φy(y), so
    ``sin φ = sin φx·cos φy + cos φx·sin φy`` and ``cos φ = cos φx·cos φy − sin φx·sin φy``.
    Factors ``sx``/``cx`` (F, 1, W) and ``sy``/``cy`` (F, H, 1) are computed in float64;
    ``forward()`` rebuilds the (2F, H, W) table with four products and two sums, within ~1e-6
    of the direct float32 table (whose own angle rounding is of that order). An artifact then
    carries 4·F·(H+W) values instead of 2F·H·W (128 KB instead of 4 MB). Export forms only:
    the reference keeps the direct ``dense_pe`` buffer.
    """

    def __init__(self, pe: RandomFourierPE, height: int, width: int):
        super().__init__()
        g = pe.positional_encoding_gaussian_matrix.detach()
        g64 = g.double()
        xs = (torch.arange(width, dtype=torch.float64) + 0.5) / width
        ys = (torch.arange(height, dtype=torch.float64) + 0.5) / height
        phx = (2 * math.pi * ((2 * xs - 1)[:, None] * g64[0])).t()  # (F, W)
        phy = (2 * math.pi * ((2 * ys - 1)[:, None] * g64[1])).t()  # (F, H)
        for name, v in (
            ("sx", phx.sin()[:, None, :]),
            ("cx", phx.cos()[:, None, :]),
            ("sy", phy.sin()[:, :, None]),
            ("cy", phy.cos()[:, :, None]),
        ):
            self.register_buffer(name, v.to(g.dtype).contiguous(), persistent=False)

    def forward(self) -> torch.Tensor:
        """The dense PE: (2F, H, W), channels ``[sin φ; cos φ]`` as in :meth:`RandomFourierPE.dense`."""
        sin = self.sx * self.cy + self.cx * self.sy
        cos = self.cx * self.cy - self.sx * self.sy
        return torch.cat([sin, cos], dim=0)


class PromptEncoder(nn.Module):
    """Sparse (points) and dense (mask) prompt embeddings, EdgeTAM config (256-d, 64x64 grid).

    Checkpoint prefix ``sam_prompt_encoder``: ``pe_layer.positional_encoding_gaussian_matrix``
    (2,128), ``point_embeddings.{0..3}.weight`` (1,256), ``not_a_point_embed.weight`` (1,256),
    ``mask_downscaling.{0,1,3,4,6}.*``, ``no_mask_embed.weight`` (1,256).
    """

    def __init__(self):
        super().__init__()
        self.embed_dim = EMBED_DIM
        self.grid = GRID
        self.image_size = IMAGE_SIZE
        self.pe_layer = RandomFourierPE(EMBED_DIM // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, EMBED_DIM) for _ in range(NUM_POINT_LABELS))
        self.not_a_point_embed = nn.Embedding(1, EMBED_DIM)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, MASK_IN_CHANS // 4, kernel_size=2, stride=2),
            LayerNorm2d(MASK_IN_CHANS // 4),
            nn.GELU(),
            nn.Conv2d(MASK_IN_CHANS // 4, MASK_IN_CHANS, kernel_size=2, stride=2),
            LayerNorm2d(MASK_IN_CHANS),
            nn.GELU(),
            nn.Conv2d(MASK_IN_CHANS, EMBED_DIM, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, EMBED_DIM)
        # Constants: not part of the checkpoint (non-persistent) but real buffers for export.
        self.register_buffer(
            "label_ids", torch.arange(NUM_POINT_LABELS, dtype=torch.float32), persistent=False
        )  # (4,)
        self.register_buffer("dense_pe", torch.zeros(EMBED_DIM, GRID, GRID), persistent=False)  # (256,64,64)
        self.refresh_dense_pe()
        self.register_load_state_dict_post_hook(_refresh_after_load)

    @torch.no_grad()
    def refresh_dense_pe(self) -> None:
        """Recompute the ``dense_pe`` buffer (256, 64, 64) from the current Gaussian matrix."""
        self.dense_pe.copy_(self.pe_layer.dense(self.grid, self.grid))

    def get_dense_pe(self) -> torch.Tensor:
        """The decoder's image position encoding: (1, 256, 64, 64) (a buffer, not computed here)."""
        return self.dense_pe.unsqueeze(0)

    def embed_points(self, xy: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sparse point tokens.

        xy: (B, N, 2) (x, y) in 1024-pixel space *without* the +0.5 pixel-centre shift.
        labels: (B, N) float in {-1, 0, 1, 2, 3}; -1 is the padding / not-a-point label.
        Returns (B, N, 256): ``where(label==-1, 0, pe) + onehot(label)·E + [label==-1]·e_nap``.
        The official padding point (0, 0, -1) is *not* appended here; callers include it.
        """
        u = (xy + 0.5) / self.image_size
        pe = self.pe_layer(u)  # (B, N, 256)
        is_pad = (labels == PAD_LABEL).unsqueeze(-1).to(pe.dtype)  # (B, N, 1)
        onehot = (labels.unsqueeze(-1) == self.label_ids).to(pe.dtype)  # (B, N, 4)
        table = torch.cat([e.weight for e in self.point_embeddings], dim=0)  # (4, 256)
        pe = torch.where(is_pad > 0, torch.zeros_like(pe), pe)
        return pe + onehot @ table + is_pad * self.not_a_point_embed.weight

    def embed_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Dense embedding of a low-res mask prompt: (B, 1, 256, 256) logits -> (B, 256, 64, 64)."""
        return self.mask_downscaling(mask)

    def no_mask_dense(self) -> torch.Tensor:
        """Dense embedding used without a mask prompt: (1, 256, 1, 1), broadcast over the grid."""
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1)

    def forward(
        self, xy: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Official-style call: (B,N,2), (B,N)[, (B,1,256,256)] -> sparse (B,N,256), dense (B,256,64,64).

        ``mask is None`` is a Python-level (not data-dependent) choice, as in the official code.
        """
        sparse = self.embed_points(xy, labels)
        if mask is None:
            dense = self.no_mask_dense().expand(xy.shape[0], -1, self.grid, self.grid)
        else:
            dense = self.embed_mask(mask)
        return sparse, dense


def _refresh_after_load(module: PromptEncoder, incompatible_keys) -> None:
    module.refresh_dense_pe()
