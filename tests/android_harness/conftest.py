"""Fixtures of the android_harness tests: the edgetam_bench builds (x86-64, arm64), one bench
pack cut from the session export, and a runner helper.

Missing build tools skip with what to install, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "android_harness" / "build.sh"
BUILD_ROOT = REPO / "build" / "android_harness"
CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str) -> None:
    """Skip (or fail under CI=true) because a build/run prerequisite is missing."""
    if CI:
        pytest.fail(f"CI=true and {what}", pytrace=False)
    pytest.skip(what)


def _cmake_ok() -> str | None:
    cmake = Path(sys.executable).parent / "cmake"
    if not cmake.exists():
        return f"cmake>=3.28 is not installed in this venv: {sys.executable} -m pip install 'cmake>=3.28'"
    if not Path("/usr/include/nlohmann/json.hpp").exists():
        return "nlohmann/json is missing: apt-get install nlohmann-json3-dev"
    return None


_BUILDS: dict[str, subprocess.Popen] = {}


def _start_build(target: str) -> subprocess.Popen:
    """Start ``build.sh target`` in the background (once per session)."""
    if target not in _BUILDS:
        env = dict(os.environ, PYTHON=sys.executable, BUILD_ROOT=str(BUILD_ROOT))
        _BUILDS[target] = subprocess.Popen(
            [str(BUILD_SH), target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
    return _BUILDS[target]


def _build(target: str) -> Path:
    """Wait for the build of ``target`` (started by :func:`_native_builds` or here) and return the binary."""
    p = _start_build(target)
    log, _ = p.communicate()
    if p.returncode != 0:
        pytest.fail(f"android_harness/build.sh {target} failed:\n{log}", pytrace=False)
    return BUILD_ROOT / target / "bin" / "edgetam_bench"


def _arm64_problem() -> str | None:
    problem = _cmake_ok()
    if not problem and not shutil.which("aarch64-linux-gnu-g++"):
        problem = "the arm64 cross compiler is missing: apt-get install g++-aarch64-linux-gnu"
    if not problem and not shutil.which("qemu-aarch64"):
        problem = "qemu-aarch64 is missing: apt-get install qemu-user"
    if not problem and not (QEMU_SYSROOT / "lib" / "ld-linux-aarch64.so.1").exists():
        problem = "the aarch64 C/C++ runtime is missing: apt-get install g++-aarch64-linux-gnu"
    return problem


@pytest.fixture(scope="session", autouse=True)
def _native_builds():
    """Start both edgetam_bench builds in the background as the first test here begins, so they
    compile while the session export (``bench_pack``, requested before the binaries) runs."""
    if _cmake_ok() is None:
        _start_build("x86_64")
        if _arm64_problem() is None:
            _start_build("arm64")
    yield
    for p in _BUILDS.values():
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="session")
def host_bench() -> Path:
    """edgetam_bench for this machine (built once; incremental afterwards)."""
    problem = _cmake_ok()
    if problem:
        unavailable(problem)
    return _build("x86_64")


QEMU_SYSROOT = Path("/usr/aarch64-linux-gnu")
# A phone-class ARMv8.2 core (NEON, fp16 arithmetic, dot product; no SVE/SME). qemu's default "max"
# CPU advertises SVE and SME, XNNPACK then picks kernels whose emulation is far slower: the
# tracked-frame decoder + memory encoder calls took 950 s under "max" and 37 s under cortex-a76.
QEMU_CPU = "cortex-a76"


@pytest.fixture(scope="session")
def arm64_bench() -> list[str]:
    """The command prefix running the aarch64 edgetam_bench under qemu-aarch64."""
    problem = _arm64_problem()
    if problem:
        unavailable(problem)
    binary = _build("arm64")
    return ["qemu-aarch64", "-cpu", QEMU_CPU, "-L", str(QEMU_SYSROOT), str(binary)]


@pytest.fixture(scope="session")
def bench_pack(exported_bundles, bench_capture, tmp_path_factory) -> Path:
    """The real bench pack (edgetam_export.bench.pack) of the session export's executorch fp32
    artifacts: prompted and tracked frames for 1 and 3 objects, warmup 1, iterations 3."""
    from edgetam_export.bench.pack import write_pack

    out = tmp_path_factory.mktemp("bench") / "pack"
    return write_pack(
        exported_bundles["main"], "executorch", "fp32", out, capture=bench_capture, warmup=1, iterations=3
    )


# The graphs run under qemu: the ARM XNNPACK conv, GEMM and attention kernels of the two small
# graphs (~11% of a tracked frame's FLOPs). Emulation runs far slower than native, so the whole
# frame (image encoder and memory attention too) is left to the manual command in
# android_harness/README.md.
QEMU_GRAPHS = ("prompt_decoder", "memory_encoder")


def _small_graphs_pack(exported_bundles, bench_capture, tmp_path_factory, precision: str) -> Path:
    """The ``precision`` pack cut to the :data:`QEMU_GRAPHS` calls of one tracked frame (each once)."""
    import copy

    from edgetam_export.bench.pack import write_pack

    frame = next(f for f in bench_capture.frames if f["name"] == "tracked_1obj")
    small = copy.copy(bench_capture)
    small.frames = [
        {
            **frame,
            "name": "tracked_1obj_small_graphs",
            "calls": [k for k in frame["calls"] if bench_capture.calls[k].graph in QEMU_GRAPHS],
        }
    ]
    out = tmp_path_factory.mktemp("bench") / f"tracked_1obj_small_graphs_{precision}"
    return write_pack(
        exported_bundles["main"],
        "executorch",
        precision,
        out,
        capture=small,
        warmup=0,
        iterations=1,
        frames=["tracked_1obj_small_graphs"],
    )


@pytest.fixture(scope="session")
def tracked_frame_pack(exported_bundles, bench_capture, tmp_path_factory) -> Path:
    """The executorch fp32 pack cut to the :data:`QEMU_GRAPHS` calls of one tracked frame, for the emulator."""
    return _small_graphs_pack(exported_bundles, bench_capture, tmp_path_factory, "fp32")


@pytest.fixture(scope="session")
def tracked_frame_pack_fp16(exported_bundles, bench_capture, tmp_path_factory) -> Path:
    """The same cut of the executorch fp16 pack: ARMv8.2 fp16 arithmetic (XNNPACK accumulates fp16
    GEMMs in fp16 there), which x86 hosts without AVX512-FP16 never execute."""
    return _small_graphs_pack(exported_bundles, bench_capture, tmp_path_factory, "fp16")


def run_bench(cmd, pack: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs edgetam_bench (``cmd``: binary path or command prefix list) on ``pack``."""
    prefix = [str(cmd)] if isinstance(cmd, (str, Path)) else list(cmd)
    return subprocess.run(
        [*prefix, "--pack", str(pack), "--out", str(out), *args], capture_output=True, text=True
    )


def linked_copy(pack: Path, dest: Path) -> Path:
    """A copy of ``pack`` whose files are symlinks (replace one to corrupt it cheaply)."""
    for f in pack.rglob("*"):
        target = dest / f.relative_to(pack)
        if f.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    return dest
