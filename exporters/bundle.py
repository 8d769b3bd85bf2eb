"""Export bundles: one folder per export, self-describing and checksummed.

Layout (deterministic names)::

    <out>/
      manifest.json                      format version, contracts, preprocessing, options,
                                         weights provenance, tool versions, artifacts, sha256 of every file
      constants.npz                      host-side constants (EdgeTAM.host_constants(), float32)
      <backend>/<graph>.<precision><ext> e.g. onnx/image_encoder.fp32.onnx,
                                         coreml/prompt_decoder.fp16.mlpackage (a directory)

The bundle is assembled in a temporary folder next to ``<out>`` and renamed into place, so
``<out>`` is always either the previous bundle or the complete new one. :func:`load_bundle`
verifies every checksum and refuses missing, modified or unlisted artifact files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from ..models.checkpoint import file_sha256 as sha256_file
from ..models.contracts import Contract, ExportModule
from .base import PRECISIONS, ArtifactReport, Exporter, get_exporter, replace_path

FORMAT = "edgetam-export-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONSTANTS = "constants.npz"
TOOLS = ("torch", "executorch", "coremltools", "onnx", "onnxruntime", "onnxscript", "numpy", "edgetam-export")

# Progress callback: (backend, graph, precision, report or None when the export starts).
Progress = Callable[[str, str, str, ArtifactReport | None], None]


class BundleError(ValueError):
    """A bundle that is missing, malformed, tampered with, or does not hold what was asked for."""


def tool_versions() -> dict[str, str]:
    """Versions of the export/runtime toolchain (``"not installed"`` for missing packages)."""
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def preprocessing_info() -> dict:
    """How a video frame becomes the ``image_encoder`` input (spec §2.1)."""
    from ..testing import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD

    try:
        from ..video import RESIZE_POLICY
    except ImportError:  # pragma: no cover - video I/O needs PyAV/Pillow
        RESIZE_POLICY = "PIL bicubic (antialiased) to 1024x1024, aspect ratio not kept"
    return {
        "image_size": IMAGE_SIZE,
        "resize": RESIZE_POLICY,
        "color": "RGB",
        "scale": "1/255",
        "mean": list(PIXEL_MEAN),
        "std": list(PIXEL_STD),
        "input_layout": "NCHW float32 (1, 3, 1024, 1024): (rgb / 255 - mean) / std",
        "keep_original_size": "masks are resized back to the original H x W on the host",
    }


def _files_below(root: Path, skip: set[str]) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in skip
    )


@dataclass
class Bundle:
    """A verified bundle: manifest, contracts, host constants and artifact lookup."""

    root: Path
    manifest: dict
    contracts: dict[str, Contract]
    constants: dict[str, np.ndarray]
    options: dict
    artifacts: list[dict] = field(default_factory=list)

    @property
    def backends(self) -> list[str]:
        return sorted({a["backend"] for a in self.artifacts})

    def precisions(self, backend: str) -> list[str]:
        return sorted({a["precision"] for a in self.artifacts if a["backend"] == backend})

    def select(self, backend: str | None = None, precision: str | None = None) -> tuple[str, str]:
        """Resolve ``(backend, precision)``; either may be None if the bundle holds only one choice."""
        backends = self.backends
        if backend is None:
            if len(backends) != 1:
                raise BundleError(f"{self.root}: bundle holds backends {backends}; choose one with backend=")
            backend = backends[0]
        elif backend not in backends:
            raise BundleError(f"{self.root}: no {backend!r} artifacts in this bundle (it holds {backends})")
        precisions = self.precisions(backend)
        if precision is None:
            if len(precisions) != 1:
                raise BundleError(
                    f"{self.root}: {backend} artifacts exist at {precisions}; choose one with precision="
                )
            precision = precisions[0]
        elif precision not in precisions:
            raise BundleError(
                f"{self.root}: no {backend} artifacts at {precision!r} (available: {precisions})"
            )
        return backend, precision

    def artifact(self, backend: str, graph: str, precision: str) -> dict:
        """The manifest entry of one artifact (``path`` is relative to :attr:`root`)."""
        for a in self.artifacts:
            if (a["backend"], a["graph"], a["precision"]) == (backend, graph, precision):
                return a
        raise BundleError(f"{self.root}: no {backend} {precision} artifact for graph {graph!r}")

    def artifact_path(self, backend: str, graph: str, precision: str) -> Path:
        return self.root / self.artifact(backend, graph, precision)["path"]

    @property
    def weights(self) -> dict:
        return dict(self.manifest.get("weights", {}))


def _normalise_precisions(exporters: Sequence[Exporter], precisions: Sequence[str] | None) -> dict:
    out = {}
    for e in exporters:
        ps = list(dict.fromkeys(precisions)) if precisions else [e.default_precision]
        for p in ps:
            if p not in PRECISIONS:
                raise ValueError(f"precision must be one of {PRECISIONS}, got {p!r}")
        out[e.name] = ps
    return out


def _prepare_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise BundleError(f"refusing to replace {out}: it is not empty and holds no {MANIFEST}")


def write_bundle(
    out: str | os.PathLike,
    modules: Mapping[str, ExportModule],
    exporters: Sequence[Exporter | str],
    *,
    constants: Mapping[str, np.ndarray],
    weights: dict,
    options: dict,
    precisions: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Bundle:
    """Export every module with every exporter and write a bundle to ``out`` atomically.

    Args:
        modules: ``{graph name: ExportModule}`` (e.g. ``export_submodules(model)``).
        exporters: exporter instances or registry names.
        constants: host constants ``{name: array}``, stored as float32 in ``constants.npz``.
        weights: provenance, e.g. ``{"source": "synthetic", "salt": 0, ...}`` or
            ``{"source": "checkpoint", "path": ..., "sha256": ...}``.
        options: export options (``max_points``, slot counts, ...), exposed by runtimes.
        precisions: precisions to export for every backend; None = each backend's default
            (Core ML fp16, ExecuTorch fp32, ONNX fp32).
        progress: called before (report None) and after each artifact.

    Returns the verified :class:`Bundle` (as :func:`load_bundle` reads it back).
    """
    out = Path(out)
    exporters = [get_exporter(e) if isinstance(e, str) else e for e in exporters]
    names = [e.name for e in exporters]
    if len(set(names)) != len(names):
        raise ValueError(f"each backend may appear once, got {names}")
    if not modules:
        raise ValueError("no modules to export")
    for e in exporters:
        e.check_available()
    plan = _normalise_precisions(exporters, precisions)
    _prepare_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        arrays = {
            k: np.ascontiguousarray(np.asarray(_numpy(v), dtype=np.float32)) for k, v in constants.items()
        }
        np.savez(tmp / CONSTANTS, **arrays)
        artifacts = []
        t_start = time.perf_counter()
        for e in exporters:
            for precision in plan[e.name]:
                for graph, module in modules.items():
                    if progress:
                        progress(e.name, graph, precision, None)
                    rel = f"{e.name}/{e.artifact_name(graph, precision)}"
                    report = e.export(
                        module, tmp / rel, precision, metadata=_artifact_metadata(weights, graph)
                    )
                    entry = report.as_dict()
                    entry["path"] = rel
                    artifacts.append(entry)
                    if progress:
                        progress(e.name, graph, precision, report)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "created_by": f"edgetam-export {_package_version()}",
            "command": " ".join(sys.argv) if sys.argv else "",
            "graphs": {name: m.contract.as_dict() for name, m in modules.items()},
            "preprocessing": preprocessing_info(),
            "constants": {
                "file": CONSTANTS,
                "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
            },
            "options": _jsonable(options),
            "weights": _jsonable(weights),
            "backends": {
                e.name: {"options": e.options(), "precisions": plan[e.name], "suffix": e.suffix}
                for e in exporters
            },
            "artifacts": artifacts,
            "export_seconds_total": round(time.perf_counter() - t_start, 3),
            "tools": tool_versions(),
            "files": {rel: sha256_file(tmp / rel) for rel in _files_below(tmp, {MANIFEST})},
        }
        _write_json_atomic(tmp / MANIFEST, manifest)
        replace_path(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_bundle(out)


def _artifact_metadata(weights: dict, graph: str) -> dict[str, str]:
    src = weights.get("source", "unknown")
    if src == "synthetic":
        desc = f"synthetic (recipe {weights.get('recipe', '?')}, salt {weights.get('salt', '?')}; not a trained model)"
    elif src == "checkpoint":
        desc = f"checkpoint {Path(str(weights.get('path', '?'))).name} sha256 {weights.get('sha256', '?')}"
    else:
        desc = str(src)
    return {"weights": desc, "com.edgetam.weights": json.dumps(_jsonable(weights), sort_keys=True)}


def _package_version() -> str:
    from .. import __version__

    return __version__


def _numpy(v):
    if hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    return v


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_manifest(path: str | os.PathLike) -> dict:
    """Parse ``<bundle>/manifest.json`` (no checksum verification) with clear errors."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle not found: {root} is not a directory")
    mf = root / MANIFEST
    if not mf.is_file():
        raise BundleError(f"{root} is not a bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BundleError(f"{mf}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{mf}: not an {FORMAT} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{mf}: format_version {version!r} is not supported (this package reads <= {FORMAT_VERSION})"
        )
    for key in ("graphs", "artifacts", "files", "constants", "options", "weights"):
        if key not in manifest:
            raise BundleError(f"{mf}: missing field {key!r}")
    return manifest


