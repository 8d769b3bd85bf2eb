"""FLOPs of one forward call of a module, counted by ``torch.utils.flop_counter``.

The count is of the module as given: the reference wrappers (the model's work) or the exact
form an exporter lowered (the work the artifact does, which an exact rewrite may reduce).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def forward_gflop(module: nn.Module, inputs: Sequence[torch.Tensor] | None = None) -> float:
    """GFLOP of ``module(*inputs)`` (default: ``module.example_inputs()``; shapes are static, so
    the values do not matter). Counts matmuls, convolutions and attention (multiply + add = 2)."""
    args = tuple(module.example_inputs()) if inputs is None else tuple(inputs)
    # Inference-only wrappers: parameters that require grad (some made in inference mode by
    # fusion) trip FlopCounterMode's module-tracker grad hooks.
    for prm in module.parameters():
        prm.requires_grad_(False)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args)
    return counter.get_total_flops() / 1e9
