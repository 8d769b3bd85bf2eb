"""Runtimes that execute the four EdgeTAM graphs: PyTorch reference, ONNX Runtime, ExecuTorch, Core ML."""

from .base import MissingBackendError, Runtime

__all__ = ["MissingBackendError", "Runtime"]
