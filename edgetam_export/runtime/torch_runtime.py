"""The PyTorch reference runtime: runs the four export wrappers in eager mode."""

from __future__ import annotations

import os

import numpy as np
import torch

from ..bundle import Bundle, BundleError, bundle_reference
from ..models.edgetam import EdgeTAM
from ..models.submodules import export_options, export_submodules
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
        self.options = export_options(self.modules, fuse, max_points, max_cond_frames, max_obj_ptrs)

    @classmethod
    def from_modules(cls, modules: dict, constants: dict, options: dict) -> TorchRuntime:
        """A runtime over already-wrapped export modules (``{graph: ExportModule}``), e.g. those being exported."""
        self = cls.__new__(cls)
        self.modules = dict(modules)
        self.contracts = {name: m.contract for name, m in self.modules.items()}
        self.constants = {
            k: np.asarray(getattr(v, "numpy", lambda v=v: v)(), np.float32) for k, v in constants.items()
        }
        self.options = dict(options)
        return self

    @classmethod
    def from_bundle(cls, bundle: Bundle, checkpoint: str | os.PathLike | None = None) -> TorchRuntime:
        """The reference rebuilt from the weights and options recorded in ``bundle``.

        Raises :class:`~edgetam_export.bundle.BundleError` when the weights cannot be rebuilt
        or a reference contract differs from the bundle's.
        """
        o = bundle.options
        ref = cls(
            bundle_reference(bundle, checkpoint),
            fuse=bool(o.get("fuse", True)),
            max_points=int(o.get("max_points", 8)),
            max_cond_frames=int(o.get("max_cond_frames", 2)),
            max_obj_ptrs=int(o.get("max_obj_ptrs", 16)),
        )
        for name, c in bundle.contracts.items():
            if ref.contracts[name].as_dict() != c.as_dict():
                raise BundleError(
                    f"the reference's {name!r} contract differs from the bundle's (package version skew?)"
                )
        return ref

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        module = self.modules[graph]
        with torch.inference_mode():
            outs = module(*(torch.from_numpy(feeds[n]) for n in module.contract.input_names))
        return {n: o.numpy() for n, o in zip(module.contract.output_names, outs, strict=True)}
