"""Verify a bundle against the PyTorch reference rebuilt from the bundle's own weights.

Every graph is run on realistic inputs built by chaining the *reference* (a procedural frame
through the image encoder, a real click on an object, the resulting mask into the memory
encoder, a bank of those memories into memory attention), and each backend's output is
compared with the reference's on the *same* inputs, so every graph is judged in isolation.
On bundles with all four graphs, :func:`verify_tracker_clip` then tracks a short clip with the
backend and with the reference and compares every frame's masks and scores (end to end).
Metrics come from :mod:`edgetam_export.verify.metrics`; bounds from the one tolerance table
(:mod:`edgetam_export.verify.tolerances`, keyed by (backend, precision)).
"""

from __future__ import annotations

import json
import math
import os
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..backends import ONNX_MODEL_FORMATS, QUANTIZED_PRECISIONS, MissingBackendError
from ..bundle import Bundle, BundleError, load_bundle
from ..preprocessing import preprocess
from ..procedural import procedural_frame, procedural_video
from ..runtime.base import Runtime
from ..runtime.loader import runtime_from_bundle
from ..runtime.torch_runtime import TorchRuntime
from ..tracker import Tracker
from ..tracker.bank import MemoryEntry, assemble_bank
from ..tracker.feeds import decoder_feeds, memory_encoder_feeds
from ..tracker.session import PointPrompt
from .metrics import compare, mask_iou
from .tolerances import MASK_IOU, tolerance

# Tolerance kind of every graph output (see edgetam_export.verify.tolerances).
OUTPUT_KINDS = {
    "feat_s0": "features",
    "feat_s1": "features",
    "vis": "features",
    "masks": "logits",
    "iou": "scores",
    "obj_logit": "scores",
    "ptr_all": "features",
    "mem": "memory",
    "pix": "features",
}

# A positive click on the red disk of procedural frame 0 (its centre), 1024-pixel space.
CLICK_XY = (260.0, 380.0)
# The tracker clip (verify_tracker_clip): procedural frames 0..CLIP_FRAMES-1, object 1 clicked
# on the disk, object 2 boxed on the square (x0, y0, x1, y1), both on frame 0.
CLIP_FRAMES = 3
CLIP_BOX = (570.0, 130.0, 830.0, 390.0)
TRACKER_GRAPHS = ("image_encoder", "prompt_decoder", "memory_encoder", "memory_attention")


@dataclass
class Case:
    """One graph run: ``feeds`` (named float32 arrays per the contract) and the reference outputs."""

    graph: str
    case: str
    feeds: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]


@dataclass
class Row:
    """One compared tensor."""

    backend: str
    precision: str
    graph: str
    case: str
    output: str
    kind: str
    max_abs: float
    mean_abs: float
    cosine: float
    psnr: float
    rel_max_abs: float
    passed: bool
    problems: list[str] = field(default_factory=list)
    mask_iou: float | None = None  # tracker rows: IoU of the binarized masks (logits > 0)
    tolerance: dict | None = None  # the bound applied: kind, rel_max_abs, min_cosine (tolerances.py)

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("max_abs", "mean_abs", "cosine", "psnr", "rel_max_abs"):
            if isinstance(d[k], float) and not math.isfinite(d[k]):
                d[k] = str(d[k])
        return d


@dataclass
class VerifyReport:
    """All rows, plus backends that were skipped (no runtime here) and errors that prevented a run."""

    bundle: str
    weights: dict
    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # quantized precisions: "backend/precision" -> {"graphs": per-graph accuracy vs fp32,
    # "tracker": TrackerAccuracy.as_dict(), "against": what the fp32 side was, "plot": path,
    # "recipe": the manifest's recipe name, "artifact_bytes": {"total", "fp32_total"}}
    quant: dict[str, dict] = field(default_factory=dict)
    # which ONNX files were run: "onnx" (the .onnx artifacts) or "ort" (their .ort companions)
    onnx_format: str = "onnx"

    @property
    def passed(self) -> bool:
        return (
            not self.errors
            and bool(self.rows)
            and all(r.passed for r in self.rows)
            and all(q["tracker"]["passed"] for q in self.quant.values() if "tracker" in q)
        )

    def as_dict(self) -> dict:
        return {
            "bundle": self.bundle,
            "weights": self.weights,
            "passed": self.passed,
            "rows": [r.as_dict() for r in self.rows],
            "skipped": self.skipped,
            "errors": self.errors,
            "quantization": self.quant,
            "onnx_format": self.onnx_format,
        }