def verify_files(root: str | os.PathLike, manifest: dict) -> None:
    """Raise :class:`BundleError` naming the first missing, modified or unlisted artifact file."""
    root = Path(root)
    files: dict = manifest["files"]
    for rel, digest in sorted(files.items()):
        p = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleError(f"{root}: manifest lists a path outside the bundle: {rel}")
        if not p.is_file():
            raise BundleError(f"{root}: file {rel} listed in the manifest is missing")
        actual = sha256_file(p)
        if actual != digest:
            raise BundleError(
                f"{root}: file {rel} was modified (sha256 {actual[:16]}..., manifest says {digest[:16]}...)"
            )
    backend_dirs = {a["path"].split("/", 1)[0] for a in manifest["artifacts"]}
    for d in sorted(backend_dirs):
        if not (root / d).is_dir():
            continue
        for rel in _files_below(root, set()):
            if rel.startswith(d + "/") and rel not in files:
                raise BundleError(f"{root}: file {rel} is not listed in the manifest (unexpected file)")
    for a in manifest["artifacts"]:
        if not (root / a["path"]).exists():
            raise BundleError(f"{root}: artifact {a['path']} is missing")
    if manifest["constants"]["file"] not in files:
        raise BundleError(f"{root}: {manifest['constants']['file']} has no checksum in the manifest")


