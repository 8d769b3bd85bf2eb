"""The oracle's inputs from this project: synthetic weights, procedural frames/masks, procedural prompt positions.

The only module of the oracle that imports ``edgetam_export`` (the oracle venv installs it with
``pip install --no-deps -e .``).
"""

from __future__ import annotations

import numpy as np
import torch

_FRAME_CACHE: dict[int, torch.Tensor] = {}


def synthetic_weights(salt: int = 0, override: dict | None = None):
    """synthetic_state_dict(salt), optionally with ``{key: {"add": c}}`` offsets (float32, added last)."""
    from edgetam_export.models import synthetic_state_dict

    sd = synthetic_state_dict(salt)
    for key, how in (override or {}).items():
        ((kind, c),) = how.items()
        if kind != "add":
            raise ValueError(f"unknown weights override {how}")
        sd[key] = sd[key] + torch.tensor(c, dtype=torch.float32)
    return sd


def frames_tensor(num_frames: int) -> torch.Tensor:
    """(T, 3, 1024, 1024) fp32 preprocessed procedural frames 0..T-1 (FRAMES.md)."""
    from edgetam_export.preprocessing import preprocess
    from edgetam_export.procedural import procedural_frame

    for t in range(num_frames):
        if t not in _FRAME_CACHE:
            _FRAME_CACHE[t] = torch.from_numpy(preprocess(procedural_frame(t)))[0]
    return torch.stack([_FRAME_CACHE[t] for t in range(num_frames)])


def mask_from_source(src: dict) -> np.ndarray:
    """{"visible_mask": "ellipse", "frame": 3} | {"shape_mask": ...} | {"empty": [H, W]} -> bool."""
    from edgetam_export.procedural import shape_masks, visible_masks

    if "visible_mask" in src:
        return visible_masks(src["frame"])[src["visible_mask"]]
    if "shape_mask" in src:
        return shape_masks(src["frame"])[src["shape_mask"]]
    if "empty" in src:
        return np.zeros(tuple(src["empty"]), dtype=bool)
    raise ValueError(f"unknown mask source {src}")


# Prompt positions that follow the procedural objects over time (1024-px model coordinates, x then y).
# scenarios.json names them as {"procedural": "<name>", "t": <frame>}.
def disk_centre(t: int) -> list[float]:
    """Centre (x, y) of the moving disk on frame t."""
    return [260.0 + 11 * t, 380.0 + 5 * t]


def square_box(t: int, pad: int = 10) -> list[float]:
    """Box (x0, y0, x1, y1) around the moving square on frame t, padded by ``pad`` px."""
    cx, cy, h = 700 - 8 * t, 260 + 9 * t, 120
    return [float(cx - h - pad), float(cy - h - pad), float(cx + h + pad), float(cy + h + pad)]


def ellipse_box(t: int, pad: int = 10) -> list[float]:
    """Box (x0, y0, x1, y1) around the moving ellipse on frame t, padded and clipped to the image."""
    cx, cy = 480 + 5 * t, 820 - 7 * t
    return [
        float(cx - 200 - pad),
        float(cy - 100 - pad),
        float(min(cx + 200 + pad, 1023)),
        float(min(cy + 100 + pad, 1023)),
    ]


PROCEDURAL_POSITIONS = {"disk_centre": disk_centre, "square_box": square_box, "ellipse_box": ellipse_box}
