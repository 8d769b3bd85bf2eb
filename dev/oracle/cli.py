"""Command line of the oracle: ``python -m dev.oracle {verify-golden,extra,list}`` (see README.md).

When the running interpreter cannot import the official ``sam2`` package, the command re-runs itself
with the oracle venv's interpreter (``--python`` or ``$EDGETAM_ORACLE_PYTHON``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import env
from .scenarios import SCENARIOS


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m dev.oracle",
        description="Drive the official EdgeTAM package (edgetam-dimos) to regenerate golden data.",
    )
    ap.add_argument(
        "--python",
        default=None,
        help=f"interpreter of the oracle venv (default ${env.ORACLE_PYTHON_ENV}); used when this one lacks `sam2`",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser(
        "verify-golden", help="regenerate the salt-0 dev set and diff it against the shared golden folder"
    )
    v.add_argument(
        "--shared",
        "--golden",
        dest="shared",
        type=Path,
        default=None,
        help=f"shared golden folder (default ${env.SHARED_ENV}, else ../shared/golden beside the repo)",
    )
    v.add_argument("--save", type=Path, default=None, help="also write the regenerated .npz files here")
    v.add_argument("--threads", type=int, default=2)
    e = sub.add_parser("extra", help="generate extra golden scenarios")
    e.add_argument("--only", nargs="*", default=None, choices=sorted(SCENARIOS))
    e.add_argument("--out", type=Path, default=env.EXTRA_DIR)
    e.add_argument("--threads", type=int, default=2)
    sub.add_parser("list", help="list extra scenarios")
    sp = sub.add_parser(
        "speed", help="per-frame wall time of the official predictor tracking procedural frames"
    )
    sp.add_argument("--frames", type=int, default=24)
    sp.add_argument("--objects", type=int, default=1, choices=(1, 2, 3))
    sp.add_argument("--threads", type=int, default=2)
    sp.add_argument("--json", type=Path, default=None, help="where to write {prompt_ms, frame_ms: [...]}")
    sp.add_argument(
        "--serve", action="store_true", help="step one frame per stdin line, print its ms (for interleaving)"
    )
    return ap


def _strip_python(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--python":
            skip = True
        elif not a.startswith("--python="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)

    if args.cmd == "list":
        for k, s in SCENARIOS.items():
            print(f"{k}: salt {s['salt']}, {s['num_frames']} frames - {s['description']}")
        return 0
    if not env.official_importable():
        env.refuse_second_reexec()
        python = env.oracle_python(args.python)
        if python is None:
            print(
                f"error: this interpreter cannot import the official `sam2` package; pass --python "
                f"<oracle-venv>/bin/python or set {env.ORACLE_PYTHON_ENV} (dev/oracle/README.md)",
                file=sys.stderr,
            )
            return 2
        env.reexec_in_oracle(python, _strip_python(argv))

    if args.cmd == "verify-golden":
        return _verify_golden(args)
    if args.cmd == "speed":
        import json

        from .speed import official_frame_times, serve_frames

        if args.serve:
            serve_frames(args.frames, args.objects, args.threads)
            return 0
        if args.json is None:
            print("error: speed needs --json OUT or --serve", file=sys.stderr)
            return 2
        r = official_frame_times(args.frames, args.objects, args.threads)
        args.json.write_text(json.dumps(r))
        return 0
    from .extra import run_extra

    names = args.only or list(SCENARIOS)
    run_extra(names, args.out, threads=args.threads)
    return 0


def _verify_golden(args) -> int:
    from .golden import compare_to_golden, regenerate_dev_set
    from .patches import build_official_predictor

    shared = args.shared or env.default_shared_golden()
    if not shared.is_dir():
        print(
            f"error: shared golden folder {shared} not found; pass --shared or set {env.SHARED_ENV}",
            file=sys.stderr,
        )
        return 2
    t0 = time.time()
    p = build_official_predictor(0, threads=args.threads)
    regen = regenerate_dev_set(p)
    dt = time.time() - t0
    if args.save:
        import numpy as np

        args.save.mkdir(parents=True, exist_ok=True)
        for name, arrays in regen.items():
            np.savez_compressed(args.save / f"{name}.npz", **arrays)
    report = compare_to_golden(regen, shared)
    worst = 0.0
    all_bits = True
    for name, rep in report.items():
        for k, r in rep.items():
            all_bits &= r["bit_identical"]
            worst = max(worst, r.get("max_abs_diff", 0.0))
            print(f"{name:15s} {k:28s} " + ", ".join(f"{a}={b}" for a, b in r.items()))
    print(f"runtime {dt:.1f}s; all bit-identical: {all_bits}; worst max|diff| {worst:.3g}")
    return (
        0
        if worst <= 1e-6 and all(r.get("mismatches", 0) == 0 for rep in report.values() for r in rep.values())
        else 1
    )