def load_bundle(path: str | os.PathLike, verify: bool = True) -> Bundle:
    """Read a bundle, verify every file's sha256 (unless ``verify=False``), load contracts and constants.

    ``path`` is the bundle folder (or its ``manifest.json``).
    """
    root = Path(path)
    if root.name == MANIFEST and root.is_file():
        root = root.parent
    manifest = read_manifest(root)
    if verify:
        verify_files(root, manifest)
    contracts = {name: Contract.from_dict(d) for name, d in manifest["graphs"].items()}
    const_path = root / manifest["constants"]["file"]
    try:
        with np.load(const_path, allow_pickle=False) as z:
            constants = {k: z[k].astype(np.float32) for k in z.files}
    except (OSError, ValueError) as e:
        raise BundleError(f"{root}: cannot read {manifest['constants']['file']}: {e}") from e
    return Bundle(
        root, manifest, contracts, constants, dict(manifest["options"]), list(manifest["artifacts"])
    )


# --------------------------------------------------------------------------- model -> bundle


def weights_info(checkpoint: str | os.PathLike | None, salt: int | None, state_dict) -> dict:
    """Provenance of the weights for the manifest (checkpoint file sha256, or synthetic recipe + salt)."""
    from ..models.synthetic_weights import RECIPE, state_dict_sha256

    info: dict = {"state_dict_sha256": state_dict_sha256(state_dict)}
    if checkpoint is not None:
        p = Path(checkpoint).resolve()
        info = {"source": "checkpoint", "path": str(p), "sha256": sha256_file(p), **info}
    else:
        info = {"source": "synthetic", "recipe": RECIPE, "salt": int(salt or 0), **info}
    return info