# --------------------------------------------------------------------------- reference


def reference_runtime(bundle: Bundle, checkpoint: str | os.PathLike | None = None) -> Runtime:
    """The PyTorch reference rebuilt from the bundle's weights (see :meth:`TorchRuntime.from_bundle`)."""
    return TorchRuntime.from_bundle(bundle, checkpoint)


def realistic_cases(ref: Runtime, graphs: list[str] | None = None) -> list[Case]:
    """Reference-chained inputs for every graph (see module docstring).

    * ``image_encoder/frame0``: procedural frame 0, preprocessed (1,3,1024,1024).
    * ``prompt_decoder/click``: frame-0 vis with ``use_no_mem=1``, one positive click on the
      disk + the padding point, no mask prompt.
    * ``memory_encoder/prompted`` (binarize=1) and ``/tracked`` (binarize=0): frame-0 vis and
      the best multimask candidate's logits.
    * ``memory_attention/frame1``: frame-1 vis; bank: slot 0 = the prompted memory
      (conditioning, tpos 6), slot 1 = the tracked memory (1 frame back, tpos 0), pointers 0..1
      = the chosen mask token's pointer; the remaining slots are zero padding.
    """
    import torch

    wanted = set(graphs or ref.contracts)
    cases: list[Case] = []

    def run(graph: str, case: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}
        out = ref.run(graph, feeds)
        if graph in wanted:
            cases.append(Case(graph, case, feeds, out))
        return out

    opts = ref.options
    img0 = run("image_encoder", "frame0", {"image": preprocess(procedural_frame(0))})
    n_points = int(ref.contracts["prompt_decoder"].inputs[4].shape[1])
    click = PointPrompt(np.array([CLICK_XY], np.float32), np.array([1]))
    dec = run("prompt_decoder", "click", decoder_feeds(img0, img0["vis"], True, click, None, n_points))
    if not wanted & {"memory_encoder", "memory_attention"}:
        return cases
    best = 1 + int(np.argmax(dec["iou"][0, 1:]))
    mask_low = dec["masks"][:, best : best + 1]
    ptr = dec["ptr_all"][0, best]
    mem_p = run("memory_encoder", "prompted", memory_encoder_feeds(img0["vis"], mask_low, binarize=True))
    mem_t = run("memory_encoder", "tracked", memory_encoder_feeds(img0["vis"], mask_low, binarize=False))
    if "memory_attention" not in wanted:
        return cases
    shapes = {spec.name: spec.shape for spec in ref.contracts["memory_attention"].inputs}
    bank = assemble_bank(
        1,
        {0: MemoryEntry(mem_p["mem"][0], ptr)},
        {0: MemoryEntry(mem_t["mem"][0], ptr)},
        reverse=False,
        num_frames=2,
        max_cond_frames=int(opts.get("max_cond_frames", 2)),
        num_spatial_slots=int(opts.get("num_spatial_slots", shapes["mem_tpos"][1])),
        num_ptr_slots=int(opts.get("num_ptr_slots", shapes["ptr"][1])),
    )
    with torch.inference_mode():
        img1 = ref.run("image_encoder", {"image": preprocess(procedural_frame(1))})
    run("memory_attention", "frame1", bank.feeds(img1["vis"]))
    return cases


# --------------------------------------------------------------------------- comparison


