"""``edgetam-export bench pack | run | split | report | device``: cut bench packs, run them here or on an Android device, split a tracked frame, report.

Registers the ``bench`` command group on :data:`edgetam_export.cli.app.app`. Heavy packages are
imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..bench.device_android import DEFAULT_BINARY
from .app import app
from .options import OnnxFormat, backend_label

bench_app = typer.Typer(
    name="bench",
    help="Benchmark bundles: cut self-contained bench packs, run them here, merge results into a report.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


def _consoles() -> tuple[Console, Console]:
    return Console(file=sys.stdout, soft_wrap=True, width=160), Console(file=sys.stderr, soft_wrap=True)


def _fail(msg: str) -> None:
    Console(file=sys.stderr, soft_wrap=True).print(f"[red]error:[/red] {escape(msg)}")
    raise typer.Exit(2)


def _check_counts(iterations: int | None, warmup: int | None) -> None:
    if iterations is not None and iterations < 1:
        _fail(f"--iterations must be >= 1, got {iterations}")
    if warmup is not None and warmup < 0:
        _fail(f"--warmup must be >= 0, got {warmup}")


def _open_bundle(path: Path):
    from ..bench._deps import BundleError, load_bundle

    if not (path / "manifest.json").is_file():
        _fail(f"{path} is not an export bundle (no manifest.json); export one with `edgetam-export export`")
    try:
        return load_bundle(path)
    except BundleError as e:
        _fail(str(e))


@bench_app.command("pack")
def pack_cmd(
    bundle: Path = typer.Argument(..., help="export bundle folder"),
    backend: str = typer.Option(..., "--backend", help="onnx | executorch | coreml"),
    precision: str = typer.Option(..., "--precision", help="fp32 | fp16 | int8 | mixed"),
    out: Path = typer.Option(..., "--out", help="pack folder to write (replaced atomically)"),
    track_frames: int = typer.Option(
        17, "--track-frames", help="frames tracked before the steady-state frame (17 = full bank)"
    ),
    iterations: int = typer.Option(10, "--iterations"),
    warmup: int = typer.Option(3, "--warmup"),
    frames: str | None = typer.Option(
        None, "--frames", help="keep only these frames and their calls (comma-separated, e.g. tracked_1obj)"
    ),
) -> None:
    """Write a bench pack: one (backend, precision)'s artifacts, captured reference I/O, and the plan."""
    from ..bench._deps import BundleError
    from ..bench.pack import write_pack

    _check_counts(iterations, warmup)
    if track_frames < 1:
        _fail(f"--track-frames must be >= 1, got {track_frames}")
    b = _open_bundle(bundle)
    try:
        b.select(backend, precision)
        out_path = write_pack(
            b,
            backend,
            precision,
            out,
            track_frames=track_frames,
            warmup=warmup,
            iterations=iterations,
            frames=[f for f in frames.split(",") if f] if frames else None,
        )
    except (BundleError, ValueError) as e:
        _fail(str(e))
    _consoles()[0].print(f"wrote bench pack {out_path}")


def results_table(results: list[dict]) -> Table:
    """Per graph and per frame p50 (ms) of every setting, its ratio to the PyTorch baseline, roofline fraction."""
    base = next((r for r in results if r["setting"]["backend"] == "pytorch"), None)
    t = Table(title="host benchmark (p50 ms; x = ratio to PyTorch eager; roof = fraction of fp32 GEMM peak)")
    t.add_column("row")
    for r in results:
        s = r["setting"]
        t.add_column(
            s["backend"] if s["backend"] == "pytorch" else f"{s['backend']} {s['precision']}", justify="right"
        )

    def cell(r, section, name):
        e = r[section].get(name)
        if e is None:
            return "-"
        p50 = e["latency"]["p50_ms"]
        txt = f"{p50:.1f}"
        if base is not None and r is not base and name in base[section]:
            txt += f" ({p50 / base[section][name]['latency']['p50_ms']:.2f}x)"
        roof = e.get("roofline_fraction")
        if roof is not None:
            txt += f" {roof:.0%}"
        if section == "frames":
            txt += f" {e['fps']:.2f}fps"
        return txt

    names = list(results[0]["graphs"])
    for g in names:
        t.add_row(g, *(cell(r, "graphs", g) for r in results))
    for f in results[0]["frames"]:
        t.add_row(f"frame {f}", *(cell(r, "frames", f) for r in results))
    t.add_row("numerics", *("pass" if r["passed"] else "[red]FAIL[/red]" for r in results))
    return t


