# CMake toolchain file: cross-compile for 64-bit ARM Linux (glibc) with Debian's
# g++-aarch64-linux-gnu. Run the result with qemu-aarch64 -L /usr/aarch64-linux-gnu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "cross tool prefix")
set(CMAKE_C_COMPILER ${CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${CROSS_PREFIX}g++)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Packages: the target's (the aarch64 ExecuTorch wheel via EXECUTORCH_ROOT) and header-only
# host packages such as nlohmann_json.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
