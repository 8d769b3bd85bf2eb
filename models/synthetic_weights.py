"""Synthetic EdgeTAM weights (recipe ``edgetam-synth-v1``).

Every tensor depends only on ``(salt, key, shape)``; the recipe is bit-exact with the one
that produced the official golden data (see tests/golden and WEIGHTS_RECIPE.md):
seed = crc32(f"{salt}:{key}"), a fresh CPU Mersenne-Twister generator per key, one draw
for the full shape, a per-key rule, then a few additive offsets.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections import OrderedDict

import numpy as np
import torch

from .checkpoint_layout import checkpoint_layout

RECIPE = "edgetam-synth-v1"

_RESIDUAL_BRANCH_BN_SCALES = (
    "token_mixer.conv.bn.weight",
    "token_mixer.conv1.bn.weight",
    "channel_mixer.conv2.bn.weight",
    "ffn.conv2.bn.weight",
)
_OFFSETS = {
    "sam_mask_decoder.pred_obj_score_head.layers.2.bias": 2.0,
    **{f"sam_mask_decoder.output_hypernetworks_mlps.{i}.layers.2.bias": -0.1 for i in range(4)},
}


def synthetic_tensor(key: str, shape: tuple[int, ...], salt: int = 0) -> torch.Tensor:
    """Generate one checkpoint tensor of the given ``shape`` by the recipe's rules R1..R12."""
    g = torch.Generator()
    g.manual_seed(zlib.crc32(f"{salt}:{key}".encode()))

    def randn() -> torch.Tensor:
        return torch.randn(shape, generator=g, dtype=torch.float32)

    if key == "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix":
        t = randn() * 1.0
    elif key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    elif key.endswith("running_var"):
        t = 0.5 + torch.rand(shape, generator=g, dtype=torch.float32)
    elif key.endswith("running_mean"):
        t = randn() * 0.1
    elif key.endswith(_RESIDUAL_BRANCH_BN_SCALES):
        t = 0.25 + 0.025 * randn()
    elif len(shape) == 1 and key.endswith(".weight"):
        t = 1.0 + 0.1 * randn()
    elif len(shape) == 1 and key.endswith(".bias"):
        t = randn() * 0.05
    elif len(shape) == 1 and key.endswith(".gamma"):
        t = 0.1 + 0.01 * randn()
    elif len(shape) >= 2:
        t = randn() * (1.0 / math.sqrt(math.prod(shape[1:])))
    else:
        raise ValueError(f"no synthetic-weight rule matches key {key!r} with shape {list(shape)}")
    if key in _OFFSETS:
        t = t + _OFFSETS[key]
    return t


def synthetic_state_dict(salt: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Return salt-``salt`` synthetic weights in the official key layout and order (982 keys)."""
    return OrderedDict(
        (spec.key, synthetic_tensor(spec.key, spec.shape, salt)) for spec in checkpoint_layout()
    )


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's raw little-endian C-order bytes, concatenated in key order."""
    h = hashlib.sha256()
    for t in state_dict.values():
        h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
    return h.hexdigest()
