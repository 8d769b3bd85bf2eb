"""Backend exporters (Core ML, ExecuTorch, ONNX) behind one interface, and bundle writing.

Installed as ``edgetam_export.exporters``. Entry points: :func:`get_exporter`,
:func:`available_exporters`, :func:`~edgetam_export.exporters.bundle.write_bundle`,
:func:`~edgetam_export.exporters.bundle.load_bundle`.
"""

from ..runtime.base import MissingBackendError
from .base import (
    PRECISIONS,
    ArtifactReport,
    Exporter,
    ExportError,
    available_exporters,
    fp16_compute,
    get_exporter,
    register_exporter,
)

__all__ = [
    "PRECISIONS",
    "ArtifactReport",
    "ExportError",
    "Exporter",
    "MissingBackendError",
    "available_exporters",
    "fp16_compute",
    "get_exporter",
    "register_exporter",
]
