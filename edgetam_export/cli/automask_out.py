"""What ``edgetam-export segment IMAGE --auto`` writes: one PNG per mask, a colour overlay, masks.json; built in a temp folder, then renamed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..automask import AutoMaskOptions, generate_masks
from ..fileio import remove_path, replace_path, temp_sibling, write_json_atomic
from ..overlay import overlay_masks
from ..video import write_png


def write_auto_masks(
    runtime, image: np.ndarray, image_path: Path, weights: str, out: Path, options: AutoMaskOptions
) -> dict:
    """Run :func:`generate_masks` and write ``out/`` atomically: masks/mask_NNN.png (NNN by score rank), overlay.png, masks.json.

    masks.json: image, weights, runtime, options, seconds, and per mask its file, score
    (predicted IoU), box [x0, y0, x1, y1] (inclusive pixels) and area.
    """
    t = time.perf_counter()
    res = generate_masks(runtime, image, options)
    seconds = time.perf_counter() - t
    tmp = temp_sibling(out)
    try:
        (tmp / "masks").mkdir(parents=True)
        entries = []
        for k, (m, s, b) in enumerate(zip(res["masks"], res["scores"], res["boxes"], strict=True)):
            name = f"masks/mask_{k:03d}.png"
            write_png(tmp / name, m.astype(np.uint8) * 255)
            entries.append(
                {"file": name, "score": float(s), "box": [int(v) for v in b], "area": int(m.sum())}
            )
        stack = np.stack(res["masks"]) if res["masks"] else np.zeros((0, *image.shape[:2]), bool)
        write_png(tmp / "overlay.png", overlay_masks(image, stack))
        summary = {
            "image": str(image_path),
            "weights": weights,
            "runtime": runtime.name,
            "options": options.__dict__,
            "seconds": seconds,
            "masks": entries,
        }
        write_json_atomic(tmp / "masks.json", summary)
        out.parent.mkdir(parents=True, exist_ok=True)
        replace_path(tmp, out)
    except BaseException:
        remove_path(tmp)
        raise
    return summary
