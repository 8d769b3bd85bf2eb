"""One exporter interface, one plugin per backend, found through a registry.

An :class:`Exporter` turns one :class:`~edgetam_export.models.contracts.ExportModule`
(``forward(*inputs)`` in contract order, batch 1, float32 tensors) into one artifact file
(or package directory) whose graph inputs and outputs carry the contract's names, shapes
and float32 dtypes, at ``fp32`` or ``fp16`` compute precision, or quantized (``int8``,
``mixed``) following a :class:`~edgetam_export.exporters.quantization.Recipe`'s per-graph
:class:`~edgetam_export.exporters.quantization.GraphQuant` with calibration inputs.

Plugins register themselves with :func:`register_exporter`. The built-in plugins
(``onnx``, ``executorch``, ``coreml``) are imported lazily by :func:`get_exporter`, and a
plugin module never imports its backend package at import time, so the registry works
without any backend installed; a missing backend surfaces as :class:`MissingBackendError`
naming the pip command, at export time.
"""

from __future__ import annotations

import importlib
import os
import time
import uuid
import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from ..backends import BACKENDS, PRECISIONS, QUANTIZED_PRECISIONS, MissingBackendError
from ..fileio import path_size, remove_path, replace_path
from ..models.contracts import Contract, ExportModule
from .quantization import GraphQuant, Recipe

# name -> module that registers it on import (built-ins; third-party plugins may call
# register_exporter themselves or expose an ``edgetam_export.exporters`` entry point).
_BUILTIN_PLUGINS = {name: f"edgetam_export.exporters.{name}_exporter" for name in BACKENDS}
_REGISTRY: dict[str, type[Exporter]] = {}
# Graphs that hold attention (two-way transformer, spatial perceiver, memory attention): their
# artifacts' notes record the plugin's ``attention_form``.
ATTENTION_GRAPHS = ("prompt_decoder", "memory_encoder", "memory_attention")


class ExportError(RuntimeError):
    """An export that failed; the message names the graph, backend and precision."""


@dataclass
class ArtifactReport:
    """What one export produced.

    ``path`` is where the artifact was written; ``size_bytes`` counts every file of a package
    directory; ``io_dtype`` is the dtype of every graph input and output (float32 for all
    built-in plugins, at both precisions); ``notes`` holds backend facts such as delegate
    coverage or the conversion path taken; ``companions`` is ``{key: path}`` of the files the
    plugin writes beside the artifact (:attr:`Exporter.companions`; e.g. ONNX's ``{"ort": ...}``).
    """

    backend: str
    graph: str
    precision: str
    path: str
    size_bytes: int
    export_seconds: float
    io_dtype: str = "float32"
    notes: dict = field(default_factory=dict)
    companions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


