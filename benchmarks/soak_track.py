"""Soak test for `edgetam-export track` memory: generates a long 1080p video, tracks it with a bundle
from the CLI and samples the child's resident memory (RSS) every N frames.

Not a test (it takes tens of minutes): run it by hand, e.g.

    python benchmarks/soak_track.py --bundle build/export --frames 1000 --work /tmp/soak

Progress is read from the mask PNGs the CLI writes frame by frame. Prints one line per sample,
then the first, peak and last RSS and whether RSS stays within 10% after the warm-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_video(path: Path, frames: int, width: int, height: int, fps: int = 30) -> None:
    """Procedural content: a textured background scrolling, a bright disc and a box moving across it."""
    from edgetam_export.video import VideoWriter

    # A texture twice the frame size, computed once; each frame is a moving window of it (cheap).
    yy, xx = np.mgrid[0 : 2 * height, 0 : 2 * width].astype(np.float32)
    tex = (96 + 40 * np.sin(xx / 37.0) * np.cos(yy / 53.0)).astype(np.uint8)
    del yy, xx
    r = height // 8
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = dx**2 + dy**2 < r**2
    with VideoWriter(path, fps=fps, options={"preset": "ultrafast"}) as w:
        for t in range(frames):
            ox, oy = (3 * t) % width, (2 * t) % height
            img = np.repeat(tex[oy : oy + height, ox : ox + width, None], 3, axis=2)
            cx = int(width * (0.2 + 0.6 * (0.5 + 0.5 * np.sin(t / 60.0))))
            cy = int(height * (0.5 + 0.25 * np.cos(t / 45.0)))
            img[cy - r : cy + r + 1, cx - r : cx + r + 1][disc] = (230, 60, 40)
            bx = int((t * 4) % (width - 200))
            img[height // 6 : height // 6 + 150, bx : bx + 200] = (40, 200, 90)
            w.write(img)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (psutil if installed, else /proc/PID/status VmRSS)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        pass
    except Exception:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--work", type=Path, default=Path("soak_work"))
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--every", type=int, default=50, help="sample RSS every N frames")
    ap.add_argument("--warmup", type=int, default=100, help="frames before the flatness check")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    video = args.work / f"soak_{args.frames}_{args.height}p.mp4"
    if not video.exists():
        t0 = time.perf_counter()
        make_video(video, args.frames, args.width, args.height)
        print(f"generated {video} ({args.frames} frames) in {time.perf_counter() - t0:.0f} s", flush=True)
    out = args.work / "out"
    # The disc starts at (0.2 + 0.6 * 0.5) * W, 0.75 * H on frame 0.
    exe = Path(sys.executable).parent / "edgetam-export"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-c", "from edgetam_export.cli import app; app()"]
    cmd = [
        *cli, "track", str(video),
        "--bundle", str(args.bundle), "--backend", args.backend, "--precision", args.precision,
        "--point", f"{int(args.width * 0.5)},{int(args.height * 0.75)}",
        "--out", str(out), "--overwrite",
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    print(" ".join(cmd), flush=True)
    t0 = time.perf_counter()
    log = (args.work / "track.log").open("w")
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    samples: list[tuple[int, float, int]] = []  # (frames done, seconds, rss bytes)
    next_mark = 1  # first sample once the first frame is done (the model is loaded)
    masks = out / "masks" / "obj_1"
    while child.poll() is None:
        done = sum(1 for _ in masks.glob("*.png")) if masks.is_dir() else 0
        if done >= next_mark:
            rss = rss_bytes(child.pid)
            if rss:
                samples.append((done, time.perf_counter() - t0, rss))
                print(f"frame {done:5d}  t={samples[-1][1]:7.0f} s  RSS {rss / 2**20:8.1f} MiB", flush=True)
                next_mark = (done // args.every + 1) * args.every
        time.sleep(0.5)
    log.close()
    rc = child.returncode
    print(f"track exited {rc} after {time.perf_counter() - t0:.0f} s (log: {args.work / 'track.log'})")
    report = {"frames": args.frames, "returncode": rc, "samples": samples}
    if samples:
        rss = [s[2] for s in samples]
        after = [s[2] for s in samples if s[0] >= args.warmup] or rss
        flat = max(after) <= 1.10 * min(after)
        report.update(
            first_mib=rss[0] / 2**20,
            peak_mib=max(rss) / 2**20,
            last_mib=rss[-1] / 2**20,
            frames_reached=samples[-1][0],
            flat_within_10pct_after_warmup=flat,
        )
        print(
            f"RSS first {report['first_mib']:.0f} MiB, peak {report['peak_mib']:.0f} MiB, last "
            f"{report['last_mib']:.0f} MiB over {samples[-1][0]} frames; after frame {args.warmup}: "
            f"min {min(after) / 2**20:.0f} max {max(after) / 2**20:.0f} MiB -> "
            f"{'FLAT' if flat else 'NOT flat'} within 10%"
        )
    (args.work / "soak_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
