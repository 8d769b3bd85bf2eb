"""Checking a state dict against the official EdgeTAM layout, with errors that list what is wrong."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .checkpoint_layout import checkpoint_layout


class CheckpointError(ValueError):
    """A checkpoint that does not match the official EdgeTAM layout."""


def _describe(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def validate_state_dict(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointError` listing missing, unexpected and mis-shaped keys."""
    layout = {s.key: s for s in checkpoint_layout()}
    missing = [k for k in layout if k not in state_dict]
    unexpected = [k for k in state_dict if k not in layout]
    misshaped = [
        f"{k} (expected {list(layout[k].shape)}, got {list(v.shape)})"
        for k, v in state_dict.items()
        if k in layout and tuple(v.shape) != layout[k].shape
    ]
    if missing or unexpected or misshaped:
        lines = [f"checkpoint does not match the EdgeTAM layout ({len(layout)} keys expected):"]
        lines += key_report_lines(missing, unexpected, misshaped)
        raise CheckpointError("\n".join(lines))


def key_report_lines(missing: list, unexpected: list, misshaped: list) -> list[str]:
    """The indented missing / unexpected / mis-shaped lines of a checkpoint error (empty groups left out)."""
    groups = (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
    return [f"  {what} keys ({len(keys)}): {_describe(keys)}" for what, keys in groups if keys]