def build_reference(checkpoint: str | os.PathLike | None = None, salt: int | None = None):
    """``(EdgeTAM model, state_dict, weights_info)`` from a checkpoint path or synthetic weights of ``salt``."""
    from ..models.checkpoint import load_checkpoint
    from ..models.edgetam import build_edgetam
    from ..models.synthetic_weights import synthetic_state_dict

    if checkpoint is not None and salt is not None:
        raise ValueError("pass either a checkpoint or a synthetic salt, not both")
    sd = load_checkpoint(checkpoint) if checkpoint is not None else synthetic_state_dict(int(salt or 0))
    model = build_edgetam(sd)
    return model, sd, weights_info(checkpoint, salt, sd)


def export_options(
    modules: Mapping[str, ExportModule], fuse: bool, max_points: int, max_cond_frames: int, max_obj_ptrs: int
) -> dict:
    """The options a runtime exposes: the export arguments plus every contract's options."""
    return {
        "fuse": fuse,
        "max_points": max_points,
        "max_cond_frames": max_cond_frames,
        "max_obj_ptrs": max_obj_ptrs,
        **{k: v for m in modules.values() for k, v in m.contract.options.items()},
    }


def export_bundle(
    out: str | os.PathLike,
    backends: Sequence[str | Exporter],
    *,
    checkpoint: str | os.PathLike | None = None,
    salt: int | None = None,
    precisions: Sequence[str] | None = None,
    max_points: int = 8,
    max_cond_frames: int = 2,
    max_obj_ptrs: int = 16,
    fuse: bool = True,
    graphs: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Bundle:
    """Build EdgeTAM (checkpoint, or synthetic weights of ``salt``; default synthetic salt 0),
    wrap the four graphs and write a bundle with ``backends`` to ``out``.

    ``graphs`` limits the export to a subset of the four graphs (for tests and debugging).
    """
    from ..models.submodules import SUBMODULE_NAMES, export_submodules

    # Cheap checks first: building the reference takes seconds.
    _prepare_target(Path(out))
    if graphs is not None:
        unknown = sorted(set(graphs) - set(SUBMODULE_NAMES))
        if unknown:
            raise ValueError(f"unknown graphs {unknown}; choose from {list(SUBMODULE_NAMES)}")
    model, _, weights = build_reference(checkpoint, salt)
    modules = export_submodules(
        model, fuse=fuse, max_points=max_points, max_cond_frames=max_cond_frames, max_obj_ptrs=max_obj_ptrs
    )
    # Options describe the whole configuration (all four graphs), even for a subset export.
    options = export_options(modules, fuse, max_points, max_cond_frames, max_obj_ptrs)
    if graphs is not None:
        modules = {k: v for k, v in modules.items() if k in graphs}
    return write_bundle(
        out,
        modules,
        list(backends),
        constants={k: v for k, v in model.host_constants().items()},
        weights=weights,
        options=options,
        precisions=precisions,
        progress=progress,
    )
