"""ExecuTorch backend: executes a bundle's ``.pte`` programs with ``executorch.runtime`` (XNNPACK)."""

from __future__ import annotations

import os

import numpy as np

from ..backends import MissingBackendError
from ..bundle import Bundle
from .loader import BundleRuntime


class ExecuTorchRuntime(BundleRuntime):
    """``ExecuTorchRuntime(bundle, precision=None, num_threads=None)``.

    ``num_threads`` is accepted for interface symmetry and ignored: XNNPACK runs on
    ExecuTorch's own threadpool, which the Python bindings do not size.

    Each graph's program is loaded on first use and its ``forward`` method kept. Inputs are
    passed positionally in contract order as float32 tensors; outputs come back in contract
    order (float32 for fp16 programs too, whose casts live inside the program).
    """

    name = "executorch"
    backend = "executorch"

    def __init__(
        self, bundle: Bundle | str | os.PathLike, precision: str | None = None, num_threads: int | None = None
    ):
        try:
            from executorch.runtime import Runtime as _EtRuntime
        except ImportError as e:
            raise MissingBackendError(
                'the ExecuTorch runtime needs executorch: pip install "executorch==1.5.1"'
            ) from e
        super().__init__(bundle, precision)
        self._et = _EtRuntime.get()
        self._programs: dict = {}
        self._methods: dict = {}
        self.check_artifacts()

    # Programs take and return tensors by position: names are the contract's, order is all there is.
    io_ordered = True

    def program(self, graph: str):
        """The (cached) loaded program of ``graph``."""
        if graph not in self._programs:
            self._programs[graph] = self._et.load_program(self.paths[graph])
        return self._programs[graph]

    def artifact_io(self, graph: str) -> dict[str, tuple[None, list]]:
        """Tensor sizes from the program's ``forward`` MethodMeta (programs carry no tensor names)."""
        meta = self.program(graph).metadata("forward")
        return {
            "input": (None, [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]),
            "output": (None, [tuple(meta.output_tensor_meta(i).sizes()) for i in range(meta.num_outputs())]),
        }

    def method(self, graph: str):
        """The (cached) ``forward`` method of ``graph``'s program."""
        if graph not in self._methods:
            self._methods[graph] = self.program(graph).load_method("forward")
        return self._methods[graph]

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        contract = self.contracts[graph]
        inputs = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in contract.input_names]
        outs = self.method(graph).execute(inputs)
        return {
            n: o.detach().float().numpy().copy() for n, o in zip(contract.output_names, outs, strict=True)
        }
