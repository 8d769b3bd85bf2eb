"""Precision rewrites of export modules (on copies): fp16 compute behind a float32 boundary, with fp32 islands."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .contracts import ExportModule
from .layers import LayerNorm2d


class _Fp32Island(nn.Module):
    """Runs a wrapped (float32) module in float32 inside an fp16 graph: casts in, casts back out."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float()).to(x.dtype)


def _fp32_norm_types() -> tuple[type[nn.Module], ...]:
    return (nn.LayerNorm, LayerNorm2d)


class _Fp16Compute(nn.Module):
    """fp16 compute behind a float32 boundary: ``forward`` casts float inputs to half, runs a
    half copy of the wrapped module, and casts every output back to float32, so the graph
    keeps its contract (float32 I/O) while weights and activations are fp16.

    Modules of the ``keep_fp32`` types (default: LayerNorm and LayerNorm2d) stay float32
    islands: their variance (a sum of squares over up to 256 channels) overflows fp16 on real
    activations (docs/MODEL.md §5); ExecuTorch's portable
    fp16 layer_norm returns NaN on the memory-attention graph without this.
    """

    def __init__(self, module: ExportModule, keep_fp32: tuple[type[nn.Module], ...] | None = None):
        super().__init__()
        keep = _fp32_norm_types() if keep_fp32 is None else tuple(keep_fp32)
        self.inner = copy.deepcopy(module).half().eval()
        if keep:
            targets = [name for name, m in self.inner.named_modules() if name and isinstance(m, keep)]
            for name in targets:
                parent_name, _, child = name.rpartition(".")
                parent = self.inner.get_submodule(parent_name) if parent_name else self.inner
                setattr(parent, child, _Fp32Island(getattr(parent, child)))
        self.fp32_islands = len(targets) if keep else 0
        self.contract = module.contract

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        xs = tuple(x.half() if x.is_floating_point() else x for x in inputs)
        outs = self.inner(*xs)
        return tuple(o.float() for o in outs)


def fp16_compute(module: ExportModule, keep_fp32: tuple[type[nn.Module], ...] | None = None) -> nn.Module:
    """A half-precision copy of ``module`` with float32 inputs and outputs (the original is untouched).

    ``keep_fp32``: module types that stay float32 inside (default LayerNorm/LayerNorm2d; ``()``
    for none).
    """
    return _Fp16Compute(module, keep_fp32).eval()
