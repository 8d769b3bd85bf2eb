"""Host-side decision logic (edgetam_export.tracker.decisions): multimask, dynamic stability, gating."""

from __future__ import annotations

import numpy as np
import pytest

from edgetam_export.tracker.decisions import (
    NO_OBJ_SCORE,
    best_multimask_index,
    decide,
    stability_score,
    use_multimask,
)

H = W = 256


def _outputs(ious, score=1.0, seed=0):
    """Decoder-like outputs: 4 distinct masks, given IoUs, 4 distinct pointers."""
    rng = np.random.default_rng(seed)
    masks = rng.normal(size=(1, 4, H, W)).astype(np.float32)
    iou = np.asarray(ious, dtype=np.float32).reshape(1, 4)
    ptr_all = rng.normal(size=(1, 4, 256)).astype(np.float32)
    no_obj = rng.normal(size=(256,)).astype(np.float32)
    return masks, iou, np.array([[score]], np.float32), ptr_all, no_obj


def _mask_with_counts(n_above: int, n_band: int, rest: float = -1.0) -> np.ndarray:
    """(256,256) mask with n_above pixels > 0.05, n_band pixels in (-0.05, 0.05], others = rest."""
    m = np.full(H * W, rest, np.float32)
    m[:n_above] = 1.0
    m[n_above : n_above + n_band] = 0.0
    return m.reshape(H, W)


def test_use_multimask_point_counts():
    assert use_multimask(0) and use_multimask(1)
    assert not use_multimask(2)  # a box is 2 points
    assert not use_multimask(3)


def test_multimask_selects_best_of_tokens_1_to_3_and_its_pointer():
    # mask 0 has the highest IoU but is never a multimask candidate
    masks, iou, score, ptr_all, no_obj = _outputs([0.99, 0.2, 0.7, 0.5])
    d = decide(masks, iou, score, ptr_all, no_obj, multimask=True)
    assert d.chosen == 2 and d.ptr_token == 2 and d.candidate_index == 1
    np.testing.assert_array_equal(d.low_res_mask, masks[0, 2:3])
    np.testing.assert_array_equal(d.ptr, ptr_all[0, 2])
    assert d.iou == pytest.approx(0.7)
    assert d.appear and d.stability is None
    assert d.low_res_mask.shape == (1, H, W) and d.ptr.shape == (256,)


def test_multimask_ties_take_first_maximum():
    assert best_multimask_index(np.array([0.0, 0.5, 0.5, 0.5], np.float32)) == 1
    assert best_multimask_index(np.array([0.0, 0.1, 0.6, 0.6], np.float32)) == 2


def test_stability_score_counts_strict_thresholds():
    assert stability_score(_mask_with_counts(30, 10)) == np.float32(30 / 40)
    # exactly ±0.05 in fp32: strict ">" so +0.05 is not "above", -0.05 is not in the union
    m = np.full((H, W), -1.0, np.float32)
    m[0, :4] = 0.05
    m[1, :6] = 1.0
    m[2, :3] = -0.05
    assert stability_score(m) == np.float32(6 / 10)
    # empty union -> 1
    assert stability_score(np.full((H, W), -0.05, np.float32)) == 1.0
    assert stability_score(np.full((H, W), -30.0, np.float32)) == 1.0


@pytest.mark.parametrize(
    ("n_above", "n_band", "stable"),
    [
        (49, 1, True),  # exactly 0.98 (fp32 49/50 == fp32 0.98): >= keeps mask 0
        (48, 1, False),  # 48/49 = 0.97959 < 0.98 -> fallback to the best of masks 1..3
        (97, 3, False),  # 0.97 -> fallback
        (0, 0, True),  # empty union -> stability 1
    ],
)
def test_single_mask_dynamic_stability(n_above, n_band, stable):
    masks, iou, score, ptr_all, no_obj = _outputs([0.9, 0.3, 0.4, 0.8])
    masks[0, 0] = _mask_with_counts(n_above, n_band)
    d = decide(masks, iou, score, ptr_all, no_obj, multimask=False)
    assert d.chosen == (0 if stable else 3)
    assert d.ptr_token == 0  # the pointer always comes from token 0 in single-mask mode
    np.testing.assert_array_equal(d.ptr, ptr_all[0, 0])
    np.testing.assert_array_equal(d.low_res_mask, masks[0, d.chosen : d.chosen + 1])
    assert d.iou == pytest.approx(float(iou[0, d.chosen]))
    assert d.stability is not None


