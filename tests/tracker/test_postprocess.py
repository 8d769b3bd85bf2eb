"""Host-side post-processing: hole filling, non-overlap, mask prompts, resizing."""

import numpy as np
import torch
import torch.nn.functional as F

from edgetam_export.tracker.postprocess import (
    fill_holes,
    mask_downsample,
    mask_logits_low_res,
    mask_to_model_input,
    non_overlap,
    resize_logits,
)


def test_fill_holes_area_and_connectivity():
    m = np.full((1, 1, 32, 32), 5.0, np.float32)
    m[0, 0, 2:4, 2:4] = -1.0  # area 4: filled
    m[0, 0, 10:13, 10:13] = -1.0  # area 9: kept (> 8)
    m[0, 0, 20, 20] = -1.0  # two diagonal pixels form ONE 8-connected hole of area 2
    m[0, 0, 21, 21] = -1.0
    m[0, 0, 0, 31] = 0.0  # <= 0 counts as background, border holes count too
    out = fill_holes(m, 8)
    assert (out[0, 0, 2:4, 2:4] == np.float32(0.1)).all()
    assert (out[0, 0, 10:13, 10:13] == -1.0).all()
    assert out[0, 0, 20, 20] == np.float32(0.1) and out[0, 0, 21, 21] == np.float32(0.1)
    assert out[0, 0, 0, 31] == np.float32(0.1)
    assert (out[m > 0] == m[m > 0]).all()
    # a large background is never a hole; 0 disables filling and returns the input
    assert fill_holes(-np.ones((1, 1, 8, 8), np.float32), 8).max() == -1.0
    assert fill_holes(m, 0) is m


def test_non_overlap():
    a = np.array([[[[3.0, -1.0]]], [[[2.0, 4.0]]]], np.float32)
    out = non_overlap(a)
    np.testing.assert_array_equal(out, [[[[3.0, -10.0]]], [[[-10.0, 4.0]]]])
    assert non_overlap(a[:1]) is not None and (non_overlap(a[:1]) == a[:1]).all()


def test_mask_prompt_path_matches_torch():
    mask = np.zeros((480, 640), bool)
    mask[100:300, 200:500] = True
    m = mask_to_model_input(mask)
    ref = F.interpolate(
        torch.from_numpy(mask.astype(np.float32))[None, None],
        size=(1024, 1024),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    np.testing.assert_array_equal(m, (ref >= 0.5).float().numpy())
    high, low = mask_logits_low_res(m)
    assert set(np.unique(high)) == {-10.0, 10.0} and low.shape == (1, 1, 256, 256)
    w = np.full((1, 1, 4, 4), 1 / 16, np.float32)
    down = mask_downsample(m, w, np.zeros(1, np.float32))
    assert down.shape == (1, 1, 256, 256) and abs(float(down.mean()) - float(m.mean())) < 1e-6


def test_resize_logits_identity_and_shape():
    x = np.random.default_rng(0).standard_normal((2, 1, 256, 256)).astype(np.float32)
    np.testing.assert_array_equal(resize_logits(x, (256, 256)), x)
    assert resize_logits(x, (480, 640)).shape == (2, 1, 480, 640)
