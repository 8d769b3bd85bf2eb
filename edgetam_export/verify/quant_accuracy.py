"""The accuracy cost of a quantized precision: per graph and at the tracker level, against the float32 artifacts of the same backend.

* Per graph: every output of the reference-chained verify cases
  (:func:`~edgetam_export.verify.bundle_check.realistic_cases` feeds) run by the quantized and
  the fp32 runtime: cosine and ``max-abs / max|fp32|``.
* Tracker level: the accuracy scenario, :data:`SCENARIO_FRAMES` procedural frames with object 1
  clicked on the disk and object 2 boxed on the square (frame 0), tracked by both runtimes:
  per-frame, per-object mask IoU (low-res logits > 0, (256, 256)), object-score sign agreement,
  where the error grows (first frame below the bound, worst frame, first vs second half), and a
  matplotlib plot of IoU along the video. Bounds: :data:`~edgetam_export.verify.tolerances.QUANT_TRACKER`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..calibration import BOX_XYXY, CLICK_XY
from ..procedural import procedural_video
from ..runtime.base import Runtime
from ..tracker import Tracker
from .metrics import compare, mask_iou
from .tolerances import QUANT_TRACKER, TrackerBound

SCENARIO_FRAMES = 40


@dataclass
class TrackerAccuracy:
    """Tracker-level comparison of a quantized runtime with the fp32 one over the scenario.

    ``iou[t][k]``: frame t, object k (ids ``obj_ids``); ``score_signs_equal[t][k]``;
    ``scores`` / ``scores_fp32``: object-score logits ``[t][k]``.
    """

    backend: str
    precision: str
    frames: int
    obj_ids: list[int]
    iou: list[list[float]]
    score_signs_equal: list[list[bool]]
    scores: list[list[float]]
    scores_fp32: list[list[float]]
    bound: dict
    problems: list[str] = field(default_factory=list)

    @property
    def per_frame_min(self) -> list[float]:
        return [min(r) for r in self.iou]

    @property
    def min_iou(self) -> float:
        return float(min(self.per_frame_min))

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.iou))

    @property
    def sign_agreement(self) -> float:
        return float(np.mean(self.score_signs_equal))

    @property
    def passed(self) -> bool:
        return not self.problems

    def growth(self) -> dict:
        """Where the error grows: worst frame, first frame below the bound, mean IoU per half."""
        mins = self.per_frame_min
        half = max(1, len(mins) // 2)
        below = [t for t, v in enumerate(mins) if v < self.bound["min_iou"]]
        return {
            "worst_frame": int(np.argmin(mins)),
            "first_frame_below_bound": below[0] if below else None,
            "mean_iou_first_half": float(np.mean(self.iou[:half])),
            "mean_iou_second_half": float(np.mean(self.iou[half:] or self.iou[:half])),
        }

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "min_iou": self.min_iou,
            "mean_iou": self.mean_iou,
            "per_frame_min_iou": self.per_frame_min,
            "sign_agreement": self.sign_agreement,
            "growth": self.growth(),
            "passed": self.passed,
        }


def track_scenario(runtime: Runtime, num_frames: int = SCENARIO_FRAMES) -> list:
    """Track the scenario on ``runtime``: one TrackerOutput per frame (objects 1 (click) and 2 (box))."""
    tracker = Tracker(runtime, fill_hole_area=0)
    session = tracker.init_video_session(video=procedural_video(num_frames))
    tracker.add_inputs_to_inference_session(
        session, frame_idx=0, obj_ids=1, input_points=[[list(CLICK_XY)]], input_labels=[[1]]
    )
    if tracker.max_points >= 3:  # a box takes two point slots plus the padding slot
        tracker.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=2, input_boxes=[list(BOX_XYXY)])
    return list(tracker.propagate_in_video_iterator(session))


def tracker_accuracy(
    quant_outputs: list,
    fp32_outputs: list,
    backend: str,
    precision: str,
    bound: TrackerBound | None = None,
) -> TrackerAccuracy:
    """Compare the scenario's outputs (from :func:`track_scenario`) under ``bound`` (default: the table's)."""
    bound = bound or QUANT_TRACKER[(backend, precision)]
    ious, signs, sq, sf = [], [], [], []
    for q, f in zip(quant_outputs, fp32_outputs, strict=True):
        if q.frame_idx != f.frame_idx or q.obj_ids != f.obj_ids:
            raise RuntimeError(
                f"scenario: frame {q.frame_idx} objects {q.obj_ids} vs fp32 {f.frame_idx} {f.obj_ids}"
            )
        ious.append([mask_iou(f.pred_masks[k, 0], q.pred_masks[k, 0]) for k in range(len(f.obj_ids))])
        a, b = np.asarray(q.object_score_logits).ravel(), np.asarray(f.object_score_logits).ravel()
        signs.append([bool((x > 0) == (y > 0)) for x, y in zip(a, b, strict=True)])
        sq.append([float(x) for x in a])
        sf.append([float(y) for y in b])
    acc = TrackerAccuracy(
        backend,
        precision,
        len(ious),
        list(fp32_outputs[0].obj_ids) if fp32_outputs else [],
        ious,
        signs,
        sq,
        sf,
        {"min_iou": bound.min_iou, "mean_iou": bound.mean_iou, "signs_equal": bound.signs_equal},
    )
    if acc.frames:
        if acc.min_iou < bound.min_iou:
            g = acc.growth()
            acc.problems.append(
                f"{backend} {precision} scenario: mask IoU {acc.min_iou:.4f} at frame {g['worst_frame']} "
                f"< {bound.min_iou} (first below at frame {g['first_frame_below_bound']})"
            )
        if acc.mean_iou < bound.mean_iou:
            acc.problems.append(
                f"{backend} {precision} scenario: mean mask IoU {acc.mean_iou:.4f} < {bound.mean_iou}"
            )
        flips = [(t, acc.obj_ids[k]) for t, row in enumerate(signs) for k, ok in enumerate(row) if not ok]
        if bound.signs_equal and flips:
            acc.problems.append(
                f"{backend} {precision} scenario: object-score sign differs from fp32 on {len(flips)} "
                f"frame/object pairs, first at frame {flips[0][0]} object {flips[0][1]}"
            )
    return acc


def graph_accuracy(quant: Runtime, fp32: Runtime, cases: list) -> dict[str, dict]:
    """``{graph: {"cosine": worst, "rel_max_abs": worst, "outputs": {name: {...}}}}`` of ``quant`` vs ``fp32`` on ``cases``."""
    out: dict[str, dict] = {}
    for c in cases:
        if c.graph not in quant.contracts or c.graph not in fp32.contracts:
            continue
        a, b = fp32.run(c.graph, c.feeds), quant.run(c.graph, c.feeds)
        g = out.setdefault(c.graph, {"cosine": 1.0, "rel_max_abs": 0.0, "outputs": {}})
        for name in a:
            cmp = compare(f"{c.graph}.{name}", a[name], b[name])
            g["outputs"][f"{c.case}/{name}"] = {"cosine": cmp.cosine, "rel_max_abs": cmp.rel_max_abs}
            g["cosine"] = min(g["cosine"], cmp.cosine)
            g["rel_max_abs"] = max(g["rel_max_abs"], cmp.rel_max_abs)
    return out


def plot_iou(acc: TrackerAccuracy, path: str | os.PathLike) -> Path:
    """PNG of per-frame mask IoU of each object (and score-sign flips) along the scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import replace_path, temp_sibling

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    t = np.arange(acc.frames)
    iou = np.asarray(acc.iou)
    for k, oid in enumerate(acc.obj_ids):
        ax.plot(t, iou[:, k], marker=".", label=f"object {oid}")
    flips = [
        (i, iou[i, k]) for i, row in enumerate(acc.score_signs_equal) for k, ok in enumerate(row) if not ok
    ]
    if flips:
        ax.scatter(*zip(*flips, strict=True), color="red", marker="x", zorder=3, label="score sign flipped")
    ax.axhline(acc.bound["min_iou"], color="grey", ls="--", lw=1, label=f"bound {acc.bound['min_iou']}")
    ax.set_xlabel("frame")
    ax.set_ylabel(f"mask IoU vs {acc.backend} fp32")
    ax.set_ylim(min(0.9, float(iou.min()) - 0.01), 1.001)
    ax.set_title(f"{acc.backend} {acc.precision}: min {acc.min_iou:.4f}, mean {acc.mean_iou:.4f}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    fig.savefig(tmp, format="png")
    plt.close(fig)
    replace_path(tmp, path)
    return path
