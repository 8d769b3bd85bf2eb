"""Tracked-frame speed of exported bundles against the official EdgeTAM predictor, side by side in one run.

Not a test (minutes). Needs the oracle venv of dev/oracle/README.md (the official package lives
there; ``--oracle-python`` or ``$EDGETAM_ORACLE_PYTHON``) and a bundle exported from the same
synthetic weights (salt 0, e.g. ``make export``):

    python benchmarks/official_speed.py --bundle build/export --backend executorch --backend onnx \\
        --frames 24 --rounds 3 --json /tmp/speed.json

Each round runs the official predictor (a fresh ``python -m dev.oracle speed`` process, 2 torch
threads) and then every requested backend's fp32 ``Tracker`` (this process, runtimes loaded once)
over the same procedural 1024x1024 frames with a click per object on frame 0, so background load
hits every contender alike. Per frame: the wall time between the tracker's yields (the official
``propagate_in_video`` likewise), which is a whole frame: image encoder, memory attention, prompt
decoder, memory encoder and the host work between them (our side also normalises the frame; the
official side normalised all frames up front). Steady state = frames >= ``--steady`` (the bank
holds 7 memories from frame 7 on). Prints medians over all rounds' steady frames and each
backend's speed-up = official median / backend median.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLICKS = ((700, 260), (480, 820), (260, 380))  # = dev/oracle/speed.py: procedural frame 0 shape centres


def official_round(python: str | None, frames: int, objects: int, threads: int) -> list[float]:
    """One official run in the oracle venv; per-frame ms of frames 1..frames-1."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "official.json"
        cmd = [sys.executable, "-m", "dev.oracle"]
        cmd += ["--python", python] if python else []
        cmd += ["speed", "--frames", str(frames), "--objects", str(objects), "--threads", str(threads)]
        cmd += ["--json", str(out)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"error: the official run failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
        return json.loads(out.read_text())["frame_ms"]


def our_round(tracker, video: list[np.ndarray], objects: int) -> list[float]:
    """One tracking run of ``tracker`` over ``video``; per-frame ms of frames 1..N-1."""
    s = tracker.init_video_session(video=video)
    pts = [[[list(CLICKS[k])] for k in range(objects)]]
    tracker.add_inputs_to_inference_session(
        s, 0, list(range(1, objects + 1)), input_points=pts, input_labels=[[[1]] * objects]
    )
    times = []
    t0 = time.perf_counter()
    for out in tracker.propagate_in_video_iterator(s):
        now = time.perf_counter()
        if out.frame_idx > 0:
            times.append(1e3 * (now - t0))
        t0 = now
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--bundle",
        type=Path,
        action="append",
        required=True,
        help="repeatable: each backend from the first bundle holding it",
    )
    ap.add_argument("--backend", action="append", default=None, help="repeatable (default: executorch)")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--objects", type=int, default=1, choices=(1, 2, 3))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steady", type=int, default=8, help="first frame counted as steady state")
    ap.add_argument("--threads", type=int, default=2, help="official torch threads and ONNX Runtime threads")
    ap.add_argument("--oracle-python", default=os.environ.get("EDGETAM_ORACLE_PYTHON"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.frames <= args.steady:
        sys.exit(f"error: --frames ({args.frames}) must exceed --steady ({args.steady})")

    from edgetam_export.bundle import load_bundle
    from edgetam_export.procedural import procedural_frame
    from edgetam_export.runtime.loader import runtime_from_bundle
    from edgetam_export.tracker import Tracker

    backends = args.backend or ["executorch"]
    trackers = {}
    bundles = [load_bundle(p) for p in args.bundle]
    for b in backends:
        holder = next((x for x in bundles if b in x.backends), None)
        if holder is None:
            sys.exit(f"error: no --bundle holds {b} artifacts")
        kwargs = {"num_threads": args.threads} if b == "onnx" else {}
        trackers[b] = Tracker(runtime_from_bundle(holder, b, args.precision, **kwargs))
    video = [procedural_frame(t) for t in range(args.frames)]
    samples: dict[str, list[list[float]]] = {"official": [], **{b: [] for b in backends}}
    for r in range(args.rounds):
        samples["official"].append(
            official_round(args.oracle_python, args.frames, args.objects, args.threads)
        )
        for b, tr in trackers.items():
            samples[b].append(our_round(tr, video, args.objects))
        line = ", ".join(f"{k} {np.median(v[-1][args.steady - 1 :]):.0f} ms" for k, v in samples.items())
        print(f"round {r + 1}/{args.rounds}: steady median {line}", flush=True)
    steady = {k: [x for run in v for x in run[args.steady - 1 :]] for k, v in samples.items()}
    med = {k: float(np.median(v)) for k, v in steady.items()}
    print(
        f"\nsteady-state tracked frames (frames {args.steady}..{args.frames - 1}, {args.rounds} rounds), "
        f"{args.objects} object(s):"
    )
    print("| contender | median ms | min ms | max ms | speed-up vs official |")
    print("|---|---:|---:|---:|---:|")
    for k, v in steady.items():
        up = med["official"] / med[k]
        print(f"| {k} | {med[k]:.0f} | {min(v):.0f} | {max(v):.0f} | {up:.2f}x |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "frames": args.frames,
                    "objects": args.objects,
                    "rounds": args.rounds,
                    "steady_from": args.steady,
                    "precision": args.precision,
                    "threads": args.threads,
                    "samples_ms": samples,
                    "steady_median_ms": med,
                    "speedup_vs_official": {k: med["official"] / m for k, m in med.items()},
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
