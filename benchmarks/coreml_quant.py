"""Core ML quantization measurements on Linux: package sizes and MIL-evaluator numerics of every scheme, per graph and at the tracker level.

Not a test (it takes tens of minutes on 1 thread). Run by hand, e.g.

    python benchmarks/coreml_quant.py --work /tmp/cq --threads 1 --track-frames 3

1. exports the four graphs at fp32 and fp16 with the project's Core ML exporter (salt-0 synthetic
   weights; reused from ``--work`` if present);
2. captures real feeds with the PyTorch reference (``capture_reference``: frame 0 with 3 prompts,
   then ``--capture-frames`` tracked frames): the steady-state frame's object-0 call of each
   graph is the held-out evaluation feed, the other captured calls calibrate W8A8;
3. compresses the fp16 program of each graph with each scheme (``coremltools.optimize``) and
   prints the package size and, through the MIL evaluator, cosine and relative max-abs of every
   output against the fp32 program on the evaluation feed, and the evaluator's seconds;
4. tracks ``--track-frames`` procedural frames (2 objects: a click and a box) with the fp32
   programs and with each recipe of ``--recipes`` through the MIL evaluator and prints per-frame
   mask IoU and object-score sign agreement against fp32.

Writes ``results.json`` in ``--work``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def _calibration(cap, graph: str) -> list[dict]:
    """Every captured call of ``graph`` except the held-out evaluation call (the steady frame's object 0)."""
    held_out = cap.graph_benchmarks[graph]
    return [c.feeds for c in cap.calls.values() if c.graph == graph and c.key != held_out]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--graphs", default="image_encoder,prompt_decoder,memory_encoder,memory_attention")
    ap.add_argument("--schemes", default="int8_weights,palettize6,palettize4,w8a8")
    ap.add_argument("--capture-frames", type=int, default=2)
    ap.add_argument("--track-frames", type=int, default=0, help="tracker-level frames (0: skip)")
    ap.add_argument("--recipes", default="int8,mixed")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import coremltools as ct
    from edgetam_export.exporters.coreml_quant import compress_mlmodel
    from edgetam_export.exporters.quantization import GraphQuant

    import edgetam_export.coreml_mil  # noqa: F401  (registers the W8A8 activation observer)
    from edgetam_export.bench.pack import capture_reference
    from edgetam_export.bundle import export_bundle, load_bundle
    from edgetam_export.coreml_mil.evaluator import MILEvaluator
    from edgetam_export.verify.bundle_check import reference_runtime
    from edgetam_export.verify.metrics import compare

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    bdir = work / "bundle"
    if not (bdir / "manifest.json").exists():
        t0 = time.perf_counter()
        with _quiet():
            export_bundle(bdir, ["coreml"], precisions=["fp32", "fp16"], salt=0)
        print(f"exported fp32+fp16 Core ML bundle in {time.perf_counter() - t0:.0f}s")
    bundle = load_bundle(bdir)

    def package(graph: str, precision: str) -> Path:
        return bdir / bundle.artifact("coreml", graph, precision)["path"]

    t0 = time.perf_counter()
    cap = capture_reference(reference_runtime(bundle), track_frames=args.capture_frames)
    print(f"captured reference feeds in {time.perf_counter() - t0:.0f}s")
    results: dict = {"graphs": {}, "tracker": {}, "threads": args.threads}
    graphs = args.graphs.split(",")
    schemes = ["fp16", *args.schemes.split(",")]
    qdir = work / "quant"
    qdir.mkdir(exist_ok=True)
    for g in graphs:
        calib = _calibration(cap, g)
        feeds = cap.calls[cap.graph_benchmarks[g]].feeds
        ev32 = MILEvaluator(package(g, "fp32"), track_ranges=False)
        ref = ev32.run(feeds)
        t32 = ev32.last_report.seconds
        row = {"fp32": {"bytes": _size(package(g, "fp32")), "eval_seconds": round(t32, 2)}}
        print(
            f"\n{g}: fp32 {row['fp32']['bytes'] / 1e6:.2f} MB, evaluator {t32:.1f}s; {len(calib)} calibration feeds"
        )
        for scheme in schemes:
            if scheme == "fp16":
                path = package(g, "fp16")
                qs = 0.0
            else:
                path = qdir / f"{g}.{scheme}.mlpackage"
                t0 = time.perf_counter()
                if not path.exists():
                    fp16 = ct.models.MLModel(str(package(g, "fp16")), skip_model_load=True)
                    small, _ = compress_mlmodel(fp16, GraphQuant(scheme), calib)
                    with _quiet():
                        small.save(str(path))
                qs = time.perf_counter() - t0
            ev = MILEvaluator(path, track_ranges=False)
            out = ev.run(feeds)  # first run also decompresses the constexpr weights
            first = ev.last_report.seconds
            out = ev.run(feeds)
            entry = {
                "bytes": _size(path),
                "ratio_vs_fp32": round(_size(path) / row["fp32"]["bytes"], 4),
                "compress_seconds": round(qs, 1),
                "eval_seconds_first": round(first, 2),
                "eval_seconds": round(ev.last_report.seconds, 2),
                "outputs": {},
            }
            for name, r in ref.items():
                c = compare(name, r.astype(np.float32), out[name].astype(np.float32))
                entry["outputs"][name] = {"cosine": c.cosine, "rel_max_abs": c.rel_max_abs}
            row[scheme] = entry
            worst = min(entry["outputs"].items(), key=lambda kv: kv[1]["cosine"])
            print(
                f"  {scheme:13s} {entry['bytes'] / 1e6:7.2f} MB ({entry['ratio_vs_fp32']:.3f} of fp32)  "
                + "  ".join(
                    f"{n}: cos {m['cosine']:.6f} rel {m['rel_max_abs']:.2e}"
                    for n, m in entry["outputs"].items()
                )
                + f"  eval {entry['eval_seconds']:.1f}s (first {first:.1f}s)  [worst {worst[0]}]"
            )
        results["graphs"][g] = row
        (work / "results.json").write_text(json.dumps(results, indent=1))

    if args.track_frames > 0:
        results["tracker"] = track(args, bundle, package, qdir, cap)
    (work / "results.json").write_text(json.dumps(results, indent=1))


def track(args, bundle, package, qdir, cap) -> dict:
    """Track frames 0..N-1 (a click and a box on frame 0) with fp32 and each recipe; IoU vs fp32."""
    import coremltools as ct
    from edgetam_export.exporters.coreml_quant import RECIPES, compress_mlmodel

    from edgetam_export.bench.pack import PROMPTS
    from edgetam_export.procedural import procedural_frame
    from edgetam_export.runtime.coreml_runtime import CoreMLRuntime
    from edgetam_export.tracker import Tracker
    from edgetam_export.verify.metrics import mask_iou

    base = CoreMLRuntime(bundle, "fp32", engine="mil-evaluator")
    graphs = list(base.contracts)

    def runtime(paths):
        return CoreMLRuntime(
            paths,
            contracts=base.contracts,
            constants=base.constants,
            options=base.options,
            engine="mil-evaluator",
        )

    def run(rt):
        tracker = Tracker(rt, fill_hole_area=0)
        s = tracker.init_video_session(video=None, video_height=1024, video_width=1024)
        for i in range(2):
            tracker.add_inputs_to_inference_session(s, frame_idx=0, obj_ids=i + 1, **PROMPTS[i])
        outs, secs = [], []
        for t in range(args.track_frames):
            t0 = time.perf_counter()
            o = tracker(s, frame=procedural_frame(t))
            secs.append(time.perf_counter() - t0)
            outs.append((o.pred_masks.copy(), o.object_score_logits.copy()))
        return outs, secs

    ref, secs = run(runtime({g: package(g, "fp32") for g in graphs}))
    print(f"\ntracker fp32: {np.mean(secs):.1f}s/frame (evaluator, {args.threads} thread(s))")
    report = {"frames": args.track_frames, "fp32_seconds_per_frame": round(float(np.mean(secs)), 1)}
    for name in args.recipes.split(","):
        recipe = RECIPES[name]
        paths = {}
        for g in graphs:
            scheme = recipe.graphs[g].scheme
            if scheme in ("fp32", "fp16"):
                paths[g] = package(g, scheme)
                continue
            p = qdir / f"{g}.{scheme}.mlpackage"
            if not p.exists():
                calib = _calibration(cap, g)
                small, _ = compress_mlmodel(
                    ct.models.MLModel(str(package(g, "fp16")), skip_model_load=True), recipe.graphs[g], calib
                )
                with _quiet():
                    small.save(str(p))
            paths[g] = p
        outs, secs = run(runtime(paths))
        ious = [
            [mask_iou(r[0][k, 0], q[0][k, 0]) for k in range(r[0].shape[0])]
            for r, q in zip(ref, outs, strict=True)
        ]
        signs = [bool(np.all(np.sign(r[1]) == np.sign(q[1]))) for r, q in zip(ref, outs, strict=True)]
        size = sum(_size(p) for p in paths.values())
        report[name] = {
            "iou_per_frame": ious,
            "min_iou": float(np.min(ious)),
            "mean_iou": float(np.mean(ious)),
            "score_signs_equal": signs,
            "score_logits": [q[1].reshape(-1).tolist() for q in outs],
            "fp32_score_logits": [r[1].reshape(-1).tolist() for r in ref],
            "bytes": size,
            "seconds_per_frame": round(float(np.mean(secs)), 1),
        }
        print(
            f"tracker {name}: min IoU {np.min(ious):.4f} mean {np.mean(ious):.4f} signs equal {all(signs)} "
            f"per frame {[round(min(x), 4) for x in ious]}  size {size / 1e6:.1f} MB"
        )
    return report


if __name__ == "__main__":
    main()
