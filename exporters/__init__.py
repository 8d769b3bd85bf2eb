"""Backend exporters (Core ML, ExecuTorch, ONNX) behind one interface and registry.

Installed as ``edgetam_export.exporters``. Entry points: :func:`get_exporter`,
:func:`available_exporters`. Bundles (several artifacts plus a manifest) are written by
:mod:`edgetam_export.bundle`.
"""

from ..backends import FLOAT_PRECISIONS, PRECISIONS, QUANTIZED_PRECISIONS, MissingBackendError
from ..models.precision import fp16_compute
from .base import (
    ArtifactReport,
    Exporter,
    ExportError,
    available_exporters,
    get_exporter,
    register_exporter,
)

__all__ = [
    "FLOAT_PRECISIONS",
    "PRECISIONS",
    "QUANTIZED_PRECISIONS",
    "ArtifactReport",
    "ExportError",
    "Exporter",
    "MissingBackendError",
    "available_exporters",
    "fp16_compute",
    "get_exporter",
    "register_exporter",
]
