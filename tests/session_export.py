"""The test session's one real export, run in a background process so tests that need no bundle
run while it converts, and shared by every pytest-xdist worker through a directory.

``python -m tests.session_export ROOT`` writes ``ROOT/main`` (ONNX + ExecuTorch, fp32 + fp16,
salt-0 synthetic weights), ``ROOT/coreml`` (Core ML fp32 + fp16, converted in a second process
at the same time: exporting is mostly single-threaded) and ``ROOT/capture.pkl`` (one reference
tracking run on the main bundle's weights: prompt on frame 0, one tracked frame, the bench
packs' input). ``ROOT/status.json`` is written last, ``{"ok": bool, "error": str}``; the log
goes to ``ROOT/export.log``.

:func:`start` launches it once per session (the first process to ask wins, under a file lock);
:func:`wait` blocks until ``status.json`` exists, or fails if the process died without it.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
import traceback
from pathlib import Path

from edgetam_export.fileio import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
STATUS = "status.json"
PID = "pid"
LOG = "export.log"
CAPTURE = "capture.pkl"
CAPTURE_TRACK_FRAMES = 1


# Popen handles of exports this process started (reaped by :func:`wait` and at exit).
_CHILDREN: list[subprocess.Popen] = []


def start(root: Path) -> None:
    """Start the export into ``root`` unless a process of this session already did."""
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / "start.lock")):
        if (root / PID).exists():
            return
        log = (root / LOG).open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.session_export", str(root)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        (root / PID).write_text(str(proc.pid))
        _CHILDREN.append(proc)


def finish(wait_for_it: bool) -> None:
    """At the end of a pytest process: wait for an export this process started (another xdist
    worker may still need it), or stop it (nobody else can need it)."""
    for proc in _CHILDREN:
        if proc.poll() is None and not wait_for_it:
            proc.terminate()
        proc.wait()


def _alive(pid: int) -> bool:
    for proc in _CHILDREN:
        if proc.pid == pid:
            return proc.poll() is None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def wait(root: Path) -> dict:
    """Block until the export in ``root`` has finished; return its status dict.

    Raises ``RuntimeError`` (with the export log) if it failed or its process died.
    """
    pid = int((root / PID).read_text())
    while True:
        if (root / STATUS).exists():
            status = json.loads((root / STATUS).read_text())
            break
        if not _alive(pid):
            time.sleep(0.5)  # the status file may land just after the process ends
            if (root / STATUS).exists():
                continue
            status = {"ok": False, "error": f"export process {pid} ended without a status"}
            break
        time.sleep(1.0)
    if not status["ok"]:
        log = (root / LOG).read_text() if (root / LOG).exists() else ""
        raise RuntimeError(f"session export failed: {status['error']}\n{log[-20000:]}")
    return status


def load_capture(root: Path):
    with (root / CAPTURE).open("rb") as f:
        return pickle.load(f)


def _export(root: Path) -> None:
    import torch

    torch.set_num_threads(1)
    from edgetam_export.bench.pack import capture_reference
    from edgetam_export.bundle import export_bundle, load_bundle
    from edgetam_export.verify.bundle_check import reference_runtime

    coreml = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, torch; torch.set_num_threads(1); from edgetam_export.bundle import export_bundle; "
            "export_bundle(sys.argv[1], ['coreml'], precisions=['fp32', 'fp16'], salt=0)",
            str(root / "coreml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        export_bundle(root / "main", ["onnx", "executorch"], precisions=["fp32", "fp16"], salt=0)
        capture = capture_reference(
            reference_runtime(load_bundle(root / "main")), track_frames=CAPTURE_TRACK_FRAMES
        )
        with (root / CAPTURE).open("wb") as f:
            pickle.dump(capture, f)
    finally:
        log, _ = coreml.communicate()
    if coreml.returncode != 0:
        raise RuntimeError(f"Core ML export failed:\n{log}")


def main(argv: list[str]) -> int:
    root = Path(argv[0])
    t0 = time.perf_counter()
    try:
        _export(root)
        status = {"ok": True, "error": "", "seconds": round(time.perf_counter() - t0, 1)}
    except BaseException as e:  # every failure must reach the waiting tests
        traceback.print_exc()
        status = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    write_json_atomic(root / STATUS, status)
    return 0 if status["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
