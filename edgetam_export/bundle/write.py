"""Writing bundles: export every graph with every backend into a temporary folder, then rename it into place.

``<out>`` is therefore always either the previous bundle or the complete new one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..backends import PRECISIONS, QUANTIZED_PRECISIONS
from ..exporters.base import ArtifactReport, Exporter, ExportError, get_exporter
from ..exporters.quantization import Calibration, Recipe
from ..exporters.recipes import resolve_recipe
from ..fileio import clean_stale_temps, file_sha256, replace_path, temp_sibling, write_json_atomic
from ..models.contracts import ExportModule
from ..models.submodules import SUBMODULE_NAMES, export_options, export_submodules
from .manifest import (
    CONSTANTS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    Bundle,
    BundleError,
    files_below,
    load_bundle,
    preprocessing_info,
    tool_versions,
)
from .reference import build_reference

# Progress callback: (backend, graph, precision, report or None when the export starts).
Progress = Callable[[str, str, str, ArtifactReport | None], None]
# Calibration callback: (all four modules, host constants, export options) -> Calibration
# (edgetam_export.calibration.calibrator builds one; the bundle layer cannot run a tracker).
Calibrate = Callable[[Mapping[str, ExportModule], Mapping[str, np.ndarray], dict], Calibration]


def _normalise_precisions(exporters: Sequence[Exporter], precisions: Sequence[str] | None) -> dict:
    out = {}
    for e in exporters:
        ps = list(dict.fromkeys(precisions)) if precisions else [e.default_precision]
        for p in ps:
            if p not in PRECISIONS:
                raise ValueError(f"precision must be one of {PRECISIONS}, got {p!r}")
        out[e.name] = ps
    return out


def plan_recipes(
    exporters: Sequence[Exporter | str], precisions: Sequence[str] | None, recipe: str | None = None
) -> dict[str, dict[str, Recipe]]:
    """``{backend: {quantized precision: Recipe}}`` for the planned export (raises ``ValueError``, one
    line, for an unknown recipe name or a backend without recipes). ``recipe`` None: each
    precision's default recipe (named like the precision)."""
    qs = [p for p in dict.fromkeys(precisions or []) if p in QUANTIZED_PRECISIONS]
    if recipe is not None and not qs:
        raise ValueError(f"--recipe {recipe} applies to --precision {' or '.join(QUANTIZED_PRECISIONS)}")
    names = [e if isinstance(e, str) else e.name for e in exporters]
    return {b: {p: resolve_recipe(b, p, recipe) for p in qs} for b in names}


