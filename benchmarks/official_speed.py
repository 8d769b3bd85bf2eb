"""Tracked-frame speed of exported bundles against the official EdgeTAM predictor, side by side in one run.

Not a test (minutes). Needs the oracle venv of dev/oracle/README.md (the official package lives
there; ``--oracle-python`` or ``$EDGETAM_ORACLE_PYTHON``) and a bundle exported from the same
synthetic weights (salt 0, e.g. ``make export``):

    python benchmarks/official_speed.py --bundle build/export --backend executorch --backend onnx \\
        --frames 24 --rounds 3 --json /tmp/speed.json

Each round starts the official predictor (``python -m dev.oracle speed --serve`` in the oracle
venv, 2 torch threads) and every requested backend's fp32 ``Tracker`` (this process, runtimes
loaded once) on the same procedural 1024x1024 frames with a click per object on frame 0, then
steps them **frame by frame in turn** (official frame t, then each backend's frame t), so
background load hits every contender alike. Per frame: the wall time between the tracker's yields (the official
``propagate_in_video`` likewise), which is a whole frame: image encoder, memory attention, prompt
decoder, memory encoder and the host work between them (our side also normalises the frame; the
official side normalised all frames up front). Steady state = frames >= ``--steady`` (the bank
holds 7 memories from frame 7 on). Prints medians over all rounds' steady frames, each backend's
speed-up = official median / backend median, and the median of the per-frame ratios (official
frame t / backend frame t), which is robust to load that drifts during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLICKS = ((700, 260), (480, 820), (260, 380))  # = dev/oracle/speed.py: procedural frame 0 shape centres


class OfficialServer:
    """``python -m dev.oracle speed --serve`` in the oracle venv: one tracked frame per :meth:`step`."""

    def __init__(self, python: str | None, frames: int, objects: int, threads: int):
        cmd = [sys.executable, "-m", "dev.oracle"]
        cmd += ["--python", python] if python else []
        cmd += [
            "speed",
            "--serve",
            "--frames",
            str(frames),
            "--objects",
            str(objects),
            "--threads",
            str(threads),
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            err = self.proc.stderr.read().strip()[-400:]
            sys.exit(f"error: the official predictor did not start ({line!r}): {err}")

    def step(self) -> float:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def our_frames(tracker, video: list[np.ndarray], objects: int):
    """Prompt ``objects`` clicks on frame 0, then yield each tracked frame's ms (frames 1..N-1)."""
    s = tracker.init_video_session(video=video)
    pts = [[[list(CLICKS[k])] for k in range(objects)]]
    tracker.add_inputs_to_inference_session(
        s, 0, list(range(1, objects + 1)), input_points=pts, input_labels=[[[1]] * objects]
    )
    it = tracker.propagate_in_video_iterator(s)
    next(it)  # frame 0: the prompt
    while True:
        t0 = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            return
        yield 1e3 * (time.perf_counter() - t0)


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
        official = OfficialServer(args.oracle_python, args.frames, args.objects, args.threads)
        ours = {b: our_frames(tr, video, args.objects) for b, tr in trackers.items()}
        for k in samples:
            samples[k].append([])
        for _ in range(1, args.frames):  # frame by frame, every contender in turn
            samples["official"][-1].append(official.step())
            for b, gen in ours.items():
                samples[b][-1].append(next(gen))
        official.close()
        line = ", ".join(f"{k} {np.median(v[-1][args.steady - 1 :]):.0f} ms" for k, v in samples.items())
        print(f"round {r + 1}/{args.rounds}: steady median {line}", flush=True)
    steady = {k: [x for run in v for x in run[args.steady - 1 :]] for k, v in samples.items()}
    med = {k: float(np.median(v)) for k, v in steady.items()}
    # per-frame ratio official / ours on the same frame index of the same round: drift-proof
    ratio = {k: float(np.median(np.asarray(steady["official"]) / np.asarray(v))) for k, v in steady.items()}
    print(
        f"\nsteady-state tracked frames (frames {args.steady}..{args.frames - 1}, {args.rounds} rounds), "
        f"{args.objects} object(s), interleaved frame by frame:"
    )
    print(
        "| contender | median ms | min ms | max ms | speed-up (ratio of medians) | median per-frame speed-up |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for k, v in steady.items():
        print(
            f"| {k} | {med[k]:.0f} | {min(v):.0f} | {max(v):.0f} | {med['official'] / med[k]:.2f}x | {ratio[k]:.2f}x |"
        )
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
                    "median_per_frame_speedup": ratio,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
