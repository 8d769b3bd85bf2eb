"""Run import-linter on the package as it installs: models/ and exporters/ under edgetam_export.

import-linter (grimp) finds a package's modules by walking its folder on disk, but
``models/`` and ``exporters/`` are mapped into ``edgetam_export`` by setuptools' ``package-dir``
and are not inside ``edgetam_export/``. This script lays out the installed tree as symlinks
under ``build/import-graph/`` and runs ``lint-imports`` (contracts in pyproject.toml) on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "import-graph"
MAPPED = {"models": ROOT / "models", "exporters": ROOT / "exporters"}


def build_tree() -> Path:
    """Symlink tree of the installed ``edgetam_export`` package; returns its parent folder."""
    pkg = TREE / "edgetam_export"
    shutil.rmtree(TREE, ignore_errors=True)
    pkg.mkdir(parents=True)
    for entry in (ROOT / "edgetam_export").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, src in MAPPED.items():
        (pkg / name).symlink_to(src)
    return TREE


def main() -> int:
    tree = build_tree()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]))
    lint = Path(sys.executable).with_name("lint-imports")
    cmd = [str(lint), str(ROOT / "pyproject.toml"), "--no-cache", *sys.argv[1:]]
    return subprocess.call(cmd, cwd=tree, env=env)


if __name__ == "__main__":
    sys.exit(main())
