"""A third-party EdgeTAM client on ONNX Runtime: a bundle, two frames and a click -> frame 1's mask.

Uses only numpy, onnxruntime, the standard library and the bundle (nothing from edgetam_export;
the host logic is in ``_host_logic.py`` next to this file, see docs/BUNDLE_FORMAT.md)::

    python examples/consumer_onnx.py BUNDLE frame0.npy frame1.npy --point 260,380 --out mask1.npy

Verifies every file's sha256 against the manifest (exit code 2 and the file's name on stderr if
one does not match), prompts frame 0 with the click, tracks frame 1 and saves its 256x256
low-resolution mask logits; prints a JSON summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from _host_logic import input_shapes, io_names, main


def make_run(root: Path, manifest: dict, artifacts: dict[str, dict]):
    """``run(graph, feeds) -> outputs``: one CPU InferenceSession per graph, created on first use."""
    sessions: dict[str, ort.InferenceSession] = {}

    def run(graph: str, feeds: dict) -> dict:
        if graph not in sessions:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            sessions[graph] = ort.InferenceSession(
                str(root / artifacts[graph]["path"]), so, providers=["CPUExecutionProvider"]
            )
        inputs, outputs = io_names(manifest, graph)
        dtype = np.dtype(artifacts[graph].get("io_dtype", "float32"))
        shapes = input_shapes(manifest, graph)
        arrays = {n: np.ascontiguousarray(feeds[n], dtype=dtype).reshape(shapes[n]) for n in inputs}
        result = sessions[graph].run(outputs, arrays)
        return {n: np.asarray(o, np.float32) for n, o in zip(outputs, result, strict=True)}

    return run


if __name__ == "__main__":
    sys.exit(main("onnx", make_run))
