"""From-scratch PyTorch reference of EdgeTAM, split into statically shaped export submodules.

Installed as ``edgetam_export.models``. Public entry points: :func:`build_edgetam`,
:func:`synthetic_state_dict`, :func:`export_submodules`.
"""

from .checkpoint import CheckpointError, load_checkpoint, validate_state_dict
from .contracts import Contract, ExportModule, TensorSpec
from .synthetic_weights import state_dict_sha256, synthetic_state_dict


def __getattr__(name):
    # The container and wrappers import torch modules of every part; load them on demand so
    # that weight/layout utilities stay importable on their own.
    if name in ("EdgeTAM", "build_edgetam"):
        from . import edgetam

        return getattr(edgetam, name)
    if name in ("export_submodules", "SUBMODULE_NAMES"):
        from . import submodules

        return getattr(submodules, name)
    raise AttributeError(name)


__all__ = [
    "SUBMODULE_NAMES",
    "CheckpointError",
    "Contract",
    "EdgeTAM",
    "ExportModule",
    "TensorSpec",
    "build_edgetam",
    "export_submodules",
    "load_checkpoint",
    "state_dict_sha256",
    "synthetic_state_dict",
    "validate_state_dict",
]
