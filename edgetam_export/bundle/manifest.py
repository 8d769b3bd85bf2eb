"""The bundle format: manifest fields, reading a bundle back, and verifying every file's checksum.

Layout (deterministic names)::

    <out>/
      manifest.json                      format version, contracts, preprocessing, options,
                                         weights provenance, tool versions, artifacts, sha256 of every file
      constants.npz                      host-side constants (EdgeTAM.host_constants(), float32)
      <backend>/<graph>.<precision><ext> e.g. onnx/image_encoder.fp32.onnx,
                                         coreml/prompt_decoder.fp16.mlpackage (a directory)
      <backend>/<graph>.<precision><cext> companions derived from an artifact (its manifest entry's
                                         "companions"), e.g. onnx/image_encoder.fp32.ort
      <backend>/...                      bundle-level files of a backend (named in
                                         manifest["backends"][backend]), e.g.
                                         onnx/required_operators.config

:func:`load_bundle` verifies every checksum and refuses missing, modified or unlisted
artifact files. Writing lives in :mod:`edgetam_export.bundle.write`.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from ..backends import QUANTIZED_PRECISIONS
from ..fileio import file_sha256
from ..models.constants import GRAPH_NAMES, IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD
from ..models.contracts import Contract

FORMAT = "edgetam-export-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONSTANTS = "constants.npz"
log = logging.getLogger("edgetam_export.bundle")
TOOLS = ("torch", "executorch", "coremltools", "onnx", "onnxruntime", "onnxscript", "numpy", "edgetam-export")


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
    """How a video frame becomes the ``image_encoder`` input (docs/ARCHITECTURE.md, preprocessing)."""
    from ..preprocessing import RESIZE_POLICY

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


def files_below(root: Path, skip: set[str]) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in skip
    )


# The documented default when a bundle holds several backends/precisions and none is chosen:
# the backend this host runs natively first (Core ML on macOS; ExecuTorch then ONNX elsewhere,
# Core ML last because off Apple it only runs through the slow MIL evaluator); fp32 before
# fp16 on CPU hosts, fp16 first for Core ML on macOS (the Neural Engine computes in fp16).
# Quantized precisions (int8, then mixed) are never the default while a float one exists:
# they trade accuracy for size/speed, so a user asks for them (precision="int8").
_BACKEND_ORDER = {"Darwin": ("coreml", "executorch", "onnx")}
_BACKEND_ORDER_OTHER = ("executorch", "onnx", "coreml")


def default_choice(available: dict[str, list[str]], system: str | None = None) -> tuple[str, str]:
    """The default ``(backend, precision)`` among ``available`` ({backend: [precisions]}) on this host.

    ``system`` is ``platform.system()`` (default: this host). This is the one place the policy
    lives; ``Bundle.select``, the runtimes, the tracker and every command use it.
    """
    system = platform.system() if system is None else system
    order = _BACKEND_ORDER.get(system, _BACKEND_ORDER_OTHER)
    backends = [b for b in order if b in available] + sorted(b for b in available if b not in order)
    if not backends:
        raise BundleError("no backend to choose from")
    backend = backends[0]
    prec_order = ("fp16", "fp32") if (system == "Darwin" and backend == "coreml") else ("fp32", "fp16")
    precs = available[backend]
    ranked = [p for p in (*prec_order, *QUANTIZED_PRECISIONS) if p in precs]
    ranked += sorted(p for p in precs if p not in ranked)
    if not ranked:
        raise BundleError(f"no precision to choose from for {backend}")
    return backend, ranked[0]


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
        """Resolve ``(backend, precision)``; what is left None is picked by :func:`default_choice`.

        The pick is logged (logger ``edgetam_export.bundle``) when the bundle offered a choice.
        """
        backends = self.backends
        if not backends:
            raise BundleError(f"{self.root}: the bundle holds no artifacts")
        if backend is not None and backend not in backends:
            raise BundleError(f"{self.root}: no {backend!r} artifacts in this bundle (it holds {backends})")
        if backend is None or precision is None:
            available = {b: self.precisions(b) for b in ([backend] if backend else backends)}
            if precision is not None:
                available = {b: p for b, p in available.items() if precision in p} or available
            picked = default_choice(available)
            if len(available) > 1 or len(next(iter(available.values()))) > 1:
                log.info(
                    "%s: picked %s %s (default for this host; choose with backend=/precision=)",
                    self.root,
                    *picked,
                )
            backend = picked[0] if backend is None else backend
            precision = picked[1] if precision is None else precision
        precisions = self.precisions(backend)
        if precision not in precisions:
            raise BundleError(
                f"{self.root}: no {backend} artifacts at {precision!r} (available: {precisions})"
            )
        return backend, precision

    def require_graphs(self, backend: str, precision: str, graphs: tuple[str, ...] = GRAPH_NAMES) -> None:
        """Raise :class:`BundleError` naming each of ``graphs`` missing at ``backend`` ``precision``.

        :func:`load_bundle` and the runtimes open partial bundles (``inspect`` and ``verify``
        work on them, ``export --graph`` adds to them); the tracker (all four graphs) and
        ``segment`` (image encoder + prompt decoder) call this first.
        """
        have = {a["graph"] for a in self.artifacts if (a["backend"], a["precision"]) == (backend, precision)}
        missing = [g for g in graphs if g not in have or g not in self.contracts]
        if missing:
            raise BundleError(
                f"{self.root}: the bundle lacks graph(s) {missing} for {backend} {precision} "
                f"(it holds {sorted(have)}); export them with `edgetam-export export --graph NAME "
                f"--out {self.root}` (same weights and options) or export all four"
            )

    def artifact(self, backend: str, graph: str, precision: str) -> dict:
        """The manifest entry of one artifact (``path`` is relative to :attr:`root`)."""
        for a in self.artifacts:
            if (a["backend"], a["graph"], a["precision"]) == (backend, graph, precision):
                return a
        raise BundleError(f"{self.root}: no {backend} {precision} artifact for graph {graph!r}")

    def artifact_path(self, backend: str, graph: str, precision: str) -> Path:
        return self.root / self.artifact(backend, graph, precision)["path"]

    def companion_path(self, backend: str, graph: str, precision: str, key: str) -> Path | None:
        """Companion ``key`` of one artifact (e.g. ``"ort"``: the ONNX artifact's ``.ort`` file), or
        None when the artifact has none (bundles written before the plugin made it)."""
        rel = self.artifact(backend, graph, precision).get("companions", {}).get(key)
        return None if rel is None else self.root / rel

    def quantization(self, backend: str, precision: str) -> dict:
        """The manifest's ``backends[backend]["quantization"][precision]`` entry (recipe, graphs'
        schemes, calibration, accuracy); ``{}`` for a float precision or a missing backend."""
        return self.manifest.get("backends", {}).get(backend, {}).get("quantization", {}).get(precision, {})

    def artifact_bytes(self, backend: str, precision: str, graphs: list[str] | None = None) -> int | None:
        """Summed ``size_bytes`` of ``backend`` ``precision``'s artifacts (only ``graphs`` if given);
        None when there are none or one of ``graphs`` is missing (the sums would not compare)."""
        sizes = {
            a["graph"]: a["size_bytes"]
            for a in self.artifacts
            if (a["backend"], a["precision"]) == (backend, precision)
        }
        graphs = list(sizes) if graphs is None else list(graphs)
        if not graphs or any(g not in sizes for g in graphs):
            return None
        return sum(sizes[g] for g in graphs)

    @property
    def weights(self) -> dict:
        return dict(self.manifest.get("weights", {}))

    @property
    def digest(self) -> str:
        """The bundle's identity: :func:`bundle_digest` of its manifest.json."""
        return bundle_digest(self.root)

    def check_digest(self, expected: str | None) -> None:
        """Raise :class:`BundleError` unless the bundle's digest is ``expected`` (None: no check)."""
        if expected is None:
            return
        want = expected if expected.startswith("sha256:") else f"sha256:{expected}"
        if self.digest != want:
            raise BundleError(f"{self.root}: bundle digest is {self.digest}, expected {want}")


