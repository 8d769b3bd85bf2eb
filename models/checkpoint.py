"""Loading official EdgeTAM checkpoints strictly, with errors that list what is wrong."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..fileio import file_sha256  # noqa: F401  (re-exported: checkpoint provenance)
from .checkpoint_check import CheckpointError, validate_state_dict


def load_checkpoint(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Read an official checkpoint (``{"model": state_dict}`` ``.pt``) or accept a state dict.

    Files are read with ``torch.load(..., weights_only=True)``; the result is validated
    against the official layout before any module sees it. A Hugging Face checkpoint (a folder
    with ``model.safetensors``, or a ``.safetensors`` file) goes through
    :func:`edgetam_export.models.hf_checkpoint.load_hf_checkpoint`.
    """
    if not isinstance(source, Mapping):
        from .hf_checkpoint import is_hf_checkpoint, load_hf_checkpoint

        if is_hf_checkpoint(source):
            return load_hf_checkpoint(source)
    if isinstance(source, Mapping):
        sd = dict(source)
    else:
        path = Path(source)
        if path.is_dir():
            raise CheckpointError(_folder_message(path))
        if not path.is_file():
            raise CheckpointError(f"checkpoint file not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"could not read checkpoint {path}: {e}") from e
        if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
            sd = dict(obj["model"])
        elif isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values()):
            sd = dict(obj)
        else:
            raise CheckpointError(f"{path}: expected {{'model': state_dict}} or a state dict")
    validate_state_dict(sd)
    return sd


def _folder_message(path: Path) -> str:
    """One line for a folder that is not a checkpoint: what it holds and what is expected."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} entries)" if len(names) > 8 else "")
    return (
        f"checkpoint {path} is a folder (holds: {shown or 'nothing'}); expected the official EdgeTAM "
        "checkpoint file (edgetam.pt, a {'model': state_dict} .pt) or a Hugging Face EdgeTAM folder "
        "(config.json + model.safetensors)"
    )
