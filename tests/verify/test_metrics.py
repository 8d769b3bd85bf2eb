"""The metrics and the tolerance table can fail."""

import math

import numpy as np
import pytest

from edgetam_export.verify.metrics import compare, cosine, mask_iou, max_abs, mean_abs, psnr
from edgetam_export.verify.parity import ParityError, ParityRecorder
from edgetam_export.verify.tolerances import MASK_IOU, TOLERANCES, tolerance


def test_basic_values():
    a = np.array([1.0, -2.0, 3.0])
    b = np.array([1.0, -2.5, 3.0])
    assert max_abs(a, b) == 0.5
    assert mean_abs(a, b) == pytest.approx(0.5 / 3)
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    assert psnr(a, a) == math.inf
    assert psnr(a, b) == pytest.approx(10 * math.log10(9 / (0.25 / 3)))


def test_mask_iou():
    a = np.array([1.0, 1.0, -1.0, -1.0])
    b = np.array([1.0, -1.0, -1.0, 1.0])
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert mask_iou(-np.ones(4), -np.ones(4)) == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape mismatch"):
        max_abs(np.zeros(3), np.zeros(4))


def test_recorder_fails_outside_tolerance():
    rec = ParityRecorder()
    ref = np.linspace(-1, 1, 100)
    rec.check("ok", ref, ref + 1e-7, "onnx", "fp32", "features")
    with pytest.raises(ParityError, match="max-abs"):
        rec.check("bad", ref, ref + 1e-2, "onnx", "fp32", "features")
    assert [ok for *_, ok in rec.rows] == [True, False]


def test_table_is_complete_and_justified():
    for (backend, precision), kinds in TOLERANCES.items():
        for kind, tol in kinds.items():
            assert tol.why, (backend, precision, kind)
            # float rows stay below 10% of scale; int8 rows (one step = 1/255 of a range) below 50%
            bound = 0.1 if precision in ("fp32", "fp16") else 0.5
            assert 0 < tol.rel_max_abs < bound and 0.99 <= tol.min_cosine <= 1, (backend, precision, kind)
    for key in MASK_IOU:
        assert key in TOLERANCES or key[0] == "official"
    with pytest.raises(KeyError):
        tolerance("nope", "fp32", "features")


def test_compare_reports_relative_error():
    c = compare("x", np.array([2.0, -4.0]), np.array([2.0, -4.4]))
    assert c.rel_max_abs == pytest.approx(0.1)
