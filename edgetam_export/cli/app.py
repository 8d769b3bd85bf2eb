"""The ``edgetam-export`` typer application object that every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="edgetam-export",
    help="Export EdgeTAM to Core ML, ExecuTorch and ONNX, verify the artifacts, and track videos.",
    no_args_is_help=True,
    add_completion=False,
)
