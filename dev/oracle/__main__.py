"""``python -m dev.oracle``: the command-line entry point (delegates to :mod:`dev.oracle.cli`)."""

import sys

from .cli import main

sys.exit(main())
