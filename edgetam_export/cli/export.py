"""``edgetam-export export | verify | inspect``: write, check and describe export bundles.

Registers its commands on :data:`edgetam_export.cli.app.app`. Heavy packages (torch, backends)
are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..fileio import write_json_atomic
from .app import app
from .options import Backend, ComputeUnits, OnnxFormat, Precision, backend_label, consoles, user_errors


class Target(str, Enum):
    iOS17 = "iOS17"
    iOS18 = "iOS18"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _short_op(name: str) -> str:
    """``aten.expand_copy.default`` -> ``expand_copy``; ``aten.eq.Scalar`` -> ``eq.Scalar``."""
    for prefix in ("aten.", "dim_order_ops."):
        name = name.removeprefix(prefix)
    return name.removesuffix(".default")


def _notes_summary(a: dict) -> str:
    n = a.get("notes", {})
    if a["backend"] == "executorch":
        outside = n.get("non_delegated", {})
        ops = ", ".join(f"{_short_op(k)}x{v}" for k, v in outside.items())
        return (
            f"XNNPACK {100 * n.get('coverage', 0):.1f}% of ops "
            f"({n.get('delegated_ops', '?')} in, {n.get('non_delegated_ops', '?')} out{': ' + ops if ops else ''})"
        )
    if a["backend"] == "coreml":
        w = ", ".join(f"{k}x{v}" for k, v in n.get("weights_dtype", {}).items())
        return f"{n.get('conversion', '?')}, {n.get('target', '?')}, {n.get('mil_ops', '?')} MIL ops, weights {w}"
    if a["backend"] == "onnx":
        from ..exporters.onnx_mobile import mobile_summary

        quant = f", {n['quant_scheme']}" if "quant_scheme" in n else ""
        ort = ""
        if isinstance(n.get("ort"), dict):
            ort = f", .ort {_size(n['ort']['bytes'])}"
            if n["ort"].get("fp32_casts_inserted"):  # an fp16 graph that ORT cast to float32 on this host
                dt = n["ort"]["compute_dtypes"]
                ort += f" ({dt.get('float32', 0)}/{sum(dt.values())} nodes in fp32)"
        mobile = mobile_summary(n)
        return (
            f"opset {n.get('opset', '?')}, {n.get('nodes', '?')} nodes, weights {n.get('weights_dtype', '?')}"
            + quant
            + ort
            + (f"; {mobile}" if mobile else "")
        )
    return ""


def artifacts_table(artifacts: list[dict], title: str = "artifacts") -> Table:
    t = Table(title=title)
    for col, just in (
        ("backend", "left"),
        ("graph", "left"),
        ("precision", "left"),
        ("size", "right"),
        ("export s", "right"),
        ("notes / delegate coverage", "left"),
    ):
        t.add_column(col, justify=just)
    for a in artifacts:
        t.add_row(
            a["backend"],
            a["graph"],
            a["precision"],
            _size(a["size_bytes"]),
            f"{a['export_seconds']:.1f}",
            Text(_notes_summary(a)),
        )
    return t


@app.command("export")
@user_errors
def export_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write (replaced atomically)."),
    backend: list[Backend] = typer.Option(
        None, "--backend", "-b", help="Backend to export (repeatable). Default: all three."
    ),
    precision: list[Precision] = typer.Option(
        None,
        "--precision",
        "-p",
        help="Precision (repeatable): fp32, fp16, or quantized int8 / mixed (per-graph recipe). "
        "Default per backend: coreml fp16, executorch fp32, onnx fp32. Quantized precisions "
        "exported into an existing bundle are added beside its float artifacts.",
    ),
    calibration: Path = typer.Option(
        None,
        "--calibration",
        metavar="VIDEO",
        help="int8/mixed: calibrate on this video's first frames (default: procedural frames). "
        "Use your own footage with real weights.",
    ),
    recipe: str = typer.Option(
        None,
        "--recipe",
        help="int8/mixed: quantization recipe name (default: the one named like the precision). "
        "ONNX: int8, mixed, int8_dynamic.",
    ),
    checkpoint: Path = typer.Option(
        None,
        "--checkpoint",
        help="Official EdgeTAM .pt, or a Hugging Face EdgeTAM folder (config.json + model.safetensors) / .safetensors.",
    ),
    synthetic: bool = typer.Option(False, "--synthetic", help="Use synthetic weights (the default)."),
    salt: int = typer.Option(0, "--salt", help="Salt of the synthetic weights."),
    max_points: int = typer.Option(8, help="Prompt point slots, including the official padding point."),
    max_cond_frames: int = typer.Option(2, help="Conditioning-frame memory slots (S = this + 6)."),
    max_obj_ptrs: int = typer.Option(16, help="Official max_obj_ptrs_in_encoder (P = cond + this - 1)."),
    fuse: bool = typer.Option(True, "--fuse/--no-fuse", help="Reparameterize the image encoder."),
    graph: list[str] = typer.Option(None, "--graph", help="Export only these graphs (repeatable)."),
    coreml_target: Target = typer.Option(Target.iOS17, help="Core ML minimum deployment target."),
    compute_units: ComputeUnits = typer.Option(ComputeUnits.all, help="Core ML compute units (recorded)."),
    opset: int = typer.Option(18, help="ONNX opset (>= 18)."),
) -> None:
    """Export the four EdgeTAM graphs to one bundle folder (artifacts, constants.npz, manifest.json)."""
    consoles.bind()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..backends import MissingBackendError
    from ..bundle import BundleError, export_bundle
    from ..exporters.base import ExportError, get_exporter
    from ..models.checkpoint import CheckpointError

    if checkpoint is not None and synthetic:
        raise typer.BadParameter("pass either --checkpoint or --synthetic, not both")
    if checkpoint is not None and not checkpoint.exists():
        raise typer.BadParameter(f"checkpoint not found: {checkpoint}", param_hint="--checkpoint")
    for name, v, lo in (("--max-points", max_points, 1), ("--max-cond-frames", max_cond_frames, 1)):
        if v < lo:
            raise typer.BadParameter(f"must be >= {lo}, got {v}", param_hint=name)
    if max_obj_ptrs < 1:
        raise typer.BadParameter(f"must be >= 1, got {max_obj_ptrs}", param_hint="--max-obj-ptrs")
    backends = [b.value for b in (backend or list(Backend))]
    backends = list(dict.fromkeys(backends))
    precisions = [p.value for p in precision] if precision else None
    from ..backends import QUANTIZED_PRECISIONS

    quantized = any(p in QUANTIZED_PRECISIONS for p in precisions or [])
    if calibration is not None and not quantized:
        raise typer.BadParameter("applies to --precision int8 or mixed", param_hint="--calibration")
    if checkpoint is None:
        consoles.err.print(
            f"[bold yellow]WARNING: exporting SYNTHETIC weights (salt {salt}), not a trained model. "
            "Pass --checkpoint PATH for the real EdgeTAM.[/bold yellow]"
        )
    try:
        exporters = []
        for b in backends:
            opts = {}
            if b == "coreml":
                opts = {"target": coreml_target.value, "compute_units": compute_units.value}
            elif b == "onnx":
                opts = {"opset": opset}
            e = get_exporter(b, **opts)
            e.check_available()
            exporters.append(e)
        from ..bundle.write import plan_recipes

        plan_recipes(exporters, precisions, recipe)  # unknown recipe: one line, exit 2, nothing written
        calibrate = None
        if quantized:
            from ..calibration import calibrator, check_video

            if calibration is not None:
                check_video(calibration)
            calibrate = calibrator(calibration)
    except (MissingBackendError, ValueError) as e:
        consoles.err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None

    n_graphs = len(graph) if graph else 4
    total = sum(len(precisions or [e.default_precision]) for e in exporters) * n_graphs
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=consoles.err,
        transient=False,
    ) as bar:
        task = bar.add_task("building the PyTorch reference", total=total)

        def progress(b: str, g: str, p: str, report) -> None:
            if report is None:
                bar.update(task, description=f"{b} {g} {p}")
            else:
                bar.advance(task)

        try:
            bundle = export_bundle(
                out,
                exporters,
                checkpoint=checkpoint,
                salt=None if checkpoint is not None else salt,
                precisions=precisions,
                max_points=max_points,
                max_cond_frames=max_cond_frames,
                max_obj_ptrs=max_obj_ptrs,
                fuse=fuse,
                graphs=graph or None,
                progress=progress,
                calibrate=calibrate,
                recipe=recipe,
            )
        except (BundleError, CheckpointError, ExportError, MissingBackendError, ValueError) as e:
            bar.stop()
            consoles.err.print(f"[red]export failed:[/red] {escape(str(e))}")
            raise typer.Exit(1) from None
        bar.update(task, description="done")
    consoles.out.print(artifacts_table(bundle.artifacts, title=f"bundle {bundle.root}"))
    total_bytes = sum(a["size_bytes"] for a in bundle.artifacts)
    consoles.out.print(
        f"{len(bundle.artifacts)} artifacts, {_size(total_bytes)}, "
        f"{bundle.manifest['export_seconds_total']:.1f} s; weights: {_weights_line(bundle.weights)}"
    )
    _plain(f"digest: {bundle.digest}")


def _plain(*objects) -> None:
    """Print without interpreting ``[...]`` as rich markup (shapes, paths, descriptions)."""
    consoles.out.print(*objects, markup=False)


def _weights_line(w: dict) -> str:
    if w.get("source") == "synthetic":
        return f"SYNTHETIC (recipe {w.get('recipe')}, salt {w.get('salt')})"
    if w.get("source") == "checkpoint":
        return f"checkpoint {w.get('path')} (sha256 {str(w.get('sha256'))[:16]}...)"
    return str(w)


def _fmt(x: float, spec: str = ".3g") -> str:
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return format(x, spec)


@app.command("verify")
@user_errors
def verify_cmd(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle folder written by `export`."),
    json_out: Path = typer.Option(None, "--json", help="Write the full report as JSON here."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Checkpoint (if not at the recorded path)."),
    backend: list[Backend] = typer.Option(None, "--backend", "-b", help="Verify only these backends."),
    precision: list[Precision] = typer.Option(
        None, "--precision", "-p", help="Verify only these precisions."
    ),
    threads: int = typer.Option(None, help="ONNX Runtime intra-op threads."),
    expect_digest: str = typer.Option(
        None, "--expect-digest", help="Refuse the bundle unless its digest is this sha256:<hex>."
    ),
    frames: int = typer.Option(
        40, "--frames", min=2, help="int8/mixed: frames of the tracker-level accuracy scenario (vs fp32)."
    ),
    onnx_format: OnnxFormat = typer.Option(
        OnnxFormat.onnx,
        "--onnx-format",
        help="ONNX: verify the .onnx files (onnx) or their ORT-format .ort companions (ort), "
        "the files a phone's onnxruntime loads.",
    ),
) -> None:
    """Compare every graph of BUNDLE with the PyTorch reference; exit 1 on any failure.

    Quantized precisions (int8, mixed) are also measured against the bundle's fp32 artifacts of
    the same backend: per-graph cosine / relative error and a tracker-level scenario (a click
    and a box tracked over --frames procedural frames) whose IoU / score-sign bound must hold.
    With --json, an IoU plot per quantized precision is written beside the report.
    """
    consoles.bind()
    from ..bundle import BundleError, load_bundle
    from ..models.checkpoint import CheckpointError
    from ..verify.bundle_check import verify_bundle

    try:
        bundle = load_bundle(bundle_path)
        bundle.check_digest(expect_digest)
    except BundleError as e:
        consoles.err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    chosen = [b.value for b in backend] if backend else bundle.backends
    if onnx_format is not OnnxFormat.onnx and "onnx" not in chosen:
        consoles.err.print(
            f"[red]error:[/red] --onnx-format {onnx_format.value} applies to ONNX artifacts, and this run "
            f"verifies none ({', '.join(chosen)}): add --backend onnx or drop --onnx-format"
        )
        raise typer.Exit(2)
    _plain(f"bundle {bundle.root}: weights {_weights_line(bundle.weights)}; digest {bundle.digest}")
    try:
        report = verify_bundle(
            bundle,
            backends=[b.value for b in backend] if backend else None,
            precisions=[p.value for p in precision] if precision else None,
            checkpoint=checkpoint,
            runtime_kwargs={"num_threads": threads} if threads else None,
            on_runtime=lambda b, p: consoles.err.print(
                f"running {backend_label(b, onnx_format.value)} {p} ..."
            ),
            scenario_frames=frames,
            plot_dir=json_out.parent if json_out is not None else None,
            onnx_format=onnx_format.value,
        )
    except (BundleError, CheckpointError) as e:
        consoles.err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None

    groups: dict[tuple[str, str], list] = {}
    for r in report.rows:
        groups.setdefault((r.backend, r.precision), []).append(r)
    for (b, p), rows in groups.items():
        t = Table(
            title=f"{backend_label(b, report.onnx_format)} {p} vs PyTorch reference (rel = max-abs / max|ref|)"
        )
        for col in ("graph/case", "output", "max-abs", "mean-abs", "rel", "cosine", "PSNR", "ok"):
            t.add_column(col, justify="left" if col in ("graph/case", "output", "ok") else "right")
        for r in rows:
            t.add_row(
                f"{r.graph}/{r.case}",
                r.output,
                _fmt(r.max_abs, ".2e"),
                _fmt(r.mean_abs, ".2e"),
                _fmt(r.rel_max_abs, ".1e"),
                f"{r.cosine:.7f}",
                _fmt(r.psnr, ".1f"),
                "[green]pass[/green]" if r.passed else "[red]FAIL[/red]",
            )
        consoles.out.print(t)
    for key, q in report.quant.items():
        _print_quant(key, q)
    for key, why in report.skipped.items():
        consoles.out.print(f"[yellow]skipped {key}:[/yellow] {escape(why)}")
    for key, why in report.errors.items():
        consoles.out.print(f"[red]error {key}:[/red] {escape(why)}")
    for r in report.rows:
        for p in r.problems:
            consoles.out.print(f"[red]FAIL[/red] {r.backend} {r.precision} {r.case}: {escape(p)}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(json_out, report.as_dict())
        _plain(f"report written to {json_out}")
    n_fail = sum(not r.passed for r in report.rows)
    n_fail += sum(not q["tracker"]["passed"] for q in report.quant.values() if "tracker" in q)
    if report.passed:
        consoles.out.print(f"[green]PASS[/green]: {len(report.rows)} tensors within tolerance")
    else:
        consoles.out.print(
            f"[red]FAIL[/red]: {n_fail} of {len(report.rows)} tensors out of tolerance, {len(report.errors)} errors"
            + ("" if report.rows else " (nothing was compared)")
        )
        raise typer.Exit(1)


def _print_quant(key: str, q: dict) -> None:
    """Per-graph accuracy and the tracker-level scenario of one quantized precision."""
    t = Table(title=f"{key} vs {q['against']} (per graph, worst output)")
    for col in ("graph", "cosine", "rel max-abs"):
        t.add_column(col, justify="left" if col == "graph" else "right")
    for g, a in q["graphs"].items():
        t.add_row(g, f"{a['cosine']:.6f}", f"{a['rel_max_abs']:.3g}")
    consoles.out.print(t)
    tr = q.get("tracker")
    if tr is None:
        return
    gr = tr["growth"]
    _plain(
        f"{key} tracker scenario ({tr['frames']} frames, objects {tr['obj_ids']}): mask IoU min "
        f"{tr['min_iou']:.4f} (frame {gr['worst_frame']}), mean {tr['mean_iou']:.4f} (halves "
        f"{gr['mean_iou_first_half']:.4f} -> {gr['mean_iou_second_half']:.4f}), score signs equal "
        f"{100 * tr['sign_agreement']:.1f}%; bound min {tr['bound']['min_iou']}, mean {tr['bound']['mean_iou']}"
    )
    _plain("per-frame min IoU: " + " ".join(f"{v:.3f}" for v in tr["per_frame_min_iou"]))
    if "plot" in q:
        _plain(f"plot: {q['plot']}")
    for p in tr["problems"]:
        consoles.out.print(f"[red]FAIL[/red] {escape(p)}")


@app.command("inspect")
@user_errors
def inspect_cmd(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle folder written by `export`."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check every file's sha256."),
    ane: bool = typer.Option(
        False, "--ane", help="Also print the static ANE-readiness report of the Core ML artifacts."
    ),
) -> None:
    """Print a bundle's manifest in human form."""
    consoles.bind()
    from ..bundle import BundleError, load_bundle

    try:
        bundle = load_bundle(bundle_path, verify=verify)
    except BundleError as e:
        consoles.err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    m = bundle.manifest
    _plain(f"{bundle.root}  ({m['format']} v{m['format_version']}, {m.get('created_by', '?')})")
    _plain(f"created: {m.get('created_utc', '?')}")
    _plain(f"digest: {bundle.digest}")
    _plain(
        f"checksums: {'all ' + str(len(m['files'])) + ' files OK' if verify else 'not checked (--no-verify)'}"
    )
    _plain(f"weights: {_weights_line(bundle.weights)}")
    _plain("options: " + ", ".join(f"{k}={v}" for k, v in bundle.options.items()))
    pre = m.get("preprocessing", {})
    _plain(
        f"preprocessing: {pre.get('resize')}; {pre.get('input_layout')}; mean {pre.get('mean')} std {pre.get('std')}"
    )
    consts = m["constants"]
    _plain(
        f"host constants ({consts['file']}): "
        + ", ".join(f"{k} {v['shape']} {v['dtype']}" for k, v in consts["arrays"].items())
    )
    for name, c in bundle.contracts.items():
        t = Table(title=Text(f"{name}: {c.description}"), title_justify="left")
        t.add_column("io")
        t.add_column("name")
        t.add_column("shape")
        t.add_column("dtype")
        t.add_column("description")
        for kind, specs in (("in", c.inputs), ("out", c.outputs)):
            for s in specs:
                t.add_row(kind, s.name, str(list(s.shape)), s.dtype, Text(s.description))
        _plain(t)
    for b, info in m.get("backends", {}).items():
        _plain(f"backend {b}: precisions {info.get('precisions')}, options {info.get('options')}")
        if "reduced_build" in info:
            rb = info["reduced_build"]
            _plain(
                f"  reduced ORT build configs (from {len(rb.get('models', []))} .ort files): "
                f"{rb.get('required_operators')}, {rb.get('required_operators_and_types')}"
            )
        for p, q in info.get("quantization", {}).items():
            schemes = ", ".join(f"{g} {s}" for g, s in q.get("graphs", {}).items())
            _plain(
                f"  {p}: recipe {q.get('recipe')} ({schemes}); calibration: {q.get('calibration', {}).get('source')}"
            )
    _plain(artifacts_table(bundle.artifacts))
    _plain("tools: " + ", ".join(f"{k} {v}" for k, v in m.get("tools", {}).items()))
    if ane:
        from ..coreml_mil.ane import ane_report_for_bundle, format_ane_report

        _plain(Text(format_ane_report(ane_report_for_bundle(bundle))))
