"""STAND-IN bench pack writer for the android_harness tests only: cuts a pack in the exact
``benchmarks/schema/pack.md`` v1 layout from an ExecuTorch bundle.

To be replaced by the real pack writer (``edgetam_export.bench.pack``) when it lands; the pack
format is the fixed contract, so the tests only need :func:`make_pack` swapped for it.

Feeds are the realistic reference-chained inputs of ``verify.realistic_cases`` (procedural
frame, a click on the disk, its mask, a two-slot memory bank) and the expected outputs are the
PyTorch reference's outputs on those feeds, so a runner's numerics prove it computes what
PyTorch computes. Tolerances come from the one tolerance table keyed by (executorch, precision).
Image input (1, 3, 1024, 1024) float32; every other tensor as in the bundle's contracts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from edgetam_export.exporters.verify import OUTPUT_KINDS, reference_and_cases
from edgetam_export.tolerances import tolerance

GRAPHS = ("image_encoder", "prompt_decoder", "memory_encoder", "memory_attention")

# realistic case name -> pack call key
CALLS = {
    ("image_encoder", "frame0"): "steady_1obj/image_encoder",
    ("prompt_decoder", "click"): "steady_1obj/prompt_decoder/obj0",
    ("memory_encoder", "tracked"): "steady_1obj/memory_encoder/obj0",
    ("memory_attention", "frame1"): "steady_1obj/memory_attention/obj0",
    ("memory_encoder", "prompted"): "prompted_1obj/memory_encoder/obj0",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_pack(bundle, out: Path, precision: str = "fp32", warmup: int = 1, iterations: int = 3) -> Path:
    """Write a pack for ``bundle``'s executorch artifacts at ``precision`` to ``out``; return ``out``."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "artifacts").mkdir(parents=True)
    _, cases = reference_and_cases(bundle, graphs=GRAPHS)

    index = {
        "format": "edgetam-bench-pack",
        "version": 1,
        "backend": "executorch",
        "precision": precision,
        "bundle_digest": "sha256:" + _sha256(bundle.root / "manifest.json"),
        "weights": {"kind": "synthetic", "salt": int(bundle.weights.get("salt", 0))},
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool_versions": dict(bundle.manifest.get("tool_versions", {})),
        "artifacts": {},
        "tensors": {},
    }
    for graph in GRAPHS:
        src = bundle.artifact_path("executorch", graph, precision)
        rel = f"artifacts/{graph}.{precision}.pte"
        shutil.copyfile(src, out / rel)
        c = bundle.contracts[graph]
        index["artifacts"][graph] = {
            "file": rel,
            "sha256": _sha256(out / rel),
            "method": "forward",
            "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in c.inputs],
            "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in c.outputs],
        }

    def tensor(key: str, value: np.ndarray, dtype: str) -> str:
        arr = np.ascontiguousarray(value, dtype=np.dtype(dtype).newbyteorder("<"))
        rel = f"tensors/{key}.bin"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(arr.tobytes())
        index["tensors"][key] = {
            "file": rel,
            "dtype": dtype,
            "shape": list(arr.shape),
            "nbytes": arr.nbytes,
            "sha256": _sha256(out / rel),
        }
        return key

    calls = {}
    for case in cases:
        key = CALLS[(case.graph, case.case)]
        c = bundle.contracts[case.graph]
        calls[key] = {
            "graph": case.graph,
            "inputs": {s.name: tensor(f"{key}/in/{s.name}", case.feeds[s.name], s.dtype) for s in c.inputs},
            "expected": {
                s.name: tensor(f"{key}/out/{s.name}", case.reference[s.name], s.dtype) for s in c.outputs
            },
        }
    steady = [
        "steady_1obj/image_encoder",
        "steady_1obj/memory_attention/obj0",
        "steady_1obj/prompt_decoder/obj0",
        "steady_1obj/memory_encoder/obj0",
    ]
    plan = {
        "format": "edgetam-bench-plan",
        "version": 1,
        "warmup": warmup,
        "iterations": iterations,
        "threads": None,
        "compute_units": ["all"],
        "calls": calls,
        "graph_benchmarks": {
            "image_encoder": "steady_1obj/image_encoder",
            "prompt_decoder": "steady_1obj/prompt_decoder/obj0",
            "memory_encoder": "steady_1obj/memory_encoder/obj0",
            "memory_attention": "steady_1obj/memory_attention/obj0",
        },
        # The stand-in has one captured image; the prompted frame reuses it.
        "frames": [
            {
                "name": "prompted_1obj",
                "objects": 1,
                "kind": "prompted",
                "calls": [
                    "steady_1obj/image_encoder",
                    "steady_1obj/prompt_decoder/obj0",
                    "prompted_1obj/memory_encoder/obj0",
                ],
            },
            {"name": "tracked_1obj", "objects": 1, "kind": "tracked", "calls": steady},
            {"name": "tracked_3obj", "objects": 3, "kind": "tracked", "calls": [steady[0], *steady[1:] * 3]},
        ],
        "tolerances": {
            graph: {
                s.name: {
                    "kind": OUTPUT_KINDS[s.name],
                    "rel_max_abs": tolerance("executorch", precision, OUTPUT_KINDS[s.name]).rel_max_abs,
                    "min_cosine": tolerance("executorch", precision, OUTPUT_KINDS[s.name]).min_cosine,
                }
                for s in bundle.contracts[graph].outputs
            }
            for graph in GRAPHS
        },
    }
    (out / "index.json").write_text(json.dumps(index, indent=2))
    (out / "plan.json").write_text(json.dumps(plan, indent=2))
    return out
