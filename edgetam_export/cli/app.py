"""The ``edgetam-export`` typer application object that every command module registers on."""

from __future__ import annotations

import typer

from .options import set_debug

app = typer.Typer(
    name="edgetam-export",
    help="Export EdgeTAM to Core ML, ExecuTorch and ONNX, verify the artifacts, and track videos.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"edgetam-export {version('edgetam-export')}")
        except PackageNotFoundError:
            typer.echo("edgetam-export (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for user errors too."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Export EdgeTAM to Core ML, ExecuTorch and ONNX, verify the artifacts, and track videos."""
    set_debug(debug)
