"""Runs a bench pack on an Android device over adb with the native ``edgetam_bench`` runner.

Pushes the runner (and the ExecuTorch shared libraries beside it) and the pack to
``/data/local/tmp/edgetam_bench/``, runs it (optionally pinned with ``taskset`` and with a
thread count), pulls the result JSON and adds the device's identity from ``getprop``
(``ro.product.model``, ``ro.build.version.release``, ``ro.soc.model``, ``ro.product.cpu.abi``).
Only the ``adb`` command line is used, so any ``adb`` on PATH (or ``adb=``) works.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REMOTE_ROOT = "/data/local/tmp/edgetam_bench"
# Where android_harness/README.md's NDK build installs the runner.
DEFAULT_BINARY = Path("build/android_harness/android-arm64-v8a/bin/edgetam_bench")
GETPROPS = ("ro.product.model", "ro.build.version.release", "ro.soc.model", "ro.product.cpu.abi")


class DeviceRunError(RuntimeError):
    """A bad argument, an unreachable device, or a runner error; the message is one line."""


@dataclass
class DeviceRun:
    """The merged result JSON (dict), the runner's exit status (0 passed, 1 numerics failed)."""

    result: dict
    returncode: int
    stderr: str


class Adb:
    """``adb -s SERIAL ...`` with one-line errors."""

    def __init__(self, serial: str, adb: str = "adb"):
        self.serial, self.adb = serial, adb

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [self.adb, "-s", self.serial, *args]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise DeviceRunError(
                f"adb not found ({self.adb!r}); install Android platform-tools or pass its path"
            ) from None
        if check and p.returncode != 0:
            msg = (p.stderr.strip() or p.stdout.strip() or f"exit {p.returncode}").splitlines()[-1]
            raise DeviceRunError(f"adb {' '.join(args[:2])} failed on {self.serial}: {msg}")
        return p

    def shell(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self("shell", command, check=check)

    def getprop(self, name: str) -> str | None:
        value = self.shell(f"getprop {shlex.quote(name)}").stdout.strip()
        return value or None


def runner_libraries(binary: Path) -> list[Path]:
    """The shared libraries deployed with ``binary``: ``*.so`` beside it and in ``../lib``."""
    libs: dict[str, Path] = {}
    for folder in (binary.parent.parent / "lib", binary.parent):
        if folder.is_dir():
            for f in sorted(folder.glob("*.so")):
                libs.setdefault(f.name, f)
    return list(libs.values())


def _check_pack(pack: Path) -> None:
    for name in ("index.json", "plan.json"):
        if not (pack / name).is_file():
            raise DeviceRunError(f"{pack}: not a bench pack (no {name}); cut one with the bench pack writer")


def merge_device_info(result: dict, props: dict[str, str | None]) -> dict:
    """``result`` with device.model/os/chipset from getprop and the ABI in ``notes``."""
    device = dict(result.get("device", {}))
    if props.get("ro.product.model"):
        device["model"] = props["ro.product.model"]
    if props.get("ro.build.version.release"):
        device["os"] = f"Android {props['ro.build.version.release']} ({device.get('os', '')})".replace(
            " ()", ""
        )
    if props.get("ro.soc.model"):
        device["chipset"] = props["ro.soc.model"]
    out = dict(result, device=device)
    notes = list(result.get("notes", []))
    notes += [f"getprop {k}={v}" for k, v in props.items() if v is not None]
    out["notes"] = notes
    return out


def run_on_device(
    pack: str | os.PathLike,
    out: str | os.PathLike,
    serial: str,
    binary: str | os.PathLike | None = None,
    threads: int | None = None,
    taskset: str | None = None,
    iterations: int | None = None,
    warmup: int | None = None,
    frames: str | None = None,
    adb: str = "adb",
    remote_root: str = REMOTE_ROOT,
) -> DeviceRun:
    """Push, run, pull: writes the merged result JSON to ``out`` (atomically) and returns it.

    ``frames`` limits the composite frames (comma-separated names, ``none`` for none).
    ``taskset`` is a CPU mask in hex (e.g. ``f0`` for the big cores of a 4+4 SoC).
    Raises :class:`DeviceRunError` on bad input, adb failures and runner errors (exit 2).
    """
    pack, out = Path(pack), Path(out)
    binary = Path(binary) if binary is not None else DEFAULT_BINARY
    _check_pack(pack)
    if not binary.is_file():
        raise DeviceRunError(
            f"{binary}: no edgetam_bench binary; build it with the NDK (android_harness/README.md) "
            "and pass --binary PATH"
        )
    if taskset is not None:
        try:
            int(taskset, 16)
        except ValueError:
            raise DeviceRunError(f"--taskset needs a hex CPU mask such as f0, got {taskset!r}") from None
    d = Adb(serial, adb)
    props = {k: d.getprop(k) for k in GETPROPS}
    q = shlex.quote
    remote_pack = f"{remote_root}/pack"
    d.shell(
        f"rm -rf {q(remote_pack)} {q(remote_root)}/result.json && mkdir -p {q(remote_root)}/bin {q(remote_root)}/lib"
    )
    d("push", str(binary), f"{remote_root}/bin/edgetam_bench")
    for lib in runner_libraries(binary):
        d("push", str(lib), f"{remote_root}/lib/{lib.name}")
    d("push", str(pack), remote_pack)
    args = ["./bin/edgetam_bench", "--pack", "pack", "--out", "result.json"]
    if threads is not None:
        args += ["--threads", str(threads)]
    if iterations is not None:
        args += ["--iterations", str(iterations)]
    if warmup is not None:
        args += ["--warmup", str(warmup)]
    if frames is not None:
        args += ["--frames", frames]
    command = " ".join(q(a) for a in args)
    if taskset is not None:
        command = f"taskset {q(taskset)} {command}"
    run = d.shell(
        f"cd {q(remote_root)} && chmod 755 bin/edgetam_bench && LD_LIBRARY_PATH={q(remote_root)}/lib {command}",
        check=False,
    )
    if run.returncode not in (0, 1):
        lines = (run.stderr.strip() or run.stdout.strip() or f"exit {run.returncode}").splitlines()
        raise DeviceRunError(f"edgetam_bench on {serial} failed: {lines[-1]}")
    with tempfile.TemporaryDirectory() as tmp:
        pulled = Path(tmp) / "result.json"
        d("pull", f"{remote_root}/result.json", str(pulled))
        result = merge_device_info(json.loads(pulled.read_text()), props)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(out)
    return DeviceRun(result, run.returncode, run.stderr)
