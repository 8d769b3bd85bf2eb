"""Backend names, precisions and Core ML compute units: the one list each, shared by exporters, runtimes and the CLI."""

from __future__ import annotations

BACKENDS = ("onnx", "executorch", "coreml")
PRECISIONS = ("fp32", "fp16")

# Core ML compute units: our option name -> coremltools.ComputeUnit member name.
COREML_COMPUTE_UNITS = {
    "all": "ALL",
    "cpu_only": "CPU_ONLY",
    "cpu_and_gpu": "CPU_AND_GPU",
    "cpu_and_ne": "CPU_AND_NE",
}


class MissingBackendError(RuntimeError):
    """An optional backend package is not installed (the message says what to install)."""
