"""Core ML backend: real Core ML on macOS, the MIL evaluator everywhere else.

``CoreMLRuntime`` executes the four ``.mlpackage`` ML Programs of a bundle by contract. The
execution engine is chosen automatically and exposed as :attr:`CoreMLRuntime.engine`:

* ``"coreml"`` -- ``coremltools.models.MLModel(...).predict`` (Apple's Core ML framework;
  macOS only, with the bundle's ``compute_units`` unless overridden);
* ``"mil-evaluator"`` -- :class:`~edgetam_export.coreml_mil.evaluator.MILEvaluator`
  interprets the saved program op by op with numpy/torch, modelling fp16 storage between ops.
  It checks the *program* (conversion correctness, fp16 rounding and overflow), not Apple's
  kernels or Neural Engine placement -- see docs/COREML_EVALUATOR.md.

:attr:`name` names the engine (``"coreml"`` vs ``"coreml-mil-evaluator"``) so every report that
prints the runtime's name says which one ran; :attr:`backend` stays ``"coreml"`` (the
tolerance-table key).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..backends import COREML_COMPUTE_UNITS, MissingBackendError
from ..bundle import Bundle
from ..models.contracts import Contract
from .loader import BundleRuntime

ENGINES = ("coreml", "mil-evaluator")


def coreml_framework_available() -> bool:
    """True when Core ML ``predict`` can run here (macOS with coremltools' native extension)."""
    if sys.platform != "darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError:
        return False
    return True


def default_engine() -> str:
    """``"coreml"`` where the Core ML framework is usable, else ``"mil-evaluator"``."""
    return "coreml" if coreml_framework_available() else "mil-evaluator"


class CoreMLRuntime(BundleRuntime):
    """``CoreMLRuntime(source, precision=None, *, contracts=None, constants=None, options=None,
    engine="auto", compute_units=None, num_threads=None, track_ranges=False)``.

    Args:
        source: a bundle (:class:`~edgetam_export.bundle.Bundle`, bundle directory or
            its ``manifest.json``), or a mapping ``{graph name: .mlpackage path}``; the latter
            needs ``contracts`` (``{graph: Contract or contract dict}``) and may take
            ``constants``/``options`` (default empty) -- for testing without a bundle.
        precision: ``"fp32"``/``"fp16"`` when the bundle holds both; with a mapping it is only
            recorded (default: what the programs declare).
        engine: ``"auto"`` (Core ML on macOS, else the MIL evaluator), ``"coreml"`` or
            ``"mil-evaluator"`` (forcing the evaluator on a Mac is useful to compare the two).
        compute_units: Core ML engine only: ``all``/``cpu_only``/``cpu_and_gpu``/``cpu_and_ne``
            (default: the bundle's Core ML exporter option, else ``all``).
        num_threads: MIL evaluator only: torch threads during evaluation.
        track_ranges: MIL evaluator only: record every intermediate's max |value| (fp16 headroom).

    Attributes: ``engine``, ``name``, ``backend`` (``"coreml"``), ``precision``, ``paths``,
    ``compute_units``, ``reports`` (``{graph: EvalReport}`` of the latest evaluator run).

    Inputs and outputs are float32 numpy arrays named and shaped by the contracts; feeds are
    cast to each program's declared input dtype and outputs back to float32.
    """

    name = "coreml"
    backend = "coreml"

    def __init__(
        self,
        source: Bundle | str | os.PathLike | Mapping[str, str | os.PathLike],
        precision: str | None = None,
        *,
        contracts: Mapping[str, Contract | dict] | None = None,
        constants: Mapping[str, np.ndarray] | None = None,
        options: Mapping | None = None,
        engine: str = "auto",
        compute_units: str | None = None,
        num_threads: int | None = None,
        track_ranges: bool = False,
    ):
        if isinstance(source, Mapping):
            if contracts is None:
                raise ValueError("CoreMLRuntime from a {graph: path} mapping needs contracts=")
            self.bundle = None
            self.contracts = {
                g: c if isinstance(c, Contract) else Contract.from_dict(c) for g, c in contracts.items()
            }
            missing = sorted(set(self.contracts) - set(source))
            if missing:
                raise ValueError(f"no .mlpackage given for graphs {missing}")
            self.paths = {g: Path(source[g]) for g in self.contracts}
            self.constants = {k: np.asarray(v, dtype=np.float32) for k, v in (constants or {}).items()}
            self.options = dict(options or {})
            self.precision = precision
            bundle_units = None
        else:
            if isinstance(source, (str, os.PathLike)) and Path(source).name == "manifest.json":
                source = Path(source).parent
            super().__init__(source, precision)
            bundle_units = self.bundle.manifest.get("backends", {}).get("coreml", {}).get("options", {})
            bundle_units = bundle_units.get("compute_units")
        for g, p in self.paths.items():
            if not Path(p).exists():
                raise FileNotFoundError(f"{g}: {p} does not exist")

        if engine == "auto":
            engine = default_engine()
        if engine not in ENGINES:
            raise ValueError(f"engine must be 'auto' or one of {ENGINES}, got {engine!r}")
        if engine == "coreml" and not coreml_framework_available():
            raise MissingBackendError(
                "Core ML prediction needs macOS with coremltools' native extension; "
                "use engine='mil-evaluator' (the default off macOS) to evaluate the programs here"
            )
        self.engine = engine
        self.name = "coreml" if engine == "coreml" else "coreml-mil-evaluator"
        self.compute_units = compute_units or bundle_units or "all"
        if self.compute_units not in COREML_COMPUTE_UNITS:
            raise ValueError(
                f"compute_units must be one of {sorted(COREML_COMPUTE_UNITS)}, got {self.compute_units!r}"
            )
        self.num_threads = num_threads
        self.track_ranges = track_ranges
        self._models: dict = {}
        self.reports: dict = {}
        self.check_artifacts()

    def artifact_io(self, graph: str) -> dict[str, tuple[list[str], list]]:
        """Names and shapes from the package's model spec (``coremltools.utils.load_spec``)."""
        import coremltools as ct

        desc = ct.utils.load_spec(str(self.paths[graph])).description
        return {
            kind: ([f.name for f in feats], [tuple(f.type.multiArrayType.shape) or None for f in feats])
            for kind, feats in (("input", desc.input), ("output", desc.output))
        }

    # ------------------------------------------------------------------ loading
    def model(self, graph: str):
        """The cached executor of ``graph``: an ``MLModel`` (engine coreml) or a ``MILEvaluator``."""
        if graph not in self._models:
            path = self.paths[graph]
            contract = self.contracts[graph]
            if self.engine == "coreml":
                import coremltools as ct

                units = getattr(ct.ComputeUnit, COREML_COMPUTE_UNITS[self.compute_units])
                m = ct.models.MLModel(str(path), compute_units=units)
                spec = m.get_spec()
                in_names = [f.name for f in spec.description.input]
                out_names = [f.name for f in spec.description.output]
            else:
                from ..coreml_mil.evaluator import MILEvaluator

                m = MILEvaluator(path, track_ranges=self.track_ranges, num_threads=self.num_threads)
                in_names, out_names = list(m.input_specs), list(m.output_specs)
                if self.precision is None:
                    self.precision = m.precision
            if sorted(in_names) != sorted(contract.input_names):
                raise ValueError(f"{path}: inputs {in_names} != contract {contract.input_names}")
            missing = [n for n in contract.output_names if n not in out_names]
            if missing:
                raise ValueError(f"{path}: outputs {out_names} lack contract outputs {missing}")
            self._models[graph] = m
        return self._models[graph]

    def _input_dtypes(self, graph: str) -> dict[str, np.dtype]:
        m = self.model(graph)
        if self.engine == "mil-evaluator":
            return {n: d for n, (_, d) in m.input_specs.items()}
        from coremltools.proto import FeatureTypes_pb2

        arr = FeatureTypes_pb2.ArrayFeatureType
        table = {
            arr.FLOAT16: np.float16,
            arr.FLOAT32: np.float32,
            arr.DOUBLE: np.float64,
            arr.INT32: np.int32,
        }
        return {
            f.name: np.dtype(table[f.type.multiArrayType.dataType]) for f in m.get_spec().description.input
        }

    # ------------------------------------------------------------------ run
    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        m = self.model(graph)
        dtypes = self._input_dtypes(graph)
        feeds = {n: np.ascontiguousarray(v.astype(dtypes[n], copy=False)) for n, v in feeds.items()}
        if self.engine == "coreml":
            outs = m.predict(feeds)
        else:
            outs = m.run(feeds)
            self.reports[graph] = m.last_report
        return {n: np.asarray(outs[n], dtype=np.float32) for n in self.contracts[graph].output_names}

    def describe(self) -> dict:
        """What executes the graphs, for reports: engine, precision, compute units, artifact paths."""
        return {
            "runtime": self.name,
            "backend": self.backend,
            "engine": self.engine,
            "precision": self.precision,
            "compute_units": self.compute_units if self.engine == "coreml" else None,
            "paths": {g: str(p) for g, p in self.paths.items()},
        }

    def __repr__(self) -> str:
        root = str(self.bundle.root) if self.bundle is not None else "{graph: path}"
        return f"CoreMLRuntime({root!r}, precision={self.precision!r}, engine={self.engine!r})"