def bundle_digest(root: str | os.PathLike) -> str:
    """``sha256:<hex>`` over the bytes of ``<root>/manifest.json``.

    The manifest records every file's sha256, so this one value pins every artifact, the
    constants, the contracts and the weights provenance: ``export`` and ``inspect`` print it,
    ``track``/``verify --expect-digest`` and ``Tracker.from_bundle(expect_digest=)`` check it.
    """
    p = Path(root)
    if p.name != MANIFEST:
        p = p / MANIFEST
    return f"sha256:{file_sha256(p)}"


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
        actual = file_sha256(p)
        if actual != digest:
            raise BundleError(
                f"{root}: file {rel} was modified (sha256 {actual[:16]}..., manifest says {digest[:16]}...)"
            )
    backend_dirs = {a["path"].split("/", 1)[0] for a in manifest["artifacts"]}
    for d in sorted(backend_dirs):
        if not (root / d).is_dir():
            continue
        for rel in files_below(root, set()):
            if rel.startswith(d + "/") and rel not in files:
                raise BundleError(f"{root}: file {rel} is not listed in the manifest (unexpected file)")
    for a in manifest["artifacts"]:
        for rel in (a["path"], *a.get("companions", {}).values()):
            if not (root / rel).exists():
                raise BundleError(f"{root}: artifact {rel} is missing")
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
