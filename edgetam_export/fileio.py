"""Atomic file and folder writes, file digests and stale temporary-folder cleanup: the one home for each."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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


def temp_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh hidden name next to ``path`` for building it before the rename: ``.NAME.tmp-XXXXXXXX``."""
    p = Path(path)
    return p.parent / f".{p.name}.tmp-{uuid.uuid4().hex[:8]}{suffix}"


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst`` (file or directory), replacing ``dst`` as atomically as the OS allows.

    Files are replaced with one ``os.replace``; a directory target is first renamed aside,
    then the new one renamed in, then the old one deleted.
    """
    if dst.is_dir() and not dst.is_symlink():
        aside = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
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
