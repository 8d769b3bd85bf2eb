"""The PyTorch reference runtime: runs the four export wrappers in eager mode."""

from __future__ import annotations

import numpy as np
import torch

from ..models.edgetam import EdgeTAM
from ..models.submodules import export_submodules
from .base import Runtime


class TorchRuntime(Runtime):
    """Runs ``export_submodules(model, ...)`` eagerly in float32 on the CPU."""

    name = "pytorch"

    def __init__(
        self,
        model: EdgeTAM,
        fuse: bool = True,
        max_points: int = 8,
        max_cond_frames: int = 2,
        max_obj_ptrs: int = 16,
    ):
        self.modules = export_submodules(
            model,
            fuse=fuse,
            max_points=max_points,
            max_cond_frames=max_cond_frames,
            max_obj_ptrs=max_obj_ptrs,
        )
        self.contracts = {name: m.contract for name, m in self.modules.items()}
        self.constants = {k: v.numpy().astype(np.float32) for k, v in model.host_constants().items()}
        self.options = {
            "fuse": fuse,
            "max_points": max_points,
            "max_cond_frames": max_cond_frames,
            "max_obj_ptrs": max_obj_ptrs,
            **{k: v for m in self.modules.values() for k, v in m.contract.options.items()},
        }

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        module = self.modules[graph]
        with torch.inference_mode():
            outs = module(*(torch.from_numpy(feeds[n]) for n in module.contract.input_names))
        return {n: o.numpy() for n, o in zip(module.contract.output_names, outs, strict=True)}