def compare_runtime(runtime: Runtime, backend: str, precision: str, cases: list[Case]) -> list[Row]:
    """Run every case on ``runtime`` and compare each output with the reference under the tolerance table."""
    rows = []
    for c in cases:
        if c.graph not in runtime.contracts:
            continue
        out = runtime.run(c.graph, c.feeds)
        for name, ref in c.reference.items():
            kind = OUTPUT_KINDS.get(name, "features")
            rows.append(
                _row(backend, precision, c.graph, c.case, name, kind, ref, out[name], f"{c.graph}.{name}")
            )
    return rows


def _row(
    backend: str,
    precision: str,
    graph: str,
    case: str,
    output: str,
    kind: str,
    ref,
    test,
    label: str,
    extra_problems: list[str] | None = None,
    iou: float | None = None,
) -> Row:
    """Compare ``test`` with ``ref`` under the tolerance of ``kind``; ``extra_problems`` also fail the row."""
    cmp = compare(label, ref, test)
    tol = tolerance(backend, precision, kind)
    problems = tol.check(cmp) + list(extra_problems or [])
    return Row(
        backend,
        precision,
        graph,
        case,
        output,
        kind,
        cmp.max_abs,
        cmp.mean_abs,
        cmp.cosine,
        cmp.psnr,
        cmp.rel_max_abs,
        not problems,
        problems,
        iou,
        {"kind": kind, "rel_max_abs": tol.rel_max_abs, "min_cosine": tol.min_cosine},
    )


def track_clip(runtime: Runtime, num_frames: int = CLIP_FRAMES) -> list:
    """Track the verify clip on ``runtime``: one :class:`~edgetam_export.tracker.tracker.TrackerOutput`
    per frame 0..num_frames-1 (objects 1 and 2 in that order; object 2, the box, only when the
    prompt decoder has the slots for it, i.e. ``max_points >= 3``).

    ``fill_hole_area=0``: hole filling is a step function of the logits, so it is left out of
    a numerical comparison (it is the same host code for every backend).
    """

    tracker = Tracker(runtime, fill_hole_area=0)
    session = tracker.init_video_session(video=procedural_video(num_frames))
    tracker.add_inputs_to_inference_session(
        session, frame_idx=0, obj_ids=1, input_points=[[list(CLICK_XY)]], input_labels=[[1]]
    )
    if tracker.max_points >= 3:  # a box takes two point slots plus the padding slot
        tracker.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=2, input_boxes=[list(CLIP_BOX)])
    return list(tracker.propagate_in_video_iterator(session))


# The reference's clip outputs, per reference runtime (verify_bundle calls the hook once per
# backend/precision with the same reference).
_CLIP_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def verify_tracker_clip(runtime: Runtime, reference: Runtime, backend: str, precision: str) -> list[Row]:
    """Track a short clip with ``runtime`` and with ``reference`` and compare every frame.

    The clip (:func:`track_clip`): procedural frames 0..2, object 1 a click on the disk
    :data:`CLICK_XY`, object 2 a box on the square :data:`CLIP_BOX`, both on frame 0, then
    propagation; it runs every graph, the host memory bank and the candidate decisions.
    Rows (graph ``tracker``, case ``clip/f{t}/obj{id}`` or ``clip/f{t}``):

    * ``masks`` per frame and object: the low-res mask logits under the ``logits`` tolerance of
      ``(backend, precision)``, and the mask IoU (``logits > 0``, :attr:`Row.mask_iou`) against
      ``MASK_IOU[(backend, precision)]``;
    * ``scores`` per frame: the object score logits of all objects (``scores`` tolerance).

    Returns no rows when ``runtime`` lacks one of the four graphs (a partial bundle).
    """
    if not all(g in runtime.contracts for g in TRACKER_GRAPHS):
        return []
    expected = _CLIP_CACHE.get(reference)
    if expected is None:
        expected = _CLIP_CACHE[reference] = track_clip(reference)
    got = track_clip(runtime)
    min_iou = MASK_IOU[(backend, precision)]
    rows = []
    for ref, out in zip(expected, got, strict=True):
        t = ref.frame_idx
        if out.frame_idx != t or out.obj_ids != ref.obj_ids:
            raise RuntimeError(
                f"tracker clip: frame {out.frame_idx} objects {out.obj_ids} where the reference "
                f"yields frame {t} objects {ref.obj_ids}"
            )
        for n, oid in enumerate(ref.obj_ids):
            iou = mask_iou(ref.pred_masks[n, 0], out.pred_masks[n, 0])
            low = [f"tracker clip f{t} obj {oid} masks: IoU {iou:.6f} < {min_iou}"] if iou < min_iou else []
            rows.append(
                _row(
                    backend,
                    precision,
                    "tracker",
                    f"clip/f{t}/obj{oid}",
                    "masks",
                    "logits",
                    ref.pred_masks[n, 0],
                    out.pred_masks[n, 0],
                    f"tracker clip f{t} obj {oid} masks",
                    low,
                    iou,
                )
            )
        rows.append(
            _row(
                backend,
                precision,
                "tracker",
                f"clip/f{t}",
                "scores",
                "scores",
                ref.object_score_logits,
                out.object_score_logits,
                f"tracker clip f{t} scores",
            )
        )
    return rows


