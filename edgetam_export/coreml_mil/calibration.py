"""W8A8 calibration for Core ML on any OS: per-tensor activation ranges of an ML Program, collected with the MIL evaluator.

coremltools' ``linear_quantize_activations`` gathers these statistics with ``MLModel.predict``
(macOS only). :func:`activation_ranges` produces the same dictionary (``{tensor name: {"rmin",
"rmax"}}``) by evaluating the float program op by op on each calibration sample, taking the
min/max over *all* samples, then applies coremltools' own concat adjustment (the inputs and output
of a concat share one range). Importing :mod:`edgetam_export.coreml_mil` registers it as the
Core ML exporter's activation observer (``exporters.coreml_quant.set_activation_observer``).
"""

from __future__ import annotations

import numpy as np

from .evaluator import MILEvaluator, program_from_mlmodel

__all__ = ["activation_ranges"]


def activation_ranges(mlmodel, samples: list[dict[str, np.ndarray]], num_threads: int | None = None) -> dict:
    """``{tensor name: {"rmin": float, "rmax": float}}`` of every float tensor of ``mlmodel`` over ``samples``.

    Args:
        mlmodel: a float ML Program ``MLModel`` (in memory or loaded; never compressed).
        samples: ``[{input name: float32 array in the declared shape}]``, at least one.
        num_threads: torch threads of the evaluator (None: leave as is).
    """
    if not samples:
        raise ValueError("activation_ranges needs at least one calibration sample")
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _adjust_concat_surrounding_activation_stats,
    )

    prog, _ = program_from_mlmodel(mlmodel)
    ev = MILEvaluator(prog, track_ranges=True, track_moves=True, num_threads=num_threads)
    stats: dict[str, dict[str, float]] = {}

    def update(name: str, lo: float, hi: float) -> None:
        s = stats.setdefault(name, {"rmin": lo, "rmax": hi})
        s["rmin"], s["rmax"] = min(s["rmin"], lo), max(s["rmax"], hi)

    for feeds in samples:
        for name, x in feeds.items():
            a = np.asarray(x, dtype=np.float32)
            update(name, float(a.min()), float(a.max()))
        ev.run(feeds)
        for name, (lo, hi) in ev.last_report.ranges.items():
            if np.isfinite(lo) and np.isfinite(hi):
                update(name, lo, hi)
    concats = [
        [v.name for v in op.inputs["values"]] + [op.outputs[0].name]
        for op in ev.ops
        if op.op_type == "concat"
    ]
    # coremltools' helper takes only groups whose tensors all have ranges
    concats = [[n for n in group if n in stats] for group in concats]
    _adjust_concat_surrounding_activation_stats([g for g in concats if len(g) > 1], stats)
    return stats
