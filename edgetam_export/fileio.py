"""Atomic file and folder writes, file digests and stale temporary-folder cleanup: the one home for each."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a directory as the sha256 of its sorted ``"relpath\\0sha256\\n"`` lines."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    lines = sorted(
        f"{p.relative_to(path).as_posix()}\0{file_sha256(p)}\n" for p in path.rglob("*") if p.is_file()
    )
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def path_size(path: str | os.PathLike) -> int:
    """Bytes of a file, or of every file below a directory."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def remove_path(path: str | os.PathLike) -> None:
    """Delete a file or a directory tree if it exists."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


# Our temporary names: ``.NAME.tmp-pPID-XXXXXXXX`` (being built) and ``.NAME.old-pPID-XXXXXXXX``
# (a replaced folder being deleted); older releases wrote them without ``pPID-``.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?:p(?P<pid>\d+)-)?[0-9a-f]{8}(?:\.[A-Za-z0-9]+)?$")
STALE_AGE_S = 24 * 3600  # a temporary whose creator cannot be checked is stale after a day


def _temp_name(path: Path, kind: str, suffix: str = "") -> Path:
    return path.parent / f".{path.name}.{kind}-p{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def temp_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh hidden name next to ``path`` for building it before the rename: ``.NAME.tmp-pPID-XXXXXXXX``."""
    return _temp_name(Path(path), "tmp", suffix)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def clean_stale_temps(
    folder: str | os.PathLike, name: str | None = None, max_age_s: float = STALE_AGE_S
) -> list[Path]:
    """Delete our own stale temporaries in ``folder`` (only for target ``name`` if given); returns them.

    Only names made by :func:`temp_sibling` / :func:`replace_path` are touched. One is stale
    when the process that created it (the ``pPID`` in its name) is no longer running on this
    host, or, for a name without a PID, when it was last modified more than ``max_age_s`` ago
    (a day by default: no export or output write takes that long). A temporary of a live
    process is never removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for child in folder.iterdir():
        m = _TEMP_NAME.match(child.name)
        if m is None or (name is not None and m["name"] != name):
            continue
        pid = int(m["pid"]) if m["pid"] else None
        if pid == os.getpid() or (pid is not None and _pid_alive(pid)):
            continue
        try:
            if pid is None and now - child.lstat().st_mtime < max_age_s:
                continue
            remove_path(child)
        except OSError:
            continue  # raced with another cleaner, or not ours to delete
        removed.append(child)
    return removed


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst`` (file or directory), replacing ``dst`` as atomically as the OS allows.

    Files are replaced with one ``os.replace``; a directory target is first renamed aside,
    then the new one renamed in, then the old one deleted.
    """
    if dst.is_dir() and not dst.is_symlink():
        aside = _temp_name(dst, "old")
        os.replace(dst, aside)
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(aside, dst)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(src, dst)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling and one rename (mode 0644)."""
    path = Path(path)
    tmp = temp_sibling(path)
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")
