"""ONNX Runtime backend: executes a bundle's ``.onnx`` graphs, or their ``.ort`` companions, with
``InferenceSession`` on the CPU EP."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..backends import ONNX_MODEL_FORMATS, MissingBackendError
from ..bundle import Bundle, BundleError
from .loader import BundleRuntime


def cpu_session(path: str | os.PathLike, num_threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` of ``path`` on the CPU EP (``num_threads`` intra-op, quiet logs).

    A path ending in ``.ort`` is loaded as an ORT-format model (``session.load_model_format``).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if num_threads:
        so.intra_op_num_threads = int(num_threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if Path(path).suffix == ".ort":
        so.add_session_config_entry("session.load_model_format", "ORT")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxRuntime(BundleRuntime):
    """``OnnxRuntime(bundle, precision=None, num_threads=None, model_format="onnx")``.

    One ``InferenceSession`` per graph (CPUExecutionProvider), created on first use. Inputs
    and outputs are float32 numpy arrays named and shaped by the contracts (also for fp16
    artifacts, whose casts live inside the graphs). ``model_format="ort"`` runs each
    artifact's ORT-format companion (``<graph>.<precision>.ort``, the graph already optimized
    by onnxruntime's converter) instead of the ``.onnx`` file; a bundle without them raises
    :class:`~edgetam_export.bundle.BundleError` naming the graphs.
    """

    name = "onnxruntime"
    backend = "onnx"

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike,
        precision: str | None = None,
        num_threads: int | None = None,
        model_format: str = "onnx",
    ):
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            raise MissingBackendError(
                'the ONNX runtime needs onnxruntime: pip install "onnxruntime>=1.20"'
            ) from e
        if model_format not in ONNX_MODEL_FORMATS:
            raise ValueError(f"model_format must be one of {ONNX_MODEL_FORMATS}, got {model_format!r}")
        super().__init__(bundle, precision)
        self.model_format = model_format
        if model_format == "ort":
            self.paths = self._ort_paths()
        self.num_threads = num_threads
        self._sessions: dict = {}
        self.check_artifacts()  # creates every graph's session (kept for running)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.bundle.root)!r}, precision={self.precision!r}, "
            f"model_format={self.model_format!r})"
        )

    def _ort_paths(self) -> dict[str, Path]:
        """``{graph: .ort companion}``; raises :class:`BundleError` (one line) naming the graphs without one."""
        paths = {g: self.bundle.companion_path(self.backend, g, self.precision, "ort") for g in self.paths}
        missing = sorted(g for g, p in paths.items() if p is None)
        if missing:
            made_by = self.bundle.manifest.get("created_by", "an older edgetam-export")
            raise BundleError(
                f"{self.bundle.root}: the onnx {self.precision} graph(s) {missing} have no ORT-format "
                f"(.ort) file: the bundle ({made_by}) predates them; re-export it with the current "
                "edgetam-export (the manifest's `command` shows how it was made) or run the .onnx "
                "files (model_format='onnx')"
            )
        return paths

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
