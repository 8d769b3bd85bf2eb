"""One exporter interface, one plugin per backend, found through a registry.

An :class:`Exporter` turns one :class:`~edgetam_export.models.contracts.ExportModule`
(``forward(*inputs)`` in contract order, batch 1, float32 tensors) into one artifact file
(or package directory) whose graph inputs and outputs carry the contract's names, shapes
and float32 dtypes, at ``fp32`` or ``fp16`` compute precision.

Plugins register themselves with :func:`register_exporter`. The built-in plugins
(``onnx``, ``executorch``, ``coreml``) are imported lazily by :func:`get_exporter`, and a
plugin module never imports its backend package at import time, so the registry works
without any backend installed; a missing backend surfaces as :class:`MissingBackendError`
naming the pip command, at export time.
"""

from __future__ import annotations

import copy
import importlib
import os
import shutil
import time
import uuid
import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..models.contracts import Contract, ExportModule
from ..runtime.base import MissingBackendError

PRECISIONS = ("fp32", "fp16")

# name -> module that registers it on import (built-ins; third-party plugins may call
# register_exporter themselves or expose an ``edgetam_export.exporters`` entry point).
_BUILTIN_PLUGINS = {
    "onnx": "edgetam_export.exporters.onnx_exporter",
    "executorch": "edgetam_export.exporters.executorch_exporter",
    "coreml": "edgetam_export.exporters.coreml_exporter",
}
_REGISTRY: dict[str, type[Exporter]] = {}


class ExportError(RuntimeError):
    """An export that failed; the message names the graph, backend and precision."""


@dataclass
class ArtifactReport:
    """What one export produced.

    ``path`` is where the artifact was written; ``size_bytes`` counts every file of a package
    directory; ``io_dtype`` is the dtype of every graph input and output (float32 for all
    built-in plugins, at both precisions); ``notes`` holds backend facts such as delegate
    coverage or the conversion path taken.
    """

    backend: str
    graph: str
    precision: str
    path: str
    size_bytes: int
    export_seconds: float
    io_dtype: str = "float32"
    notes: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def path_size(path: str | os.PathLike) -> int:
    """Bytes of a file, or of every file below a directory."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def remove_path(path: str | os.PathLike) -> None:
    """Delete a file or a directory tree if it exists."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst`` (file or directory), replacing ``dst`` as atomically as the OS allows.

    Files are replaced with one ``os.replace``; a directory target is first renamed aside,
    then the new one renamed in, then the old one deleted.
    """
    if dst.is_dir() and not dst.is_symlink():
        aside = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dst, aside)
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(aside, dst)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(src, dst)


class _Fp32Island(nn.Module):
    """Runs a wrapped (float32) module in float32 inside an fp16 graph: casts in, casts back out."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float()).to(x.dtype)


def _fp32_norm_types() -> tuple[type[nn.Module], ...]:
    from ..models.layers import LayerNorm2d

    return (nn.LayerNorm, LayerNorm2d)


class _Fp16Compute(nn.Module):
    """fp16 compute behind a float32 boundary: ``forward`` casts float inputs to half, runs a
    half copy of the wrapped module, and casts every output back to float32, so the graph
    keeps its contract (float32 I/O) while weights and activations are fp16.

    Modules of the ``keep_fp32`` types (default: LayerNorm and LayerNorm2d) stay float32
    islands: their variance (a sum of squares over up to 256 channels) overflows fp16 on real
    activations (spec §6: "keep LN in fp32 if activations overflow"); ExecuTorch's portable
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


class Exporter(ABC):
    """Base of the backend plugins.

    Class attributes: ``name`` (registry key and bundle subfolder), ``suffix`` (artifact
    extension, e.g. ``.onnx``), ``default_precision``, ``requirements`` (``{import name:
    pip requirement}`` checked before exporting). Constructor keyword arguments are backend
    options (validated by the plugin) and are recorded in bundle manifests via :meth:`options`.
    """

    name: ClassVar[str]
    suffix: ClassVar[str]
    default_precision: ClassVar[str] = "fp32"
    requirements: ClassVar[dict[str, str]] = {}

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

    def export(
        self,
        module: ExportModule,
        path: str | os.PathLike,
        precision: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ArtifactReport:
        """Export ``module`` to ``path`` (must end with :attr:`suffix`) at ``precision``.

        The artifact is built under a temporary name next to ``path`` and renamed into place,
        so ``path`` is either the previous artifact or the complete new one. ``metadata``
        (string pairs) is embedded where the format supports it.
        """
        precision = precision or self.default_precision
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
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
                notes = self._export(module, tmp, precision, dict(metadata or {}))
            seconds = time.perf_counter() - t0
            replace_path(tmp, path)
        except MissingBackendError:
            raise
        except Exception as e:
            raise ExportError(f"{self.name} export of {contract.name!r} at {precision} failed: {e}") from e
        finally:
            remove_path(tmp)
        return ArtifactReport(
            backend=self.name,
            graph=contract.name,
            precision=precision,
            path=str(path),
            size_bytes=path_size(path),
            export_seconds=round(seconds, 3),
            io_dtype="float32",
            notes=notes,
        )

    @abstractmethod
    def _export(self, module: ExportModule, path: Path, precision: str, metadata: dict[str, str]) -> dict:
        """Write the artifact to ``path``; return notes (JSON-serialisable) for the report."""


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
