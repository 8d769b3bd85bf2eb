"""The weights behind a bundle: provenance for the manifest, and the reference model rebuilt from it."""

from __future__ import annotations

import os
from pathlib import Path

from ..fileio import file_sha256
from ..models.checkpoint import load_checkpoint
from ..models.edgetam import EdgeTAM, build_edgetam
from ..models.hf_checkpoint import checkpoint_file
from ..models.synthetic_weights import RECIPE, state_dict_sha256, synthetic_state_dict
from .manifest import Bundle, BundleError


def weights_info(checkpoint: str | os.PathLike | None, salt: int | None, state_dict) -> dict:
    """Provenance of the weights for the manifest (checkpoint file sha256, or synthetic recipe + salt)."""
    info: dict = {"state_dict_sha256": state_dict_sha256(state_dict)}
    if checkpoint is not None:
        p = Path(checkpoint).resolve()
        info = {"source": "checkpoint", "path": str(p), "sha256": file_sha256(checkpoint_file(p)), **info}
    else:
        info = {"source": "synthetic", "recipe": RECIPE, "salt": int(salt or 0), **info}
    return info


def build_reference(checkpoint: str | os.PathLike | None = None, salt: int | None = None):
    """``(EdgeTAM model, state_dict, weights_info)`` from a checkpoint path or synthetic weights of ``salt``."""
    if checkpoint is not None and salt is not None:
        raise ValueError("pass either a checkpoint or a synthetic salt, not both")
    sd = load_checkpoint(checkpoint) if checkpoint is not None else synthetic_state_dict(int(salt or 0))
    model = build_edgetam(sd)
    return model, sd, weights_info(checkpoint, salt, sd)


def bundle_state_dict(bundle: Bundle, checkpoint: str | os.PathLike | None = None) -> dict:
    """The state dict a bundle was exported from, rebuilt from its recorded weights.

    Synthetic weights are regenerated from the recorded salt; a checkpoint is read from
    ``checkpoint`` or else the recorded path. Either way its sha256 must equal the manifest's.
    """
    w = bundle.weights
    source = w.get("source")
    if source == "synthetic" and checkpoint is None:
        sd = synthetic_state_dict(int(w.get("salt", 0)))
    elif source == "checkpoint" or checkpoint is not None:
        path = Path(checkpoint) if checkpoint is not None else Path(str(w.get("path", "")))
        if not checkpoint_file(path).is_file():
            raise BundleError(
                f"the bundle was exported from checkpoint {w.get('path')!r}, which is not readable here; "
                "pass --checkpoint PATH"
            )
        if "sha256" in w and file_sha256(checkpoint_file(path)) != w["sha256"]:
            raise BundleError(
                f"checkpoint {path} is not the one this bundle was exported from (sha256 differs)"
            )
        sd = load_checkpoint(path)
    else:
        raise BundleError(f"manifest records unknown weights source {source!r}")
    expected = w.get("state_dict_sha256")
    if expected and state_dict_sha256(sd) != expected:
        raise BundleError("rebuilt weights differ from the bundle's (state_dict_sha256 mismatch)")
    return sd


def bundle_reference(bundle: Bundle, checkpoint: str | os.PathLike | None = None) -> EdgeTAM:
    """The PyTorch reference :class:`EdgeTAM` built from the weights the bundle was exported from."""
    return build_edgetam(bundle_state_dict(bundle, checkpoint))