class Exporter(ABC):
    """Base of the backend plugins.

    Class attributes: ``name`` (registry key and bundle subfolder), ``suffix`` (artifact
    extension, e.g. ``.onnx``), ``default_precision``, ``requirements`` (``{import name:
    pip requirement}`` checked before exporting), ``recipes`` (``{name: Recipe}``, the
    quantization recipes; empty for float-only plugins), ``attention_form`` (how its artifacts
    compute attention, and the measurement behind the choice), ``companions`` (``{key: suffix}``,
    files derived from each artifact and written beside it, e.g. ONNX's ``{"ort": ".ort"}``;
    the artifact stays the file of record). Constructor keyword arguments are backend options
    (validated by the plugin) and are recorded in bundle manifests via :meth:`options`.
    """

    name: ClassVar[str]
    suffix: ClassVar[str]
    default_precision: ClassVar[str] = "fp32"
    requirements: ClassVar[dict[str, str]] = {}
    recipes: ClassVar[dict[str, Recipe]] = {}
    # How the plugin's artifacts compute attention and why (measured), recorded in the notes of
    # every artifact of :data:`ATTENTION_GRAPHS`; empty = not recorded.
    attention_form: ClassVar[str] = ""
    companions: ClassVar[dict[str, str]] = {}

    def __init__(self, **options):
        if options:
            raise TypeError(f"{type(self).__name__} takes no options, got {sorted(options)}")

    def options(self) -> dict:
        """Backend options as JSON-serialisable values (recorded in the manifest)."""
        return {}

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`MissingBackendError` (with the pip command) if a backend package is missing."""
        missing = []
        for module_name, requirement in cls.requirements.items():
            try:
                importlib.import_module(module_name)
            except ImportError:
                missing.append(requirement)
        if missing:
            raise MissingBackendError(
                f"the {cls.name!r} exporter needs {', '.join(missing)}: pip install "
                + " ".join(f'"{r}"' for r in missing)
            )

    @classmethod
    def is_available(cls) -> bool:
        try:
            cls.check_available()
        except MissingBackendError:
            return False
        return True

    def artifact_name(self, graph: str, precision: str) -> str:
        """Deterministic file name of one artifact: ``<graph>.<precision><suffix>``."""
        return f"{graph}.{precision}{self.suffix}"

    def companion_path(self, path: str | os.PathLike, key: str) -> Path:
        """Where companion ``key`` of the artifact at ``path`` lives: ``path`` with :attr:`suffix`
        replaced by ``companions[key]`` (``image_encoder.fp32.onnx`` -> ``image_encoder.fp32.ort``)."""
        path = Path(path)
        return path.with_name(path.name[: -len(self.suffix)] + self.companions[key])

    def export(
        self,
        module: ExportModule,
        path: str | os.PathLike,
        precision: str | None = None,
        metadata: dict[str, str] | None = None,
        *,
        calibration: list[tuple] | None = None,
        quant: GraphQuant | None = None,
    ) -> ArtifactReport:
        """Export ``module`` to ``path`` (must end with :attr:`suffix`) at ``precision``.

        The artifact is built under a temporary name next to ``path`` and renamed into place,
        so ``path`` is either the previous artifact or the complete new one. So are the
        plugin's :attr:`companions`: ``_export`` writes each to :meth:`companion_path` of the
        temporary path it gets, and they are renamed next to ``path`` (before the artifact)
        only once all exist; if ``_export`` fails or one is missing, nothing is renamed and
        every temporary file is removed. ``metadata`` (string pairs) is embedded where the
        format supports it.

        Quantized precisions (``int8``, ``mixed``) need ``quant`` (this graph's
        :class:`GraphQuant` from the recipe) and ``calibration`` (this graph's input tuples in
        contract order, float32, batch 1; may be empty for weight-only schemes); both go to
        :meth:`_export`. Float precisions call ``_export`` without them, so float-only plugins
        stay valid.
        """
        precision = precision or self.default_precision
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        quantized = precision in QUANTIZED_PRECISIONS
        if quantized and quant is None:
            raise ValueError(f"{precision} export needs quant= (the graph's GraphQuant from a recipe)")
        if not quantized and (quant is not None or calibration):
            raise ValueError(f"quant=/calibration= apply to {QUANTIZED_PRECISIONS}, not {precision}")
        contract = getattr(module, "contract", None)
        if not isinstance(contract, Contract):
            raise TypeError(f"expected an ExportModule with a .contract, got {type(module).__name__}")
        path = Path(path)
        if not path.name.endswith(self.suffix):
            raise ValueError(f"{self.name} artifacts must end with {self.suffix!r}, got {path}")
        self.check_available()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name[: -len(self.suffix)]}.tmp-{uuid.uuid4().hex[:8]}{self.suffix}"
        module = module.eval()
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # torch.export / coremltools / executorch emit deprecation noise on every call.
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                if quantized:
                    notes = self._export(
                        module,
                        tmp,
                        precision,
                        dict(metadata or {}),
                        calibration=list(calibration or []),
                        quant=quant,
                    )
                else:
                    notes = self._export(module, tmp, precision, dict(metadata or {}))
            seconds = time.perf_counter() - t0
            if self.attention_form and contract.name in ATTENTION_GRAPHS:
                notes.setdefault("attention", self.attention_form)
            missing = [k for k in self.companions if not self.companion_path(tmp, k).is_file()]
            if missing:
                raise RuntimeError(f"the plugin wrote no {', '.join(missing)} companion file")
            for key in self.companions:
                replace_path(self.companion_path(tmp, key), self.companion_path(path, key))
            replace_path(tmp, path)
        except MissingBackendError:
            raise
        except Exception as e:
            raise ExportError(f"{self.name} export of {contract.name!r} at {precision} failed: {e}") from e
        finally:
            remove_path(tmp)
            for key in self.companions:
                remove_path(self.companion_path(tmp, key))
        return ArtifactReport(
            backend=self.name,
            graph=contract.name,
            precision=precision,
            path=str(path),
            size_bytes=path_size(path),
            export_seconds=round(seconds, 3),
            io_dtype="float32",
            notes=notes,
            companions={k: str(self.companion_path(path, k)) for k in self.companions},
        )

    @abstractmethod
    def _export(
        self,
        module: ExportModule,
        path: Path,
        precision: str,
        metadata: dict[str, str],
        *,
        calibration: list[tuple] | None = None,
        quant: GraphQuant | None = None,
    ) -> dict:
        """Write the artifact to ``path``; return notes (JSON-serialisable) for the report.

        For quantized precisions it is called with keyword arguments ``calibration`` and
        ``quant`` (see :meth:`export`); its notes then include ``"quant_scheme"``, what was kept
        float, and may include ``"accuracy"`` (``{"cosine", "rel_max_abs"}`` of the worst output
        against the float32 module on a calibration sample), copied into the manifest.
        Plugins with :attr:`companions` also write each to ``self.companion_path(path, key)``.
        """

    def finish_backend(self, root: Path, artifacts: list[dict]) -> dict:
        """Hook run by the bundle writer once per bundle, after every artifact of this backend is in place.

        ``root`` is the bundle folder being staged; ``artifacts`` are this backend's manifest
        entries in it (``path`` and ``companions`` relative to ``root``): the ones exported now
        and those kept from the previous bundle. The hook may write bundle-level files under
        ``root / self.name`` (they are checksummed like every file) and may update the entries in
        place (e.g. add a companion a kept artifact lacks). It returns keys merged into the
        manifest's ``backends[self.name]`` (e.g. the paths of the files it wrote). Default: nothing.
        """
        return {}


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: make ``cls`` available as ``get_exporter(cls.name)``."""
    if not (isinstance(cls, type) and issubclass(cls, Exporter)):
        raise TypeError(f"{cls!r} is not an Exporter subclass")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"exporter name {cls.name!r} is already registered by {existing.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_entry_points() -> None:
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="edgetam_export.exporters"):
            if ep.name not in _REGISTRY:
                ep.load()
    except Exception:
        pass


def _load(name: str) -> None:
    if name in _REGISTRY:
        return
    if name in _BUILTIN_PLUGINS:
        importlib.import_module(_BUILTIN_PLUGINS[name])
    else:
        _load_entry_points()


def available_exporters(installed_only: bool = False) -> list[str]:
    """Names of every registered exporter (with ``installed_only``, only those whose backend imports)."""
    for name in _BUILTIN_PLUGINS:
        _load(name)
    _load_entry_points()
    names = sorted(_REGISTRY)
    if installed_only:
        names = [n for n in names if _REGISTRY[n].is_available()]
    return names


def get_exporter(name: str, **options) -> Exporter:
    """Instantiate the exporter registered as ``name`` with backend ``options``."""
    _load(name)
    if name not in _REGISTRY:
        raise KeyError(f"unknown exporter {name!r}; available: {available_exporters()}")
    return _REGISTRY[name](**options)


def exporter_class(name: str) -> type[Exporter]:
    """The class registered as ``name`` (loads built-in plugins on demand)."""
    _load(name)
    if name not in _REGISTRY:
        raise KeyError(f"unknown exporter {name!r}; available: {available_exporters()}")
    return _REGISTRY[name]
