"""``edgetam-export bench device``: run a bench pack on an Android device over adb.

The ``device`` function is the command; the ``bench`` command group registers it with
``bench_app.command("device")(device)``. Standalone: ``python -m edgetam_export.cli_bench_device``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from .bench.device_android import DEFAULT_BINARY, DeviceRunError, run_on_device

err_console = Console(stderr=True)


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
    try:
        run = run_on_device(
            pack, out, adb_serial, binary, threads, taskset, iterations, warmup, frames=frames, adb=adb
        )
    except DeviceRunError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    r = run.result
    failed = [f"{n['call']}.{n['output']}" for n in r["numerics"] if not n["passed"]]
    for name, g in r["graphs"].items():
        typer.echo(f"{name:<18} p50 {g['latency']['p50_ms']:9.2f} ms  load {g['load_ms']:8.1f} ms")
    for name, f in r["frames"].items():
        typer.echo(f"{name:<18} p50 {f['latency']['p50_ms']:9.2f} ms  {f['fps']:.2f} fps")
    typer.echo(f"numerics: {'passed' if r['passed'] else 'FAILED: ' + ', '.join(failed)} -> {out}")
    if not r["passed"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(device)
