"""Procedural frames and preprocessing are bit-exact with the golden recipe."""

import hashlib

import numpy as np
import pytest

from edgetam_export import testing
from edgetam_export.preprocessing import preprocess
from edgetam_export.procedural import procedural_frame, shape_masks, visible_masks


@pytest.mark.parametrize("t", [0, 1, 5, 11])
def test_frame_bytes(t, golden_json):
    frame = procedural_frame(t)
    assert frame.shape == (1024, 1024, 3) and frame.dtype == np.uint8
    assert hashlib.sha256(frame.tobytes()).hexdigest() == golden_json["video"]["frame_uint8_sha256"][t]


def test_preprocessed_frame0(golden_json):
    x = preprocess(procedural_frame(0))
    assert x.shape == (1, 3, 1024, 1024) and x.dtype == np.float32
    assert hashlib.sha256(x.tobytes()).hexdigest() == golden_json["video"]["frame0_preprocessed_f32_sha256"]


def test_frames_beyond_golden_are_valid_and_move():
    a, b = procedural_frame(30), procedural_frame(31)
    assert a.shape == (1024, 1024, 3) and not np.array_equal(a, b)
    # the red disk centre at t=30 is (590, 530)
    assert tuple(a[530, 590]) == (225, 60, 50)


def test_masks():
    m, v = shape_masks(0), visible_masks(0)
    assert m["disk"][380, 260] and v["disk"][380, 260]
    assert not (v["square"] & v["disk"]).any() and not (v["ellipse"] & v["disk"]).any()
    assert v["square"].sum() <= m["square"].sum()


def test_bad_inputs():
    with pytest.raises(ValueError, match="1024x1024"):
        preprocess(np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((1024, 1024, 3), np.float32))
    with pytest.raises(ValueError, match=">= 0"):
        shape_masks(-1)


def test_testing_module_keeps_its_public_names():
    """``edgetam_export.testing`` is kept as a re-export for code written against the old layout."""
    assert testing.procedural_frame is procedural_frame and testing.preprocess is preprocess
    assert testing.IMAGE_SIZE == 1024 and testing.visible_masks is visible_masks


def test_preprocess_lookup_equals_the_formula_on_every_level():
    """The look-up table is the per-pixel formula, bit for bit, for all 256 levels of each channel."""
    from edgetam_export.models.constants import PIXEL_MEAN, PIXEL_STD

    levels = np.arange(256, dtype=np.uint8)
    frame = np.stack(np.meshgrid(levels, levels, indexing="ij"), -1)[:, :, [0, 1, 0]]  # (256, 256, 3)
    frame = np.tile(frame, (4, 4, 1))  # 1024 x 1024
    want = (frame.astype(np.float32) / np.float32(255.0) - np.asarray(PIXEL_MEAN, np.float32)) / np.asarray(
        PIXEL_STD, np.float32
    )
    got = preprocess(frame)
    assert got.shape == (1, 3, 1024, 1024) and got.dtype == np.float32
    assert np.array_equal(got[0].transpose(1, 2, 0), want)
