"""A third-party EdgeTAM client on ExecuTorch: a bundle, two frames and a click -> frame 1's mask.

Uses only numpy, ``executorch.runtime`` (Runtime.get, load_program, load_method, execute), the
standard library and the bundle (nothing from edgetam_export; the host logic is in
``_host_logic.py`` next to this file, see docs/BUNDLE_FORMAT.md)::

    python examples/consumer_executorch.py BUNDLE frame0.npy frame1.npy --point 260,380 --out mask1.npy

The ExecuTorch Python bindings take and return ``torch.Tensor`` (torch is a dependency of the
executorch package), so torch is used here only to wrap numpy arrays; on a device the same
``.pte`` files run from the C++/Swift/Kotlin ExecuTorch runtimes with plain float buffers.
Inputs go positionally in the contract's input order; outputs come back in its output order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from _host_logic import input_shapes, io_names, main
from executorch.runtime import Runtime


def make_run(root: Path, manifest: dict, artifacts: dict[str, dict]):
    """``run(graph, feeds) -> outputs``: each program's ``forward`` loaded on first use."""
    runtime = Runtime.get()
    programs: dict = {}
    methods: dict = {}

    def run(graph: str, feeds: dict) -> dict:
        if graph not in methods:
            programs[graph] = runtime.load_program(root / artifacts[graph]["path"])
            methods[graph] = programs[graph].load_method("forward")
        inputs, outputs = io_names(manifest, graph)
        dtype = np.dtype(artifacts[graph].get("io_dtype", "float32"))
        shapes = input_shapes(manifest, graph)
        tensors = [
            torch.from_numpy(np.ascontiguousarray(feeds[n], dtype=dtype).reshape(shapes[n])) for n in inputs
        ]
        result = methods[graph].execute(tensors)
        return {n: o.detach().float().numpy().copy() for n, o in zip(outputs, result, strict=True)}

    return run


if __name__ == "__main__":
    sys.exit(main("executorch", make_run))