# Reference + cases of the last verified weights/options (rebuilding them costs two image-encoder
# runs; tests and repeated verifications in one process reuse them).
_CACHE: dict[str, tuple] = {}


def reference_and_cases(bundle: Bundle, checkpoint=None, graphs: tuple[str, ...] | None = None):
    """``(reference runtime, realistic cases)`` for ``bundle``'s weights and options (cached: the last one)."""
    graphs = tuple(graphs or bundle.contracts)
    key = json.dumps(
        [bundle.weights, bundle.options, sorted(graphs), str(checkpoint)], sort_keys=True, default=str
    )
    if key not in _CACHE:
        ref = reference_runtime(bundle, checkpoint)
        _CACHE.clear()
        _CACHE[key] = (ref, realistic_cases(ref, list(graphs)))
    else:
        ref = _CACHE[key][0]
        for name, c in bundle.contracts.items():
            if ref.contracts[name].as_dict() != c.as_dict():
                raise BundleError(f"the reference's {name!r} contract differs from the bundle's")
    return _CACHE[key]


def verify_bundle(
    bundle: Bundle | str | os.PathLike,
    backends: list[str] | None = None,
    precisions: list[str] | None = None,
    checkpoint: str | os.PathLike | None = None,
    graphs: list[str] | None = None,
    runtime_kwargs: dict | None = None,
    on_runtime: Callable[[str, str], None] | None = None,
    scenario_frames: int | None = None,
    plot_dir: str | os.PathLike | None = None,
    onnx_format: str = "onnx",
) -> VerifyReport:
    """Verify every (backend, precision) of ``bundle`` (or the chosen subset) against the reference.

    Backends whose runtime is not installed here are recorded in ``skipped`` when they were
    not explicitly requested, and in ``errors`` (failing the report) when they were.

    Quantized precisions (``int8``, ``mixed``) are compared per graph with the reference under
    their own tolerance rows, then measured against the fp32 artifacts of the same backend
    (the PyTorch reference if the bundle has none) by :mod:`~edgetam_export.verify.quant_accuracy`:
    per-graph accuracy and the tracker-level scenario (``scenario_frames``, default 40),
    whose bound (``QUANT_TRACKER``) fails the report; ``plot_dir`` gets one IoU plot per
    quantized precision (``<backend>.<precision>.iou.png``).

    ``onnx_format="ort"`` runs the ONNX artifacts' ORT-format ``.ort`` companions (what a
    phone's onnxruntime loads) instead of the ``.onnx`` files, under the same tolerances: both
    sides of a quantized comparison then use ``.ort`` files.
    """

    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if onnx_format not in ONNX_MODEL_FORMATS:
        raise ValueError(f"onnx_format must be one of {ONNX_MODEL_FORMATS}, got {onnx_format!r}")
    report = VerifyReport(str(bundle.root), bundle.weights, onnx_format=onnx_format)
    for b in backends or []:
        if b not in bundle.backends:
            raise BundleError(
                f"{bundle.root}: no {b!r} artifacts in this bundle (it holds {bundle.backends})"
            )
    ref, cases = reference_and_cases(bundle, checkpoint, tuple(graphs or bundle.contracts))
    for backend in backends or bundle.backends:
        for precision in bundle.precisions(backend):
            if precisions and precision not in precisions:
                continue
            key = f"{backend}/{precision}"
            if on_runtime:
                on_runtime(backend, precision)
            kwargs = _backend_kwargs(backend, runtime_kwargs, onnx_format)
            try:
                rt = runtime_from_bundle(bundle, backend, precision, **kwargs)
            except MissingBackendError as e:
                (report.errors if backends else report.skipped)[key] = str(e)
                continue
            try:
                report.rows += compare_runtime(rt, backend, precision, cases)
                if precision in QUANTIZED_PRECISIONS:
                    report.quant[key] = quantized_accuracy(
                        bundle, rt, ref, cases, backend, precision, kwargs, scenario_frames, plot_dir
                    )
                else:
                    report.rows += verify_tracker_clip(rt, ref, backend, precision)
            except Exception as e:
                report.errors[key] = f"{type(e).__name__}: {e}"
    return report


