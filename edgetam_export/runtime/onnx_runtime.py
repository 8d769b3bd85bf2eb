"""ONNX Runtime backend: executes a bundle's ``.onnx`` graphs with ``InferenceSession`` on the CPU EP."""

from __future__ import annotations

import os

import numpy as np

from ..backends import MissingBackendError
from ..bundle import Bundle
from .loader import BundleRuntime


def cpu_session(path: str | os.PathLike, num_threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` of ``path`` on the CPU EP (``num_threads`` intra-op, quiet logs)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if num_threads:
        so.intra_op_num_threads = int(num_threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxRuntime(BundleRuntime):
    """``OnnxRuntime(bundle, precision=None, num_threads=None)``.

    One ``InferenceSession`` per graph (CPUExecutionProvider), created on first use. Inputs
    and outputs are float32 numpy arrays named and shaped by the contracts (also for fp16
    artifacts, whose casts live inside the graphs).
    """

    name = "onnxruntime"
    backend = "onnx"

    def __init__(
        self, bundle: Bundle | str | os.PathLike, precision: str | None = None, num_threads: int | None = None
    ):
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            raise MissingBackendError(
                'the ONNX runtime needs onnxruntime: pip install "onnxruntime>=1.20"'
            ) from e
        super().__init__(bundle, precision)
        self.num_threads = num_threads
        self._sessions: dict = {}
        self.check_artifacts()  # creates every graph's session (kept for running)

    def artifact_io(self, graph: str) -> dict[str, tuple[list[str], list]]:
        """Names and shapes from the ``InferenceSession``'s ``get_inputs()`` / ``get_outputs()``."""
        sess = self.session(graph)
        return {
            "input": ([i.name for i in sess.get_inputs()], [i.shape for i in sess.get_inputs()]),
            "output": ([o.name for o in sess.get_outputs()], [o.shape for o in sess.get_outputs()]),
        }

    def session(self, graph: str):
        """The (cached) ``InferenceSession`` of ``graph``."""
        if graph not in self._sessions:
            self._sessions[graph] = cpu_session(self.paths[graph], self.num_threads)
        return self._sessions[graph]

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        contract = self.contracts[graph]
        outs = self.session(graph).run(contract.output_names, feeds)
        return dict(zip(contract.output_names, outs, strict=True))
