"""Automatic mask generation: the pipeline's building blocks, reference vs ONNX bundle, and ``segment --auto``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgetam_export.automask import (
    AutoMaskOptions,
    box_nms,
    crop_boxes,
    generate_masks,
    masks_to_boxes,
    point_grid,
    stability_scores,
)
from edgetam_export.cli import app
from edgetam_export.procedural import procedural_frame
from edgetam_export.verify.metrics import compare
from edgetam_export.verify.tolerances import tolerance

# Synthetic weights give noisy masks with predicted IoUs of 0.3-0.7 and low stability, so the
# pipeline's defaults (0.88 / 0.95) keep nothing; these keep several masks, none within 2e-3 of
# a threshold on this frame. Every noisy mask spans the image, so NMS is checked on its own.
PARITY = AutoMaskOptions(
    points_per_crop=4, pred_iou_thresh=0.5, stability_score_thresh=0.07, crops_nms_thresh=1.0
)


def test_building_blocks():
    g = point_grid(2)
    np.testing.assert_allclose(g, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    crops = crop_boxes(600, 800, 1, 512 / 1500)
    assert crops[0] == ([0, 0, 800, 600], 0) and len(crops) == 5 and all(layer == 1 for _, layer in crops[1:])
    assert max(c[2] for c, _ in crops) == 800 and max(c[3] for c, _ in crops) == 600
    m = np.zeros((2, 10, 10), bool)
    m[0, 2:5, 3:7] = True
    assert masks_to_boxes(m).tolist() == [[3, 2, 6, 4], [0, 0, 0, 0]]
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]])
    assert box_nms(boxes, np.array([0.9, 0.95, 0.5, 0.1]), 0.7).tolist() == [1, 2]
    logits = np.array([[[2.0, 0.5, -0.5, -2.0]]])
    assert stability_scores(logits, 0.0, 1.0).tolist() == [pytest.approx(1 / 3)]
    with pytest.raises(ValueError, match="points_per_crop must be >= 1"):
        AutoMaskOptions(points_per_crop=0)


def test_reference_and_onnx_bundle_give_the_same_masks(exported_bundles):
    from edgetam_export.models import build_edgetam

    from edgetam_export.runtime.loader import runtime_from_bundle
    from edgetam_export.runtime.torch_runtime import TorchRuntime

    image = procedural_frame(0)
    ref = generate_masks(TorchRuntime(build_edgetam(None)), image, PARITY)
    got = generate_masks(
        runtime_from_bundle(exported_bundles["main"], backend="onnx", precision="fp32"), image, PARITY
    )
    assert len(ref["masks"]) >= 3 and len(got["masks"]) == len(ref["masks"])
    # one-to-one matching by IoU (both come out sorted by score; match greedily by best IoU)
    unused = set(range(len(got["masks"])))
    for k, m in enumerate(ref["masks"]):
        ious = {j: (m & got["masks"][j]).sum() / max((m | got["masks"][j]).sum(), 1) for j in unused}
        j = max(ious, key=ious.get)
        assert ious[j] >= 0.99, (k, ious[j])
        unused.remove(j)
        assert not tolerance("onnx", "fp32", "scores").check(
            compare("score", ref["scores"][k], got["scores"][j])
        )


def test_segment_auto_cli(tmp_path):
    img = tmp_path / "frame.png"
    Image.fromarray(procedural_frame(2)).save(img)
    out = tmp_path / "auto"
    # the PyTorch reference (synthetic weights): segment has no --precision for the two-precision test bundle
    args = ["segment", str(img), "--auto"]
    r = CliRunner().invoke(
        app,
        [
            *args,
            "--points-per-side",
            "1",
            "--pred-iou-thresh",
            "0",
            "--stability-score-thresh",
            "0",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "masks.json").read_text())
    assert len(summary["masks"]) >= 1 and (out / "overlay.png").is_file()
    first = summary["masks"][0]
    assert (out / first["file"]).is_file() and len(first["box"]) == 4 and 0 < first["score"] < 2
    r = CliRunner().invoke(app, [*args, "--point", "3,4", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--auto takes no --point" in r.output
    r = CliRunner().invoke(app, [*args, "--points-per-side", "0", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "points_per_crop must be >= 1" in r.output
    assert not (tmp_path / "x").exists()
