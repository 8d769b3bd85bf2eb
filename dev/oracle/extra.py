"""Writes the extra golden scenarios: one ``<name>.npz`` per scenario plus the ``scenarios.json`` index.

Scenarios sharing weights (salt + override) are run on one predictor, built once.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from .env import GENERATOR
from .patches import build_official_predictor
from .replay import run_scenario
from .scenarios import SCENARIOS


def _array_doc(arrays: dict[str, np.ndarray]) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()}


def run_extra(names: list[str], out_dir: Path, threads: int = 2) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "scenarios.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"scenarios": {}}
    predictors: dict[str, object] = {}
    # group scenarios that share weights so each model is built once (stable order otherwise)
    names = sorted(
        names,
        key=lambda n: json.dumps(
            [SCENARIOS[n]["salt"], SCENARIOS[n].get("weights_override")], sort_keys=True
        ),
    )
    for name in names:
        spec = SCENARIOS[name]
        wkey = json.dumps([spec["salt"], spec.get("weights_override")], sort_keys=True)
        if wkey not in predictors:
            predictors.clear()
            predictors[wkey] = build_official_predictor(
                spec["salt"], threads=threads, weights_override=spec.get("weights_override")
            )
        t0 = time.time()
        arrays, summary = run_scenario(predictors[wkey], name, spec)
        dt = time.time() - t0
        path = out_dir / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        entry = copy.deepcopy(spec)
        entry.update(
            file=path.name,
            video_hw=spec.get("video_hw", [1024, 1024]),
            coordinates="points/boxes in video pixels (x, y); video_hw=(H, W); with 1024x1024 these are 1024-px model coordinates",
            arrays=_array_doc(arrays),
            results=summary,
            runtime_s=round(dt, 1),
            file_bytes=path.stat().st_size,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        index["scenarios"][name] = entry
        print(f"{name}: {dt:.1f}s, {path.stat().st_size / 1e6:.2f} MB, {len(arrays)} arrays", flush=True)
    index.update(
        generator=GENERATOR,
        patches=[
            "P1 memory features fp32",
            "P2 fill_hole_area=0",
            "P3 perceiver forward_2d per object",
            "P4 pretrained=False",
            "P5 tensor frames",
        ],
        torch=torch.__version__,
        threads=threads,
        weights_recipe="edgetam-synth-v1 (edgetam_export.models.synthetic_state_dict(salt))",
        frames="edgetam_export.testing.procedural_frame(t) -> preprocess",
    )
    index["scenarios"] = dict(sorted(index["scenarios"].items()))
    index_path.write_text(json.dumps(index, indent=1, default=_json_default) + "\n")
    return index


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and o != o:
        return None
    raise TypeError(type(o))
