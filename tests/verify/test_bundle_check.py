"""verify rows carry the tolerance that was applied, so a JSON report can be judged on its own."""

from __future__ import annotations

import numpy as np

from edgetam_export.verify.bundle_check import _row
from edgetam_export.verify.tolerances import tolerance


def test_rows_record_the_tolerance_applied():
    ref = np.linspace(-3, 3, 64, dtype=np.float32)
    for backend, precision in (("onnx", "fp32"), ("executorch", "fp16")):
        row = _row(backend, precision, "prompt_decoder", "case", "masks", "logits", ref, ref + 1e-3, "x")
        tol = tolerance(backend, precision, "logits")
        assert row.as_dict()["tolerance"] == {
            "kind": "logits",
            "rel_max_abs": tol.rel_max_abs,
            "min_cosine": tol.min_cosine,
        }
