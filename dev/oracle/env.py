"""Where things are: the oracle interpreter (official package), the shared golden folder, the output folder.

No machine paths: the oracle interpreter comes from ``--python`` or ``$EDGETAM_ORACLE_PYTHON``, the shared
golden folder from ``--shared`` or ``$EDGETAM_SHARED`` (default ``../shared/golden`` beside the repository).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXTRA_DIR = REPO / "tests" / "golden" / "extra"
CONFIG = "configs/edgetam.yaml"
OFFICIAL_DIST = "edgetam-dimos==1.0.1"
GENERATOR = "dev/oracle (official edgetam-dimos==1.0.1 `sam2`, configs/edgetam.yaml, CPU fp32)"

ORACLE_PYTHON_ENV = "EDGETAM_ORACLE_PYTHON"
SHARED_ENV = "EDGETAM_SHARED"
_REEXEC_MARK = "EDGETAM_ORACLE_REEXEC"


def default_shared_golden() -> Path:
    """``$EDGETAM_SHARED`` if set, else ``<repo>/../shared/golden``."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else REPO.parent / "shared" / "golden"


def official_importable() -> bool:
    """True when the running interpreter can import the official ``sam2`` package."""
    return importlib.util.find_spec("sam2") is not None


def oracle_python(cli_value: str | None) -> str | None:
    """The oracle venv's interpreter: ``--python`` wins over ``$EDGETAM_ORACLE_PYTHON``; None if neither."""
    return cli_value or os.environ.get(ORACLE_PYTHON_ENV) or None


def _fail(message: str) -> None:
    """Bad environment: one line on stderr, exit code 2, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def refuse_second_reexec() -> None:
    """Exit 2 if this process is already the re-executed one (its interpreter lacks ``sam2`` too)."""
    if os.environ.get(_REEXEC_MARK):
        _fail(
            f"{sys.executable} cannot import the official `sam2` package; install {OFFICIAL_DIST} into "
            "that venv (dev/oracle/README.md)"
        )


def reexec_in_oracle(python: str, argv: list[str]) -> None:
    """Replace this process by ``python -m dev.oracle argv`` run from the repository root (never returns).

    Refuses to loop: see :func:`refuse_second_reexec`.
    """
    if not Path(python).exists():
        _fail(f"oracle interpreter {python} does not exist; pass --python or set {ORACLE_PYTHON_ENV}")
    env = dict(os.environ, **{_REEXEC_MARK: "1"})
    os.chdir(REPO)  # `-m dev.oracle` resolves from the working directory
    sys.stdout.flush()
    os.execve(python, [python, "-m", "dev.oracle", *argv], env)


def import_official():
    """``(sam2.sam2_video_predictor module, build_sam2_video_predictor)``; exits with a hint if missing."""
    try:
        import sam2  # noqa: F401
        import sam2.sam2_video_predictor as vp
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError as e:  # pragma: no cover - environment guard
        raise SystemExit(
            f"error: official `sam2` package not importable ({e}). Run with the oracle venv: "
            f"`python -m dev.oracle --python <oracle-venv>/bin/python ...` or set {ORACLE_PYTHON_ENV} "
            "(dev/oracle/README.md)"
        ) from e
    return vp, build_sam2_video_predictor
