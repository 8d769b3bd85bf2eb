"""What the commands share: choice enums, consoles bound at command start, and how user errors end a command."""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum

import click
import typer
from rich.console import Console
from rich.markup import escape

from ..backends import BACKENDS, COREML_COMPUTE_UNITS, ONNX_MODEL_FORMATS, PRECISIONS, MissingBackendError

Backend = Enum("Backend", {b: b for b in BACKENDS}, type=str)
Precision = Enum("Precision", {p: p for p in PRECISIONS}, type=str)
ComputeUnits = Enum("ComputeUnits", {u: u for u in COREML_COMPUTE_UNITS}, type=str)
OnnxFormat = Enum("OnnxFormat", {f: f for f in ONNX_MODEL_FORMATS}, type=str)


def backend_label(backend: str, onnx_format: str) -> str:
    """``backend``, with the ONNX file format when it is not the plain ``.onnx`` (e.g. ``onnx (.ort)``)."""
    return f"{backend} (.{onnx_format})" if backend == "onnx" and onnx_format != "onnx" else backend


def _width(stream) -> int | None:
    # Terminals report their width; logs and pipes get room for the tables (rich defaults to 80).
    isatty = getattr(stream, "isatty", None)
    if os.environ.get("COLUMNS") or (isatty is not None and isatty()):
        return None
    return 140


class Consoles:
    """``out`` (stdout) and ``err`` (stderr) rich consoles.

    :meth:`bind` rebinds them to the streams current at command start: exporters temporarily
    capture sys.stdout/sys.stderr (backend progress noise) and the progress bar must not follow them.
    """

    def __init__(self) -> None:
        self.bind()

    def bind(self) -> None:
        self.out = Console(file=sys.stdout, soft_wrap=True, width=_width(sys.stdout))
        self.err = Console(file=sys.stderr, soft_wrap=True, width=_width(sys.stderr))


consoles = Consoles()


# What a user can cause: bad input, a bad or missing file, a backend not installed. ValueError
# covers BundleError, CheckpointError and VideoError; IndexError comes from frame/prompt checks.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    IndexError,
    MissingBackendError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
DEBUG_ENV = "EDGETAM_EXPORT_DEBUG"
_debug = {"on": False}  # set per invocation by the app callback (``--debug``)


def set_debug(on: bool) -> None:
    _debug["on"] = bool(on)


def debug_enabled() -> bool:
    """``--debug`` (or ``EDGETAM_EXPORT_DEBUG=1``): show tracebacks for user errors too."""
    return _debug["on"] or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def user_errors(command):
    """Wrap a command so every command ends the same way.

    A user error prints one line ``error: ...`` on stderr and exits 2; Ctrl-C prints one line
    and exits 130; anything else is an internal bug and keeps its traceback. With ``--debug``
    user errors keep their traceback as well. Click's own exits and usage errors pass through.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            Console(stderr=True).print("interrupted (Ctrl-C)", markup=False)
            raise typer.Exit(130) from None
        except USER_ERRORS as e:
            if debug_enabled():
                raise
            Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(str(e))}")
            raise typer.Exit(2) from None

    return wrapper


def prepare_out(out, overwrite: bool) -> None:
    """Make ``out`` an empty output folder: refuse a non-empty one unless ``overwrite`` (then empty it).

    A re-run never leaves the previous run's files beside the new summary.json.
    """
    from pathlib import Path

    from ..fileio import clean_stale_temps, remove_path

    out = Path(out)
    clean_stale_temps(out)  # temporaries of a killed run inside --out do not count as contents
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"--out {out} is not empty: choose another folder or pass --overwrite")
        for child in out.iterdir():
            remove_path(child)
    out.mkdir(parents=True, exist_ok=True)
