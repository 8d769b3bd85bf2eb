"""The ``edgetam-export`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="edgetam-export",
    help="Export EdgeTAM to Core ML, ExecuTorch and ONNX, verify the artifacts, and track videos.",
    no_args_is_help=True,
    add_completion=False,
)


def _register() -> None:
    # Each command group lives in its own module and adds itself to ``app``.
    import importlib

    for mod in ("cli_track", "cli_export", "cli_bench"):
        try:
            importlib.import_module(f"edgetam_export.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"edgetam_export.{mod}":
                raise


_register()

if __name__ == "__main__":
    app()
