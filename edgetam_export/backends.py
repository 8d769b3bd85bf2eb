"""Backend names, precisions (float and quantized), Core ML compute units and ONNX model formats: the one list each, shared by exporters, runtimes and the CLI."""

from __future__ import annotations

BACKENDS = ("onnx", "executorch", "coreml")
# Every precision an artifact can have: float compute (fp32, fp16) or quantized (int8: everything
# quantizable quantized; mixed: a per-graph recipe keeps the sensitive parts float). All keep
# float32 graph inputs/outputs, so the contracts and runtimes are the same for every precision.
PRECISIONS = ("fp32", "fp16", "int8", "mixed")
FLOAT_PRECISIONS = ("fp32", "fp16")
QUANTIZED_PRECISIONS = ("int8", "mixed")

# Core ML compute units: our option name -> coremltools.ComputeUnit member name.
COREML_COMPUTE_UNITS = {
    "all": "ALL",
    "cpu_only": "CPU_ONLY",
    "cpu_and_gpu": "CPU_AND_GPU",
    "cpu_and_ne": "CPU_AND_NE",
}

# Files an ONNX bundle runs from: the .onnx artifacts, or their ORT-format .ort companions
# (what ORT's mobile/minimal builds load).
ONNX_MODEL_FORMATS = ("onnx", "ort")


class MissingBackendError(RuntimeError):
    """An optional backend package is not installed (the message says what to install)."""