def _backend_kwargs(backend: str, runtime_kwargs: dict | None, onnx_format: str) -> dict:
    """The runtime constructor's keyword arguments for ``backend`` (``model_format`` for ONNX only)."""
    kwargs = dict(runtime_kwargs or {})
    if backend == "onnx":
        kwargs["model_format"] = onnx_format
    return kwargs


# fp32 scenario outputs per (bundle root, backend, model format, frames): the float side is tracked once per process.
_FP32_SCENARIO: dict[tuple, list] = {}


def quantized_accuracy(
    bundle: Bundle,
    rt: Runtime,
    ref: Runtime,
    cases: list[Case],
    backend: str,
    precision: str,
    runtime_kwargs: dict | None = None,
    scenario_frames: int | None = None,
    plot_dir: str | os.PathLike | None = None,
) -> dict:
    """Per-graph and tracker-level accuracy of ``rt`` (quantized) vs the fp32 artifacts of ``backend``."""
    from .quant_accuracy import SCENARIO_FRAMES, graph_accuracy, plot_iou, track_scenario, tracker_accuracy

    frames = int(scenario_frames or SCENARIO_FRAMES)
    fmt = (runtime_kwargs or {}).get("model_format", "onnx")
    if "fp32" in bundle.precisions(backend):
        fp32 = runtime_from_bundle(bundle, backend, "fp32", **(runtime_kwargs or {}))
        against = f"{backend} fp32" + (f" (.{fmt})" if backend == "onnx" and fmt != "onnx" else "")
    else:
        fp32, against = ref, "pytorch reference (the bundle has no fp32 artifacts for this backend)"
    graphs = [a["graph"] for a in bundle.artifacts if (a["backend"], a["precision"]) == (backend, precision)]
    out: dict = {
        "against": against,
        "recipe": bundle.quantization(backend, precision).get("recipe"),
        "artifact_bytes": {
            "total": bundle.artifact_bytes(backend, precision),
            "fp32_total": bundle.artifact_bytes(backend, "fp32", graphs),  # the same graphs at fp32
        },
        "graphs": graph_accuracy(rt, fp32, cases),
    }
    if all(g in rt.contracts for g in TRACKER_GRAPHS):
        key = (str(bundle.root), bundle.digest, backend if fp32 is not ref else "pytorch", fmt, frames)
        if key not in _FP32_SCENARIO:
            _FP32_SCENARIO.clear()
            _FP32_SCENARIO[key] = track_scenario(fp32, frames)
        acc = tracker_accuracy(track_scenario(rt, frames), _FP32_SCENARIO[key], backend, precision)
        out["tracker"] = acc.as_dict()
        if plot_dir is not None:
            out["plot"] = str(plot_iou(acc, os.path.join(plot_dir, f"{backend}.{precision}.iou.png")))
    return out