@pytest.mark.parametrize("score", [0.0, -0.5, -20.0])
@pytest.mark.parametrize("multimask", [True, False])
def test_object_gate_absent(score, multimask):
    """score <= 0 (strict > 0 test): mask -> -1024, pointer -> no_obj_ptr; selection unchanged."""
    masks, iou, s, ptr_all, no_obj = _outputs([0.1, 0.2, 0.9, 0.3], score=score)
    masks[0, 0] = _mask_with_counts(10, 90)  # unstable -> single-mask path falls back to 2
    d = decide(masks, iou, s, ptr_all, no_obj, multimask=multimask)
    assert not d.appear
    assert d.chosen == 2
    assert np.all(d.low_res_mask == np.float32(NO_OBJ_SCORE))
    np.testing.assert_array_equal(d.ptr, no_obj)
    assert d.iou == pytest.approx(0.9)
    assert d.obj_score == score


def test_object_gate_present_tiny_positive():
    masks, iou, s, ptr_all, no_obj = _outputs([0.1, 0.2, 0.9, 0.3], score=1e-6)
    d = decide(masks, iou, s, ptr_all, no_obj, multimask=True)
    assert d.appear
    np.testing.assert_array_equal(d.ptr, ptr_all[0, 2])


def test_stability_uses_ungated_logits():
    """Official order: the decoder selects (stability on raw logits) before the score gate."""
    masks, iou, s, ptr_all, no_obj = _outputs([0.1, 0.2, 0.9, 0.3], score=-1.0)
    masks[0, 0] = _mask_with_counts(10, 90)  # stability 0.1 on the raw logits
    d = decide(masks, iou, s, ptr_all, no_obj, multimask=False)
    assert d.stability == pytest.approx(0.1, abs=1e-6)
    assert d.chosen == 2 and d.iou == pytest.approx(0.9)


def test_accepts_torch_tensors_and_flat_shapes():
    torch = pytest.importorskip("torch")
    masks, iou, s, ptr_all, no_obj = _outputs([0.1, 0.2, 0.9, 0.3])
    a = decide(masks, iou, s, ptr_all, no_obj, multimask=True)
    b = decide(
        torch.from_numpy(masks[0]),
        torch.from_numpy(iou[0]),
        torch.tensor(1.0),
        torch.from_numpy(ptr_all[0]),
        torch.from_numpy(no_obj[None]),
        multimask=True,
    )
    assert a.chosen == b.chosen
    np.testing.assert_array_equal(a.ptr, b.ptr)
    np.testing.assert_array_equal(a.low_res_mask, b.low_res_mask)


def test_golden_decisions_from_golden_arrays(golden):
    """The official discrete choices follow from the official arrays alone."""
    pt = golden("prompt_point")
    ious = np.concatenate([[0.0], pt["iou_predictions"]]).astype(np.float32)
    assert best_multimask_index(ious) - 1 == int(pt["best_index"])

    box = golden("prompt_box")
    masks = np.zeros((4, H, W), np.float32)
    masks[0] = box["decoder_mask0_fp16"].astype(np.float32)
    masks[int(box["selected_token_index"])] = box["low_res_mask"]
    ptr_all = np.zeros((4, 256), np.float32)
    ptr_all[0] = box["obj_ptr"]
    d = decide(
        masks, box["decoder_ious_all4"], box["object_score_logit"], ptr_all, np.zeros(256), multimask=False
    )
    assert d.chosen == int(box["selected_token_index"])
    # fp16 storage of mask 0 can move a pixel across ±0.05; the margin to 0.98 is 0.197
    assert d.stability == pytest.approx(float(box["stability_token0"]), abs=5 / 14433)
    assert d.iou == pytest.approx(float(box["iou_prediction"][0]), abs=0)
    np.testing.assert_array_equal(d.low_res_mask[0], box["low_res_mask"])
    np.testing.assert_array_equal(d.ptr, box["obj_ptr"])