@bench_app.command("run")
def run_cmd(
    source: Path = typer.Argument(
        ..., help="a bench pack folder, or an export bundle (packed to a temp dir first)"
    ),
    backend: list[str] = typer.Option(
        None, "--backend", help="bundle only: backends to pack (default: all in the bundle)"
    ),
    precision: list[str] = typer.Option(
        None, "--precision", help="bundle only: precisions (default: all available)"
    ),
    threads: int = typer.Option(None, "--threads", help="intra-op threads (default: runtime default)"),
    iterations: int = typer.Option(None, "--iterations", help="timed iterations (default: the plan's)"),
    warmup: int = typer.Option(None, "--warmup", help="warm-up rounds (default: the plan's)"),
    track_frames: int = typer.Option(
        17, "--track-frames", help="bundle only: frames tracked before the steady-state frame"
    ),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="skip the PyTorch-eager baseline"),
    no_profile: bool = typer.Option(False, "--no-profile", help="skip per-op profiles"),
    json_out: Path = typer.Option(
        ..., "--json", help="where to write the results (JSON array, one per setting)"
    ),
) -> None:
    """Run bench packs on this host, interleaved with the PyTorch-eager baseline; write results JSON."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..bench._deps import BundleError, MissingBackendError
    from ..bench.runner import PackError, load_pack, run_packs, write_json_atomic
    from ..bench.schema import validate_result

    _check_counts(iterations, warmup)
    if threads is not None and threads < 1:
        _fail(f"--threads must be >= 1, got {threads}")
    out, err = _consoles()
    tmp = None
    try:
        if (source / "index.json").is_file():
            if backend or precision:
                _fail("--backend/--precision select what to pack from a bundle; a pack holds one already")
            packs = [load_pack(source)]
        elif (source / "manifest.json").is_file():
            from ..bench._deps import reference_runtime
            from ..bench.pack import capture_reference, write_pack

            b = _open_bundle(source)
            combos = []
            for be in backend or b.backends:
                if be not in b.backends:
                    _fail(f"{source} has no {be} artifacts (it holds {b.backends})")
                for p in precision or b.precisions(be):
                    if p not in b.precisions(be):
                        _fail(f"{source} has no {be} artifacts at {p} (available: {b.precisions(be)})")
                    combos.append((be, p))
            err.print(f"capturing the reference tracking run ({track_frames} tracked frames) ...")
            cap = capture_reference(reference_runtime(b), track_frames=track_frames)
            tmp = Path(tempfile.mkdtemp(prefix="edgetam-bench-"))
            packs = []
            for be, p in combos:
                packs.append(load_pack(write_pack(b, be, p, tmp / f"{be}-{p}", capture=cap)))
        else:
            _fail(f"{source} is neither a bench pack (index.json) nor an export bundle (manifest.json)")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as bar:
            tasks: dict = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done, total=total)

            results = run_packs(
                packs,
                threads=threads,
                iterations=iterations,
                warmup=warmup,
                baseline=not no_baseline,
                profile=not no_profile,
                progress=progress,
            )
        for r in results:
            validate_result(r)
        write_json_atomic(json_out, results)
    except (PackError, BundleError, MissingBackendError) as e:
        _fail(str(e))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    out.print(results_table(results))
    out.print(f"wrote {json_out}")
    if not all(r["passed"] for r in results):
        raise typer.Exit(1)


@bench_app.command("split")
def split_cmd(
    bundle: Path = typer.Argument(..., help="export bundle folder"),
    backend: str = typer.Option(None, "--backend", help="onnx | executorch | coreml (default: host default)"),
    precision: str = typer.Option(None, "--precision", help="fp32 | fp16 | int8 | mixed (default: first)"),
    threads: int = typer.Option(None, "--threads", help="intra-op threads (default: runtime default)"),
    frames: int = typer.Option(8, "--frames", help="timed steady-state frames"),
    warmup: int = typer.Option(7, "--warmup", help="untimed tracked frames first (7 fill the memory bank)"),
    objects: int = typer.Option(3, "--objects", help="objects of the second session (1 = one session only)"),
    size: str = typer.Option("1920x1080", "--size", help="frame size WIDTHxHEIGHT fed to the tracker"),
    profile_frames: int = typer.Option(2, "--profile-frames", help="extra frames under cProfile (0 = none)"),
    json_out: Path = typer.Option(None, "--json", help="also write the result as JSON"),
    onnx_format: OnnxFormat = typer.Option(
        OnnxFormat.onnx,
        "--onnx-format",
        help="ONNX: time the .onnx files (onnx) or their .ort companions (ort)",
    ),
) -> None:
    """Time the real tracker on camera-sized frames: graph time vs host-side work, and N objects vs the model."""
    from ..bench._deps import BundleError, MissingBackendError, runtime_from_bundle
    from ..bench.host_split import measure_split, split_markdown
    from ..bench.runner import write_json_atomic

    try:
        w, h = (int(v) for v in size.lower().split("x"))
        if w < 1 or h < 1:
            raise ValueError
    except ValueError:
        _fail(f"--size must be WIDTHxHEIGHT in pixels, e.g. 1920x1080; got {size!r}")
    if threads is not None and threads < 1:
        _fail(f"--threads must be >= 1, got {threads}")
    onnx_format = onnx_format.value
    b = _open_bundle(bundle)
    out, err = _consoles()
    try:
        backend, precision = b.select(backend, precision)
        if onnx_format != "onnx" and backend != "onnx":
            _fail(f"--onnx-format {onnx_format} applies to ONNX artifacts; this run times {backend}")
        b.require_graphs(backend, precision)
        kwargs = {"num_threads": threads} if threads else {}
        if backend == "onnx":
            kwargs["model_format"] = onnx_format
        runtime = runtime_from_bundle(b, backend, precision, **kwargs)
        label = backend_label(backend, onnx_format)
        label += f" {precision}"
        err.print(f"tracking {frames} + {warmup} warm-up frames on {label} ...")
        result = measure_split(
            runtime,
            frames=frames,
            warmup=warmup,
            objects=objects,
            size=(h, w),
            profile_frames=profile_frames,
        )
    except (BundleError, MissingBackendError, ValueError) as e:
        _fail(str(e))
    result.update(backend=backend, precision=precision, threads=threads)
    if backend == "onnx":
        result["onnx_format"] = onnx_format
    if json_out is not None:
        write_json_atomic(json_out, result)
    out.print(split_markdown(result, label), markup=False)
    if json_out is not None:
        out.print(f"wrote {json_out}")


@bench_app.command("report")
def report_cmd(
    results: list[Path] = typer.Argument(..., help="result JSON files (host and device runners)"),
    out: Path = typer.Option(..., "--out", help="report folder: report.md + PNG plots"),
    accuracy: list[Path] = typer.Option(
        None,
        "--accuracy",
        help="`edgetam-export verify --json` report(s) of quantized precisions: adds the Quantization "
        "section and quant_iou.png (repeatable)",
    ),
) -> None:
    """Merge result JSONs into a Markdown report with plots (and verify's quantization accuracy)."""
    from ..bench.quant_report import AccuracyError, load_accuracy
    from ..bench.report import write_report
    from ..bench.schema import load_results

    merged = []
    for p in results:
        if not p.is_file():
            _fail(f"result file not found: {p}")
        try:
            merged += load_results(p)
        except Exception as e:  # invalid JSON or schema violation: one line
            _fail(f"{p}: not a valid bench result ({type(e).__name__}: {str(e).splitlines()[0]})")
    entries = []
    for p in accuracy or []:
        try:
            entries += load_accuracy(p)
        except AccuracyError as e:
            _fail(f"{p}: not a usable verify report: {e}")
    md = write_report(merged, out, entries)
    _consoles()[0].print(f"wrote {md}")


@bench_app.command("device")
def device(
    pack: Path = typer.Argument(..., help="Bench pack folder (index.json, plan.json, artifacts/, tensors/)."),
    out: Path = typer.Option(..., "--out", help="Where to write the result JSON."),
    adb_serial: str = typer.Option(..., "--adb", help="Device serial (adb devices)."),
    binary: Path = typer.Option(DEFAULT_BINARY, "--binary", help="edgetam_bench built for the device (NDK)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="ExecuTorch thread pool size."),
    taskset: str | None = typer.Option(None, "--taskset", help="Hex CPU mask to pin the runner (e.g. f0)."),
    iterations: int | None = typer.Option(
        None, "--iterations", min=1, help="Override the plan's iterations."
    ),
    warmup: int | None = typer.Option(None, "--warmup", min=0, help="Override the plan's warm-up runs."),
    frames: str | None = typer.Option(None, "--frames", help="Only these frames (comma-separated; none)."),
    adb: str = typer.Option("adb", "--adb-path", help="adb executable."),
) -> None:
    """Push edgetam_bench and PACK to /data/local/tmp, run it, pull the result (+ getprop device info)."""
    from ..bench.device_android import DeviceRunError, run_on_device

    try:
        run = run_on_device(
            pack, out, adb_serial, binary, threads, taskset, iterations, warmup, frames=frames, adb=adb
        )
    except DeviceRunError as e:
        _fail(str(e))
    r = run.result
    failed = [f"{n['call']}.{n['output']}" for n in r["numerics"] if not n["passed"]]
    for name, g in r["graphs"].items():
        typer.echo(f"{name:<18} p50 {g['latency']['p50_ms']:9.2f} ms  load {g['load_ms']:8.1f} ms")
    for name, f in r["frames"].items():
        typer.echo(f"{name:<18} p50 {f['latency']['p50_ms']:9.2f} ms  {f['fps']:.2f} fps")
    typer.echo(f"numerics: {'passed' if r['passed'] else 'FAILED: ' + ', '.join(failed)} -> {out}")
    if not r["passed"]:
        raise typer.Exit(1)
