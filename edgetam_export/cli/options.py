"""What the commands share: choice enums built from the one list of each, and consoles bound at command start."""

from __future__ import annotations

import os
import sys
from enum import Enum

from rich.console import Console

from ..backends import BACKENDS, COREML_COMPUTE_UNITS, PRECISIONS

Backend = Enum("Backend", {b: b for b in BACKENDS}, type=str)
Precision = Enum("Precision", {p: p for p in PRECISIONS}, type=str)
ComputeUnits = Enum("ComputeUnits", {u: u for u in COREML_COMPUTE_UNITS}, type=str)


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
