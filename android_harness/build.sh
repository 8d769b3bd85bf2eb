#!/usr/bin/env bash
# Builds edgetam_bench for the host (x86_64) and/or arm64 (aarch64 Linux, run under qemu) into
# build/android_harness/<arch>/{bin,lib}: the binary plus the ExecuTorch shared libraries it
# loads from $ORIGIN/../lib, so the folder can be copied to a device as is.
#
#   android_harness/build.sh [x86_64|arm64|all]      (default: all)
#
# PYTHON (default .venv/bin/python) must have the pinned executorch wheel and cmake>=3.28
# (pip install cmake). arm64 also needs g++-aarch64-linux-gnu and nlohmann-json3-dev; the
# aarch64 build of the same executorch wheel is downloaded once into build/android_harness/.
# Rebuilding is incremental: a second call with nothing changed does no work.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/android_harness"
OUT="${BUILD_ROOT:-$ROOT/build/android_harness}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
TARGETS="${1:-all}"

die() { echo "android_harness/build.sh: $*" >&2; exit 2; }

[ -x "$PYTHON" ] || die "no Python at $PYTHON (run 'make venv' or set PYTHON)"
CMAKE="$(dirname "$PYTHON")/cmake"
[ -x "$CMAKE" ] || CMAKE="$(command -v cmake || true)"
[ -n "$CMAKE" ] || die "cmake not found: $PYTHON -m pip install 'cmake>=3.28'"
"$CMAKE" -P /dev/stdin <<<'if(CMAKE_VERSION VERSION_LESS 3.28)
  message(FATAL_ERROR "cmake ${CMAKE_VERSION} is older than 3.28")
endif()' || die "$CMAKE is older than 3.28: $PYTHON -m pip install 'cmake>=3.28'"

ET_VERSION="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("executorch"))')"
HOST_ET="$("$PYTHON" -c 'import executorch; print(list(executorch.__path__)[0])')"
JOBS="$(nproc 2>/dev/null || echo 2)"

# build <arch> <executorch root> [extra cmake args...]
build() {
  local arch="$1" et="$2"
  shift 2
  local bdir="$OUT/cmake-$arch" prefix="$OUT/$arch"
  if [ ! -f "$bdir/CMakeCache.txt" ]; then
    "$CMAKE" -S "$SRC" -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DEXECUTORCH_ROOT="$et" "$@" >/dev/null
  fi
  "$CMAKE" --build "$bdir" -j "$JOBS" >/dev/null
  "$CMAKE" --install "$bdir" --prefix "$prefix" >/dev/null
  mkdir -p "$prefix/lib"
  for lib in "$et"/lib/libexecutorch*.so; do
    case "$(basename "$lib")" in
      *openvino* | *qnn* | *quantized*) ;;  # delegates/kernels edgetam_bench does not link
      *) cmp -s "$lib" "$prefix/lib/$(basename "$lib")" || cp "$lib" "$prefix/lib/" ;;
    esac
  done
  echo "$prefix/bin/edgetam_bench"
}

# The aarch64 build of the same executorch wheel: only its lib/, include/ and share/ are used.
arm64_executorch() {
  local dest="$OUT/executorch-aarch64-$ET_VERSION"
  if [ ! -f "$dest/.complete" ]; then
    mkdir -p "$OUT/wheels"
    local whl
    whl="$(ls "$OUT"/wheels/executorch-"$ET_VERSION"-*aarch64*.whl 2>/dev/null | head -1 || true)"
    if [ -z "$whl" ]; then
      "$PYTHON" -m pip download --quiet --platform manylinux_2_28_aarch64 --only-binary=:all: --no-deps \
        "executorch==$ET_VERSION" -d "$OUT/wheels" >&2 || die "could not download the aarch64 executorch==$ET_VERSION wheel"
      whl="$(ls "$OUT"/wheels/executorch-"$ET_VERSION"-*aarch64*.whl | head -1)"
    fi
    rm -rf "$dest"
    "$PYTHON" - "$whl" "$dest" <<'PY'
import sys, zipfile
whl, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith(("executorch/lib/", "executorch/include/", "executorch/share/"))])
PY
    touch "$dest/.complete"
  fi
  echo "$dest/executorch"
}

case "$TARGETS" in
  x86_64 | arm64 | all) ;;
  *) die "unknown target '$TARGETS' (x86_64, arm64 or all)" ;;
esac
if [ "$TARGETS" != arm64 ]; then
  build x86_64 "$HOST_ET"
fi
if [ "$TARGETS" != x86_64 ]; then
  command -v aarch64-linux-gnu-g++ >/dev/null || die "aarch64-linux-gnu-g++ not found: apt-get install g++-aarch64-linux-gnu"
  build arm64 "$(arm64_executorch)" -DCMAKE_TOOLCHAIN_FILE="$SRC/cmake/aarch64-linux-gnu.cmake"
fi
