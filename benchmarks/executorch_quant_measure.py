"""Measure ExecuTorch int8 programs (PT2E + XNNPACKQuantizer) against the fp32 programs.

Not a test (it exports several programs and tracks 40 frames): run it by hand, stage by stage,
reusing a work folder, e.g.

    python benchmarks/executorch_quant_measure.py --work /tmp/etq capture
    python benchmarks/executorch_quant_measure.py --work /tmp/etq export --variants fp32,int8
    python benchmarks/executorch_quant_measure.py --work /tmp/etq accuracy --variants int8
    python benchmarks/executorch_quant_measure.py --work /tmp/etq latency --variants int8
    python benchmarks/executorch_quant_measure.py --work /tmp/etq track --plan int8 --frames 40

* ``capture``: a PyTorch-reference tracking run over procedural frames (object 1 a click on the
  disk, object 2 a box on the square, both on frame 0), recording every graph call. Frames
  0..``--calib-frames``-1 give the calibration tuples, the later frames the held-out accuracy
  feeds (``calib.pkl``).
* ``export``: one ``.pte`` per (graph, GraphQuant) in ``pte/`` (variants: :data:`VARIANTS`; a
  variant is one GraphQuant per graph; variants share programs), with the exporter's notes
  (delegate coverage, ops kept fp32) beside it as ``.json``.
* ``accuracy``: cosine and relative max-abs (``edgetam_export.verify.metrics``) of every
  output of each variant against the fp32 program on the held-out feeds.
* ``latency``: per graph, fp32 and the variant interleaved in one process (ExecuTorch Python
  runtime), median of ``--iterations`` calls each.
* ``track``: the 40-frame, 2-object scenario on programs chosen per graph (``--plan``: a variant
  for all graphs, or ``graph=variant,...`` with the rest fp32) against the fp32 programs:
  per-frame mask IoU and object-score sign agreement.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from edgetam_export.exporters.executorch_exporter import ExecuTorchExporter
from edgetam_export.exporters.executorch_quant import RECIPES
from edgetam_export.exporters.quantization import GraphQuant
from edgetam_export.models import build_edgetam
from edgetam_export.models.constants import GRAPH_NAMES

from edgetam_export.bench.pack import PROMPTS, RecordingRuntime
from edgetam_export.procedural import procedural_frame
from edgetam_export.runtime.base import Runtime
from edgetam_export.runtime.torch_runtime import TorchRuntime
from edgetam_export.tracker import Tracker
from edgetam_export.verify.bundle_check import track_clip
from edgetam_export.verify.metrics import compare, mask_iou

_STATIC = "int8_static"
_ALL = {g: GraphQuant(_STATIC) for g in GRAPH_NAMES}
# Exploratory variants (one GraphQuant per graph); the shipped recipes come from executorch_quant.
VARIANTS: dict[str, dict[str, GraphQuant]] = {
    "fp32": {g: GraphQuant("fp32") for g in GRAPH_NAMES},
    **{name: dict(r.graphs) for name, r in RECIPES.items()},
    "all_static": _ALL,
    "dynamic": {g: GraphQuant("int8_dynamic") for g in GRAPH_NAMES},
}


def _key(gq: GraphQuant) -> str:
    """File stem of one GraphQuant's program: variants sharing a graph's GraphQuant share the program."""
    return gq.scheme + (("-keep-" + "+".join(gq.keep_float)) if gq.keep_float else "")


def _runtime_model():
    model = build_edgetam()
    return model, TorchRuntime(model)


def cmd_capture(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    _, ref = _runtime_model()
    rec = RecordingRuntime(ref)
    tracker = Tracker(rec, fill_hole_area=0)
    session = tracker.init_video_session(video=None, video_height=1024, video_width=1024)
    for i in range(2):
        tracker.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=i + 1, **PROMPTS[i])
    calib: dict[str, list] = {g: [] for g in GRAPH_NAMES}
    held: dict[str, list] = {g: [] for g in GRAPH_NAMES}
    t0 = time.perf_counter()
    for t in range(args.calib_frames + args.eval_frames):
        rec.clear()
        tracker(session, frame=procedural_frame(t))
        into = calib if t < args.calib_frames else held
        for graph, feeds, _ in rec.log:
            names = ref.contracts[graph].input_names
            into[graph].append(tuple(np.ascontiguousarray(feeds[n], np.float32) for n in names))
        print(f"frame {t}: {len(rec.log)} calls ({time.perf_counter() - t0:.0f} s)", flush=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "calib.pkl", "wb") as f:
        pickle.dump({"calib": calib, "held": held, "calib_frames": args.calib_frames}, f)
    print({g: (len(calib[g]), len(held[g])) for g in GRAPH_NAMES})


def _load_calib(work: Path) -> dict:
    with open(work / "calib.pkl", "rb") as f:
        return pickle.load(f)


def _subsample(samples: list, n: int) -> list:
    if len(samples) <= n:
        return samples
    idx = np.linspace(0, len(samples) - 1, n).round().astype(int)
    return [samples[i] for i in idx]


def cmd_export(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = _load_calib(work)
    _, ref = _runtime_model()
    exporter = ExecuTorchExporter()
    (work / "pte").mkdir(exist_ok=True)
    for variant in args.variants.split(","):
        for graph in args.graphs.split(","):
            quant = VARIANTS[variant][graph]
            path = work / "pte" / f"{graph}.{_key(quant)}.pte"
            if path.exists() and not args.force:
                continue
            calib = [
                tuple(torch.from_numpy(a) for a in s) for s in _subsample(data["calib"][graph], args.samples)
            ]
            t0 = time.perf_counter()
            notes = exporter._export(
                ref.modules[graph].eval(), path, "mixed", {}, calibration=calib, quant=quant
            )
            notes["export_seconds"] = round(time.perf_counter() - t0, 1)
            notes["size_bytes"] = path.stat().st_size
            path.with_suffix(".json").write_text(json.dumps(notes, indent=1))
            print(
                f"{graph:17s} {variant:15s} {path.stat().st_size / 1e6:7.2f} MB  {notes['export_seconds']:6.1f} s  "
                f"coverage {notes.get('coverage')} outside {notes.get('non_delegated')}",
                flush=True,
            )


def _reset_threads(n: int) -> None:
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    _unsafe_reset_threadpool(n)


class PteRuntime(Runtime):
    """Runs ``{graph: .pte path}`` with the ExecuTorch Python runtime (contracts from ``ref``)."""

    name = "executorch"

    def __init__(self, ref: Runtime, paths: dict[str, Path]):
        from executorch.runtime import Runtime as EtRuntime

        self.contracts = ref.contracts
        self.constants = ref.constants
        self.options = ref.options
        et = EtRuntime.get()
        self.methods = {g: et.load_program(str(p)).load_method("forward") for g, p in paths.items()}

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        names = self.contracts[graph].input_names
        outs = self.methods[graph].execute([torch.from_numpy(feeds[n]) for n in names])
        return {
            n: o.float().numpy().copy() for n, o in zip(self.contracts[graph].output_names, outs, strict=True)
        }


def _paths(work: Path, variant_of: dict[str, str]) -> dict[str, Path]:
    return {g: work / "pte" / f"{g}.{_key(VARIANTS[v][g])}.pte" for g, v in variant_of.items()}


def cmd_accuracy(args) -> None:
    work = Path(args.work)
    data = _load_calib(work)
    _, ref = _runtime_model()
    graphs = args.graphs.split(",")
    base = PteRuntime(ref, _paths(work, dict.fromkeys(graphs, "fp32")))
    results = {}
    for variant in args.variants.split(","):
        rt = PteRuntime(ref, _paths(work, dict.fromkeys(graphs, variant)))
        for graph in graphs:
            names = ref.contracts[graph].input_names
            worst: dict[str, tuple[float, float]] = {}
            for s in _subsample(data["held"][graph], args.eval_samples):
                feeds = dict(zip(names, s, strict=True))
                a, b = base.run(graph, feeds), rt.run(graph, feeds)
                for out in a:
                    c = compare(out, a[out], b[out])
                    cos, rel = worst.get(out, (1.0, 0.0))
                    worst[out] = (min(cos, c.cosine), max(rel, c.rel_max_abs))
            results[f"{graph}/{variant}"] = worst
            for out, (cos, rel) in worst.items():
                print(
                    f"{graph:17s} {variant:15s} {out:10s} cosine {cos:.6f}  rel_max_abs {rel:.4f}", flush=True
                )
    (work / f"accuracy.{args.variants.replace(',', '+')}.json").write_text(json.dumps(results, indent=1))


def cmd_latency(args) -> None:
    import torch

    work = Path(args.work)
    data = _load_calib(work)
    _, ref = _runtime_model()
    _reset_threads(args.threads)
    graphs = args.graphs.split(",")
    for variant in args.variants.split(","):
        for graph in graphs:
            a = PteRuntime(ref, _paths(work, {graph: "fp32"})).methods[graph]
            b = PteRuntime(ref, _paths(work, {graph: variant})).methods[graph]
            inputs = [torch.from_numpy(x) for x in data["held"][graph][0]]
            ta, tb = [], []
            for _ in range(2):  # warm-up
                a.execute(inputs)
                b.execute(inputs)
            for _ in range(args.iterations):
                for m, acc in ((a, ta), (b, tb)):
                    t0 = time.perf_counter()
                    m.execute(inputs)
                    acc.append(time.perf_counter() - t0)
            ma, mb = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
            print(
                f"{graph:17s} fp32 {ma:8.1f} ms  {variant} {mb:8.1f} ms  ratio {mb / ma:.2f} "
                f"({args.iterations} interleaved, {args.threads} threads)",
                flush=True,
            )


def cmd_sizes(args) -> None:
    work = Path(args.work)
    base = {g: p.stat().st_size for g, p in _paths(work, dict.fromkeys(GRAPH_NAMES, "fp32")).items()}
    for variant in args.variants.split(","):
        sizes = {g: p.stat().st_size for g, p in _paths(work, dict.fromkeys(GRAPH_NAMES, variant)).items()}
        per = "  ".join(f"{g} {sizes[g] / 1e6:.2f} MB ({sizes[g] / base[g]:.0%})" for g in GRAPH_NAMES)
        total = sum(sizes.values())
        print(f"{variant:15s} total {total / 1e6:.2f} MB = {total / sum(base.values()):.1%} of fp32;  {per}")


def _plan(spec: str) -> dict[str, str]:
    if "=" not in spec:
        return dict.fromkeys(GRAPH_NAMES, spec)
    plan = dict.fromkeys(GRAPH_NAMES, "fp32")
    for part in spec.split(","):
        g, v = part.split("=")
        plan[g] = v
    return plan


def cmd_track(args) -> None:
    work = Path(args.work)
    _, ref = _runtime_model()
    _reset_threads(args.threads)
    cache = work / f"track.fp32.{args.frames}.pkl"
    if cache.exists():
        with open(cache, "rb") as f:
            base = pickle.load(f)
    else:
        base = track_clip(PteRuntime(ref, _paths(work, dict.fromkeys(GRAPH_NAMES, "fp32"))), args.frames)
        with open(cache, "wb") as f:
            pickle.dump(base, f)
    for spec in args.plan.split(";"):
        plan = _plan(spec)
        t0 = time.perf_counter()
        got = track_clip(PteRuntime(ref, _paths(work, plan)), args.frames)
        ious, flips, rows = [], 0, []
        for r, o in zip(base, got, strict=True):
            per = [mask_iou(r.pred_masks[n, 0], o.pred_masks[n, 0]) for n in range(len(r.obj_ids))]
            flips += int(np.sum(np.sign(r.object_score_logits) != np.sign(o.object_score_logits)))
            ious.append(per)
            rows.append(
                {
                    "frame": r.frame_idx,
                    "iou": per,
                    "score_ref": r.object_score_logits.ravel().tolist(),
                    "score": o.object_score_logits.ravel().tolist(),
                }
            )
        arr = np.array(ious)
        print(
            f"plan {spec}: {args.frames} frames x {arr.shape[1]} objects: IoU min {arr.min():.4f} mean {arr.mean():.4f} "
            f"(per object min {arr.min(0).round(4).tolist()}, mean {arr.mean(0).round(4).tolist()}); "
            f"score sign flips {flips}; {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        print("  IoU per frame (obj1/obj2): " + " ".join(f"{a:.3f}/{b:.3f}" for a, b in arr[:, :2]))
        (work / f"track.{spec.replace('=', '-').replace(',', '+')}.{args.frames}.json").write_text(
            json.dumps(rows, indent=1)
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True)
    p.add_argument("--threads", type=int, default=1)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--calib-frames", type=int, default=8)
    c.add_argument("--eval-frames", type=int, default=4)
    for name in ("export", "accuracy", "latency", "sizes"):
        s = sub.add_parser(name)
        s.add_argument("--variants", default="int8")
        s.add_argument("--graphs", default=",".join(GRAPH_NAMES))
        s.add_argument("--samples", type=int, default=8, help="calibration tuples per graph (export)")
        s.add_argument("--eval-samples", type=int, default=4)
        s.add_argument("--iterations", type=int, default=5)
        s.add_argument("--force", action="store_true")
    t = sub.add_parser("track")
    t.add_argument("--plan", default="int8", help="variant, or graph=variant,...; several separated by ';'")
    t.add_argument("--frames", type=int, default=40)
    args = p.parse_args(argv)
    {
        "capture": cmd_capture,
        "export": cmd_export,
        "accuracy": cmd_accuracy,
        "latency": cmd_latency,
        "track": cmd_track,
        "sizes": cmd_sizes,
    }[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
