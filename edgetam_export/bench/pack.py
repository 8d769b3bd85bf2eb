"""Bench packs: capture a PyTorch-reference tracking run and write one (backend, precision) pack folder.

A pack (format: ``benchmarks/schema/pack.md``) holds the four artifacts, the exact feeds and
expected outputs of every graph call of a prompted frame and of a steady-state tracked frame
(1 and 3 objects), and the plan. Expected outputs are the reference wrappers' outputs (the
modules that were exported) on those feeds, so each call is judged on its own.

Additive fields beyond pack.md v1 (runners may ignore them): ``index.json`` ``reference``
(the bundle's weights provenance and export options, to rebuild the PyTorch baseline) and
``artifacts.<graph>.contract`` (the full contract dict); ``plan.json`` ``bank`` (how full the
steady-state frame's memory bank is).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._deps import (
    OUTPUT_KINDS,
    Bundle,
    BundleError,
    RecordingRuntime,
    Runtime,
    Tracker,
    bundle_digest,
    procedural_frame,
    replace_path,
    temp_sibling,
    tolerance,
    tree_sha256,
    write_json_atomic,
)

PACK_FORMAT = "edgetam-bench-pack"
PLAN_FORMAT = "edgetam-bench-plan"
VERSION = 1
GRAPHS = ("image_encoder", "memory_attention", "prompt_decoder", "memory_encoder")
# Frames tracked after the prompted frame before the steady-state frame is captured: 16 frames
# fill the bank (7 memories: the prompt + 6 recent; 16 pointers: the prompt + 15 recent), the
# 17th is the captured steady-state frame.
FULL_BANK_FRAMES = 17
# Three prompts on procedural frame 0 (1024-px space): click the red disk, box the green
# square, click the blue ellipse. The 1-object frames use object 0 (the disk).
PROMPTS = (
    {"input_points": [[[260.0, 380.0]]], "input_labels": [[1]]},
    {"input_boxes": [[570.0, 130.0, 830.0, 390.0]]},
    {"input_points": [[[480.0, 820.0]]], "input_labels": [[1]]},
)
DEFAULT_WARMUP = 3
DEFAULT_ITERATIONS = 10


@dataclass
class Call:
    """One recorded graph call: float32 feeds and the reference outputs (contract names and shapes)."""

    key: str
    graph: str
    feeds: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


@dataclass
class Capture:
    """The captured reference run shared by every pack cut from one bundle."""

    calls: dict[str, Call] = field(default_factory=dict)
    frames: list[dict] = field(default_factory=list)
    graph_benchmarks: dict[str, str] = field(default_factory=dict)
    bank: dict = field(default_factory=dict)


def _name_calls(case: str, log: list[tuple[str, dict, dict]]) -> list[Call]:
    """Key each call ``case/graph`` (image encoder) or ``case/graph/obj<i>`` (i-th call of that graph)."""
    seen: dict[str, int] = {}
    calls = []
    for graph, feeds, outs in log:
        i = seen.get(graph, 0)
        seen[graph] = i + 1
        key = f"{case}/{graph}" if graph == "image_encoder" else f"{case}/{graph}/obj{i}"
        calls.append(Call(key, graph, feeds, outs))
    return calls


def _frame(name: str, kind: str, calls: list[Call], objects: int) -> dict:
    keep = [c.key for c in calls if c.graph == "image_encoder" or int(c.key.rsplit("obj", 1)[1]) < objects]
    return {"name": name, "objects": objects, "kind": kind, "calls": keep}


def capture_reference(reference: Runtime, track_frames: int = FULL_BANK_FRAMES, objects: int = 3) -> Capture:
    """Track procedural frames with ``reference`` and record the prompted and steady-state frames.

    Frame 0 carries ``objects`` prompts (:data:`PROMPTS`); frames 1..``track_frames`` are
    tracked in streaming mode and the last one is the steady-state frame. ``track_frames >=
    FULL_BANK_FRAMES`` gives a full bank (7 memories, 16 pointers); tests pass a small number.
    The 1-object frames are the object-0 calls of the same run (objects are tracked
    independently; only the optional output-side non-overlap couples them).
    """
    if track_frames < 1:
        raise ValueError(f"track_frames must be >= 1, got {track_frames}")
    if not 1 <= objects <= len(PROMPTS):
        raise ValueError(f"objects must be 1..{len(PROMPTS)}, got {objects}")
    rec = RecordingRuntime(reference)
    tracker = Tracker(rec, fill_hole_area=0)
    session = tracker.init_video_session(video=None, video_height=1024, video_width=1024)
    for i in range(objects):
        tracker.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=i + 1, **PROMPTS[i])
    cap = Capture()
    for t in range(track_frames + 1):
        rec.clear()
        tracker(session, frame=procedural_frame(t))
        if t == 0:
            prompted = _name_calls("prompted", rec.log)
    steady = _name_calls("steady", rec.log)
    for c in prompted + steady:
        cap.calls[c.key] = c
    counts = sorted({1, objects})
    for n in counts:
        cap.frames.append(_frame(f"prompted_{n}obj", "prompted", prompted, n))
    for n in counts:
        cap.frames.append(_frame(f"tracked_{n}obj", "tracked", steady, n))
    cap.graph_benchmarks = {g: f"steady/{g}" if g == "image_encoder" else f"steady/{g}/obj0" for g in GRAPHS}
    ma = cap.calls["steady/memory_attention/obj0"].feeds
    cap.bank = {
        "tracked_frames": track_frames,
        "memories": int(ma["slot_valid"].sum()),
        "memory_slots": int(ma["slot_valid"].size),
        "pointers": int(ma["ptr_valid"].sum()),
        "pointer_slots": int(ma["ptr_valid"].size),
        "full": bool(track_frames >= FULL_BANK_FRAMES),
    }
    return cap


def _tensor_entry(arr: np.ndarray, file: str) -> dict:
    return {
        "file": file,
        "dtype": str(arr.dtype),
        "shape": list(arr.shape),
        "nbytes": int(arr.nbytes),
        "sha256": hashlib.sha256(
            np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        ).hexdigest(),
    }


def write_pack(
    bundle: Bundle,
    backend: str,
    precision: str,
    out: str | os.PathLike,
    *,
    capture: Capture | None = None,
    reference: Runtime | None = None,
    track_frames: int = FULL_BANK_FRAMES,
    warmup: int = DEFAULT_WARMUP,
    iterations: int = DEFAULT_ITERATIONS,
    threads: int | None = None,
    frames: list[str] | None = None,
) -> Path:
    """Write the pack of ``bundle``'s (``backend``, ``precision``) artifacts to ``out`` (atomically).

    ``frames`` keeps only those composite frames and the calls they make (e.g.
    ``["tracked_1obj"]``: one whole tracked frame, each graph once), for slow runners such as
    an emulator; the graph benchmarks then point at calls of the kept frames.

    ``capture`` (from :func:`capture_reference`) is reused when given, so one reference run
    serves several packs; otherwise the reference (``reference`` or rebuilt from the
    bundle's weights) tracks ``track_frames`` frames. Identical tensors are stored once.
    """
    from ._deps import reference_runtime, tool_versions

    backend, precision = bundle.select(backend, precision)
    if warmup < 0 or iterations < 1:
        raise ValueError(f"need warmup >= 0 and iterations >= 1, got {warmup}, {iterations}")
    if capture is None:
        capture = capture_reference(reference or reference_runtime(bundle), track_frames=track_frames)
    out = Path(out)
    if out.exists() and not (out / "index.json").is_file():
        raise BundleError(f"{out} exists and is not a bench pack; choose a new --out")
    tmp = temp_sibling(out)
    tmp.mkdir(parents=True)
    try:
        artifacts = {}
        for graph in GRAPHS:
            src = bundle.artifact_path(backend, graph, precision)
            rel = f"artifacts/{src.name}"
            (tmp / "artifacts").mkdir(exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, tmp / rel)
            else:
                shutil.copy2(src, tmp / rel)
            c = bundle.contracts[graph]
            artifacts[graph] = {
                "file": rel,
                "sha256": tree_sha256(tmp / rel),
                "method": "forward",
                "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in c.inputs],
                "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in c.outputs],
                "contract": c.as_dict(),
            }
            gflop = bundle.artifact(backend, graph, precision).get("notes", {}).get("gflop")
            if gflop:  # the GFLOP of the form the exporter lowered (models/flop_count.py)
                artifacts[graph]["gflop"] = float(gflop)
        tensors: dict[str, dict] = {}
        by_digest: dict[str, dict] = {}
        calls = {}

        def put(key: str, arr: np.ndarray) -> str:
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            entry = _tensor_entry(arr, f"tensors/{key}.bin")
            dedup = f"{entry['sha256']}:{entry['shape']}"
            if dedup in by_digest:
                entry = dict(by_digest[dedup])
            else:
                path = tmp / entry["file"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(arr.astype("<f4").tobytes())
                by_digest[dedup] = entry
            tensors[key] = entry
            return key

        kept_frames = list(capture.frames)
        graph_benchmarks = dict(capture.graph_benchmarks)
        kept_calls = capture.calls
        if frames is not None:
            known = [f["name"] for f in capture.frames]
            unknown = sorted(set(frames) - set(known))
            if unknown:
                raise ValueError(f"unknown frames {unknown}; the capture has {known}")
            kept_frames = [f for f in capture.frames if f["name"] in frames]
            keys = {k for f in kept_frames for k in f["calls"]}
            kept_calls = {k: c for k, c in capture.calls.items() if k in keys}
            graph_benchmarks = {}
            for k in [k for f in kept_frames for k in f["calls"]]:
                graph_benchmarks.setdefault(kept_calls[k].graph, k)
        kinds = {}
        for call in kept_calls.values():
            calls[call.key] = {
                "graph": call.graph,
                "inputs": {n: put(f"{call.key}/in/{n}", v) for n, v in call.feeds.items()},
                "expected": {n: put(f"{call.key}/out/{n}", v) for n, v in call.outputs.items()},
            }
            for n in call.outputs:
                kinds.setdefault(call.graph, {})[n] = OUTPUT_KINDS.get(n, "features")
        tolerances = {
            g: {
                n: {
                    "kind": k,
                    "rel_max_abs": tolerance(backend, precision, k).rel_max_abs,
                    "min_cosine": tolerance(backend, precision, k).min_cosine,
                }
                for n, k in outs.items()
            }
            for g, outs in kinds.items()
        }
        w = bundle.weights
        weights = (
            {"kind": "synthetic", "salt": int(w.get("salt", 0))}
            if w.get("source") == "synthetic"
            else {"kind": "checkpoint", "sha256": w.get("sha256")}
        )
        index = {
            "format": PACK_FORMAT,
            "version": VERSION,
            "backend": backend,
            "precision": precision,
            "bundle_digest": bundle_digest(bundle.root),
            "weights": weights,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tool_versions": tool_versions(),
            "reference": {"weights": w, "options": bundle.options},
            "artifacts": artifacts,
            "tensors": tensors,
        }
        plan = {
            "format": PLAN_FORMAT,
            "version": VERSION,
            "warmup": int(warmup),
            "iterations": int(iterations),
            "threads": threads,
            "compute_units": ["all"],
            "calls": calls,
            "graph_benchmarks": graph_benchmarks,
            "frames": kept_frames,
            "tolerances": tolerances,
            "bank": dict(capture.bank),
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
        (tmp / "plan.json").write_text(json.dumps(plan, indent=1))
        replace_path(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def set_plan(pack: str | os.PathLike, **changes) -> None:
    """Overwrite top-level plan fields (``warmup``, ``iterations``, ``threads``) of a pack atomically."""
    path = Path(pack) / "plan.json"
    plan = json.loads(path.read_text())
    plan.update({k: v for k, v in changes.items() if v is not None})
    write_json_atomic(path, plan)
