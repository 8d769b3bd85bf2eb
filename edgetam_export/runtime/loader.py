"""Open a bundle with the right runtime: :func:`runtime_from_bundle`.

Also holds :class:`BundleRuntime`, the base of the runtimes that execute bundle artifacts
(name, contracts, host constants and options all come from the bundle's manifest).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..backends import BACKENDS, MissingBackendError
from ..bundle import Bundle, BundleError, load_bundle
from .base import Runtime

# backend name in the manifest -> (module, class)
_CLASS_NAMES = {"onnx": "OnnxRuntime", "executorch": "ExecuTorchRuntime", "coreml": "CoreMLRuntime"}
RUNTIMES = {b: (f"edgetam_export.runtime.{b}_runtime", _CLASS_NAMES[b]) for b in BACKENDS}


def as_bundle(bundle: Bundle | str | os.PathLike) -> Bundle:
    """A verified :class:`Bundle` from a path (checksums checked) or the bundle itself."""
    return bundle if isinstance(bundle, Bundle) else load_bundle(bundle)


class BundleRuntime(Runtime):
    """A runtime over one backend's artifacts of a bundle.

    Attributes (besides :class:`Runtime`'s): ``bundle``, ``backend`` (manifest backend
    name, the tolerance-table key), ``precision`` (``fp32``/``fp16``), ``paths`` ({graph:
    artifact path}).
    """

    backend: str

    def __init__(self, bundle: Bundle | str | os.PathLike, precision: str | None = None):
        self.bundle = as_bundle(bundle)
        _, self.precision = self.bundle.select(self.backend, precision)
        self.contracts = dict(self.bundle.contracts)
        self.constants = dict(self.bundle.constants)
        self.options = dict(self.bundle.options)
        self.paths: dict[str, Path] = {}
        for graph in self.contracts:
            self.paths[graph] = self.bundle.artifact_path(self.backend, graph, self.precision)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.bundle.root)!r}, precision={self.precision!r})"

    # Names are compared in contract order only where the format feeds tensors by position.
    io_ordered = False

    def artifact_io(self, graph: str) -> dict[str, tuple[list[str] | None, list]]:
        """What ``graph``'s artifact really declares: ``{"input": (names, shapes), "output": (...)}``."""
        raise NotImplementedError

    def check_artifacts(self) -> None:
        """Compare each artifact's real inputs/outputs with the manifest's contract (at construction).

        Raises :class:`BundleError` in one line naming the graph, the artifact, the tensor and
        both shapes, instead of a raw runtime error at the first call.
        """
        for graph, contract in self.contracts.items():
            io = self.artifact_io(graph)
            problems = [
                p
                for kind in ("input", "output")
                for p in contract.mismatches(kind, *io[kind], ordered=self.io_ordered, source="manifest")
            ]
            if problems:
                where = getattr(self, "bundle", None)
                path = self.paths[graph]
                name = path.relative_to(where.root) if where is not None else path
                raise BundleError(
                    f"graph {graph!r}: {self.backend} artifact {name} does not match its contract in "
                    f"manifest.json: {'; '.join(problems)} (re-export the bundle)"
                )


def runtime_from_bundle(
    path: Bundle | str | os.PathLike, backend: str | None = None, precision: str | None = None, **kwargs
) -> Runtime:
    """Verify the bundle at ``path`` and return the runtime for its backend.

    ``backend`` (``onnx``, ``executorch``, ``coreml``) and ``precision`` select among several
    backends/precisions in one bundle; omitted, the host's default is used
    (:func:`~edgetam_export.bundle.default_choice`). The runtime runs whatever graphs the
    bundle holds (a partial bundle too); the tracker checks it has all four. Extra keyword
    arguments go to the runtime's constructor (e.g. ``num_threads``).
    """
    bundle = as_bundle(path)
    backend, precision = bundle.select(backend, precision)
    if backend not in RUNTIMES:
        raise BundleError(f"no runtime for backend {backend!r}; known: {sorted(RUNTIMES)}")
    module_name, class_name = RUNTIMES[backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise MissingBackendError(
                f"this installation has no {backend} runtime ({module_name} does not exist); "
                f"the bundle's {backend} artifacts can still be copied to a device"
            ) from e
        raise
    cls = getattr(module, class_name)
    return cls(bundle, precision=precision, **kwargs)
