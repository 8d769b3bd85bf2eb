"""The ``edgetam-export`` command line: one module per command group, all registered on one app."""

from __future__ import annotations

from . import bench, export, segment, track  # noqa: F401  (importing a command module registers its commands)
from .app import app

__all__ = ["app"]

if __name__ == "__main__":
    app()