def _quant_entry(recipe: Recipe, calibration: Calibration | None, reports: dict[str, ArtifactReport]) -> dict:
    """The manifest's ``backends[b]["quantization"][precision]`` entry (graphs: those exported now)."""
    return {
        "recipe": recipe.name,
        "description": recipe.description,
        "graphs": {g: recipe.graphs[g].scheme for g in reports},
        "calibration": {
            "source": calibration.source if calibration is not None else "none",
            "samples": {g: len(calibration.samples.get(g, [])) if calibration else 0 for g in reports},
        },
        "accuracy": {g: r.notes["accuracy"] for g, r in reports.items() if "accuracy" in r.notes},
    }


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
    keep: Bundle | None = None,
    calibration: Calibration | None = None,
    recipe: str | None = None,
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
        keep: an existing bundle (same weights and options, see :func:`mergeable_bundle`) whose
            artifacts this export does not replace are copied into the new bundle, so exporting
            some graphs into a bundle adds them instead of dropping the others.
        calibration: per-graph input tuples for the quantized precisions (``int8``, ``mixed``).
        recipe: the recipe name for the quantized precisions (None: the one named like the
            precision); recorded with the calibration source in ``backends[b]["quantization"]``.

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
    recipes = plan_recipes(exporters, [p for ps in plan.values() for p in ps], recipe)
    if any(recipes.values()) and calibration is None:
        raise ValueError("quantized precisions need calibration data (edgetam_export.calibration.calibrator)")
    _prepare_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out.parent, name=out.name)  # left by a killed export into the same folder
    tmp = temp_sibling(out)
    tmp.mkdir()
    try:
        arrays = {
            k: np.ascontiguousarray(np.asarray(_numpy(v), dtype=np.float32)) for k, v in constants.items()
        }
        np.savez(tmp / CONSTANTS, **arrays)
        artifacts = []
        t_start = time.perf_counter()
        if keep is not None:
            planned = {(e.name, g, p) for e in exporters for p in plan[e.name] for g in modules}
            for a in keep.artifacts:
                if (a["backend"], a["graph"], a["precision"]) in planned:
                    continue
                for rel in (a["path"], *a.get("companions", {}).values()):
                    src, dst = keep.root / rel, tmp / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    if src.is_dir():
                        shutil.copytree(src, dst)
                    else:
                        shutil.copy2(src, dst)
                artifacts.append(json.loads(json.dumps(a)))  # a deep copy: finish_backend may edit it
        quantization: dict[str, dict] = {}
        for e in exporters:
            for precision in plan[e.name]:
                rcp = recipes[e.name].get(precision)
                reports: dict[str, ArtifactReport] = {}
                for graph, module in modules.items():
                    if progress:
                        progress(e.name, graph, precision, None)
                    rel = f"{e.name}/{e.artifact_name(graph, precision)}"
                    metadata = _artifact_metadata(weights, graph)
                    if rcp is None:
                        report = e.export(module, tmp / rel, precision, metadata=metadata)
                    else:
                        report = e.export(
                            module,
                            tmp / rel,
                            precision,
                            metadata={**metadata, "quant_recipe": rcp.name},
                            calibration=calibration.samples.get(graph, []),
                            quant=rcp.graphs[graph],
                        )
                    reports[graph] = report
                    entry = report.as_dict()
                    entry["path"] = rel
                    entry["companions"] = {
                        k: Path(c).relative_to(tmp).as_posix() for k, c in report.companions.items()
                    }
                    if not entry["companions"]:
                        del entry["companions"]
                    artifacts.append(entry)
                    if progress:
                        progress(e.name, graph, precision, report)
                if rcp is not None:
                    quantization.setdefault(e.name, {})[precision] = _quant_entry(rcp, calibration, reports)
        finished = _finish_backends(tmp, exporters, artifacts)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "created_by": f"edgetam-export {_package_version()}",
            "command": " ".join(sys.argv) if sys.argv else "",
            "graphs": {
                **(dict(keep.manifest["graphs"]) if keep is not None else {}),
                **{name: m.contract.as_dict() for name, m in modules.items()},
            },
            "preprocessing": preprocessing_info(),
            "constants": {
                "file": CONSTANTS,
                "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
            },
            "options": _jsonable(options),
            "weights": _jsonable(weights),
            "backends": _merged_backends(
                keep,
                {
                    e.name: {
                        "options": e.options(),
                        "precisions": plan[e.name],
                        "suffix": e.suffix,
                        **({"quantization": quantization[e.name]} if e.name in quantization else {}),
                    }
                    for e in exporters
                },
                finished,
            ),
            "artifacts": artifacts,
            "export_seconds_total": round(time.perf_counter() - t_start, 3),
            "tools": tool_versions(),
            "files": {rel: file_sha256(tmp / rel) for rel in files_below(tmp, {MANIFEST})},
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        replace_path(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_bundle(out)


def _finish_backends(root: Path, exporters: Sequence[Exporter], artifacts: list[dict]) -> dict[str, dict]:
    """Run :meth:`Exporter.finish_backend` of every backend with artifacts in the staged bundle ``root``
    (this export's exporters, or a default instance for a backend only kept from the previous
    bundle); ``{backend: keys for manifest["backends"][backend]}``. A failing hook is an
    :class:`ExportError` naming the backend."""
    by_name = {e.name: e for e in exporters}
    out = {}
    for b in sorted({a["backend"] for a in artifacts}):
        try:
            exporter = by_name.get(b) or get_exporter(b)
        except KeyError:  # a kept backend whose plugin is not installed here: nothing to run
            continue
        try:
            out[b] = exporter.finish_backend(root, [a for a in artifacts if a["backend"] == b])
        except Exception as e:
            raise ExportError(f"{b}: finishing the bundle's {b} files failed: {e}") from e
    return out


def _merged_backends(keep: Bundle | None, new: dict, finished: dict[str, dict] | None = None) -> dict:
    """The manifest's ``backends`` section: the kept bundle's, updated with this export's and with
    what each backend's :meth:`~Exporter.finish_backend` returned (``finished``)."""
    out = {b: dict(v) for b, v in (keep.manifest.get("backends", {}) if keep is not None else {}).items()}
    for b, info in new.items():
        old = out.get(b, {}).get("precisions", [])
        merged = [p for p in PRECISIONS if p in old or p in info["precisions"]]
        quant = {p: q for p, q in out.get(b, {}).get("quantization", {}).items() if p in merged}
        for p, q in info.get("quantization", {}).items():
            prev = quant.get(p)
            if prev is None or set(prev["graphs"]) <= set(q["graphs"]):
                quant[p] = q
            elif prev["recipe"] != q["recipe"]:
                raise BundleError(
                    f"the bundle's {b} {p} graphs {sorted(prev['graphs'])} were made with recipe "
                    f"{prev['recipe']!r}, not {q['recipe']!r}; export all four graphs at {p} with one recipe"
                )
            else:  # the same recipe on more graphs: add them
                quant[p] = {
                    **q,
                    "graphs": {**prev["graphs"], **q["graphs"]},
                    "calibration": {
                        "source": q["calibration"]["source"],
                        "samples": {**prev["calibration"]["samples"], **q["calibration"]["samples"]},
                    },
                    "accuracy": {**prev.get("accuracy", {}), **q.get("accuracy", {})},
                }
        out[b] = {**info, "precisions": merged, **({"quantization": quant} if quant else {})}
    for b, extra in (finished or {}).items():
        out[b] = {**out.get(b, {}), **extra}
    return out


def mergeable_bundle(
    out: Path, graphs: Sequence[str], weights: dict, options: dict, precisions: Sequence[str] | None = None
) -> Bundle | None:
    """The bundle at ``out`` to add to, or None when there is none or it is to be replaced.

    An export adds to an existing bundle when it exports a subset of the graphs, or only
    quantized ``precisions`` (``int8``/``mixed`` beside the bundle's fp32/fp16); otherwise
    (all four graphs at a float precision) it replaces the bundle. Raises :class:`BundleError`
    when ``out`` holds a bundle made from other weights or options (mixing them would make a
    bundle whose graphs disagree).
    """
    quantized_only = bool(precisions) and all(p in QUANTIZED_PRECISIONS for p in precisions)
    if (set(SUBMODULE_NAMES) <= set(graphs) and not quantized_only) or not (out / MANIFEST).is_file():
        return None
    existing = load_bundle(out)
    old_sd, new_sd = existing.weights.get("state_dict_sha256"), weights.get("state_dict_sha256")
    if old_sd != new_sd:
        raise BundleError(
            f"refusing to add {list(graphs)} to {out}: it was exported from other weights "
            f"({_weights_short(existing.weights)}, this export: {_weights_short(weights)}); "
            "export all four graphs or choose another --out"
        )
    if existing.options != _jsonable(options):
        diff = sorted(
            k
            for k in set(existing.options) | set(options)
            if existing.options.get(k) != _jsonable(options).get(k)
        )
        raise BundleError(
            f"refusing to add {list(graphs)} to {out}: its export options differ ({', '.join(diff)}); "
            "export all four graphs or choose another --out"
        )
    return existing


def _weights_short(w: dict) -> str:
    if w.get("source") == "synthetic":
        return f"synthetic salt {w.get('salt')}"
    return f"checkpoint sha256 {str(w.get('sha256', '?'))[:12]}"


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
    calibrate: Calibrate | None = None,
    recipe: str | None = None,
) -> Bundle:
    """Build EdgeTAM (checkpoint, or synthetic weights of ``salt``; default synthetic salt 0),
    wrap the four graphs and write a bundle with ``backends`` to ``out``.

    ``graphs`` limits the export to a subset of the four graphs; exported into an existing
    bundle of the same weights and options, they are added to it (its other artifacts are
    kept), and a bundle of other weights or options is refused.

    Quantized ``precisions`` (``int8``, ``mixed``) use ``recipe`` (None: the one named like the
    precision) and the calibration data ``calibrate`` captures from the modules being exported
    (:func:`edgetam_export.calibration.calibrator`); exported into an existing bundle of the
    same weights and options they are added beside its fp32/fp16 artifacts.
    """
    # Cheap checks first: building the reference takes seconds.
    _prepare_target(Path(out))
    if graphs is not None:
        unknown = sorted(set(graphs) - set(SUBMODULE_NAMES))
        if unknown:
            raise ValueError(f"unknown graphs {unknown}; choose from {list(SUBMODULE_NAMES)}")
    exporters = [get_exporter(e) if isinstance(e, str) else e for e in backends]
    recipes = plan_recipes(exporters, precisions, recipe)  # a bad recipe name fails before any work
    if any(recipes.values()) and calibrate is None:
        raise ValueError("quantized precisions need calibrate= (edgetam_export.calibration.calibrator())")
    model, _, weights = build_reference(checkpoint, salt)
    modules = export_submodules(
        model, fuse=fuse, max_points=max_points, max_cond_frames=max_cond_frames, max_obj_ptrs=max_obj_ptrs
    )
    # Options describe the whole configuration (all four graphs), even for a subset export.
    options = export_options(modules, fuse, max_points, max_cond_frames, max_obj_ptrs)
    constants = {k: v for k, v in model.host_constants().items()}
    # Cheap merge check before calibrating (the reference run takes seconds).
    keep = mergeable_bundle(Path(out), list(graphs or SUBMODULE_NAMES), weights, options, precisions)
    calibration = calibrate(modules, constants, options) if any(recipes.values()) else None
    if graphs is not None:
        modules = {k: v for k, v in modules.items() if k in graphs}
    return write_bundle(
        out,
        modules,
        exporters,
        constants=constants,
        weights=weights,
        options=options,
        precisions=precisions,
        progress=progress,
        keep=keep,
        calibration=calibration,
        recipe=recipe,
    )
