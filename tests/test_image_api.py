"""The batched image API (EdgeTamModel + Sam2Processor shape): batching equals running each object alone, on every runtime."""

from __future__ import annotations

import numpy as np
import pytest

from edgetam_export.image_api import PAD_LOGIT, EdgeTamImageModel, post_process_masks
from edgetam_export.procedural import procedural_frame
from edgetam_export.verify.metrics import compare
from edgetam_export.verify.tolerances import tolerance

IMAGES = [procedural_frame(0), np.ascontiguousarray(procedural_frame(5)[100:800, 50:1000])]
POINTS = [[[[260, 380], [500, 520]], [[700, 300]]], [[[400, 300]]]]
LABELS = [[[1, 0], [1]], [[1]]]
BOXES = [None, [[300, 200, 600, 450]]]


class Counting:
    """Wraps a runtime and counts graph runs (embeddings must be computed once per image)."""

    def __init__(self, rt):
        self.rt, self.calls = rt, {}
        self.contracts, self.constants, self.name = rt.contracts, rt.constants, rt.name

    def run(self, graph, feeds):
        self.calls[graph] = self.calls.get(graph, 0) + 1
        return self.rt.run(graph, feeds)


@pytest.fixture(scope="module")
def torch_runtime():
    from edgetam_export.models import build_edgetam

    from edgetam_export.runtime.torch_runtime import TorchRuntime

    return TorchRuntime(build_edgetam(None))


def run_scenario(rt):
    """Batched call over both images (points, box, multimask on/off) + a previous-mask refinement; returns arrays."""
    model = EdgeTamImageModel(rt)
    res = {}
    embs = None
    for mm in (True, False):
        kw = {"images": IMAGES} if embs is None else {"image_embeddings": embs}
        out = model(**kw, input_points=POINTS, input_labels=LABELS, multimask_output=mm)
        res[f"iou{mm}"], res[f"masks{mm}"], res[f"obj{mm}"] = (
            out.iou_scores,
            out.pred_masks,
            out.object_score_logits,
        )
        embs = out.image_embeddings
    box_out = model(
        image_embeddings=embs[1:], input_points=POINTS[1:], input_labels=LABELS[1:], input_boxes=BOXES[1:]
    )
    res["box_iou"], res["box_masks"] = box_out.iou_scores, box_out.pred_masks
    best = out.pred_masks[:, :, 0]  # multimask_output=False: (B, O, 256, 256)
    refined = model(
        image_embeddings=embs,
        input_points=[[[[260, 380], [300, 420]], [[700, 300]]], [[[400, 300], [420, 330]]]],
        input_labels=[[[1, 1], [1]], [[1, 0]]],
        input_masks=[best[0, :2], best[1, :1]],
        multimask_output=False,
    )
    res["ref_iou"], res["ref_masks"], res["ref_obj"] = (
        refined.iou_scores,
        refined.pred_masks,
        refined.object_score_logits,
    )
    return res, out, refined


def alone(rt, embs, i, **kw):
    """One object of image i on its own (one image, one object; the image's embeddings reused)."""
    return EdgeTamImageModel(rt)(image_embeddings=[embs[i]], **kw)


@pytest.fixture(scope="module")
def reference(torch_runtime):
    """The scenario on the PyTorch runtime, run once: (results, last batched output, graph-run counts)."""
    rt = Counting(torch_runtime)
    res, out, _ = run_scenario(rt)
    return res, out, dict(rt.calls)


def test_batch_equals_each_object_alone_and_embeddings_are_reused(torch_runtime, reference):
    res, out, calls = reference
    assert calls["image_encoder"] == 2  # once per image, reused by every later call
    assert out.num_objects == [2, 1] and res["masksTrue"].shape == (2, 2, 3, 256, 256)
    assert res["iouFalse"].shape == (2, 2, 1) and res["objTrue"].shape == (2, 2, 1)
    # padding of image 1's missing second object
    assert (res["masksTrue"][1, 1] == PAD_LOGIT).all() and (res["iouTrue"][1, 1] == 0).all()
    assert res["objTrue"][1, 1, 0] == PAD_LOGIT
    for mm in (True, False):
        for i, k in ((0, 0), (0, 1), (1, 0)):
            one = alone(
                torch_runtime,
                out.image_embeddings,
                i,
                input_points=[[POINTS[i][k]]],
                input_labels=[[LABELS[i][k]]],
                multimask_output=mm,
            )
            for name, ref, got in (
                ("iou", one.iou_scores[0, 0], res[f"iou{mm}"][i, k]),
                ("masks", one.pred_masks[0, 0], res[f"masks{mm}"][i, k]),
                ("obj", one.object_score_logits[0, 0], res[f"obj{mm}"][i, k]),
            ):
                kind = {"iou": "scores", "masks": "logits", "obj": "scores"}[name]
                assert not tolerance("onnx", "fp32", kind).check(compare(name, ref, got))
                np.testing.assert_array_equal(ref, got)  # same graph, same inputs: bit-exact here
    one = alone(
        torch_runtime,
        out.image_embeddings,
        1,
        input_points=[[POINTS[1][0]]],
        input_labels=[[LABELS[1][0]]],
        input_boxes=[BOXES[1]],
    )
    np.testing.assert_array_equal(one.pred_masks, res["box_masks"])
    # previous-mask refinement: object (0, 1) alone with its own previous mask
    prev = res["masksFalse"][0, 1, 0]
    one = alone(
        torch_runtime,
        out.image_embeddings,
        0,
        input_points=[[[[700, 300]]]],
        input_labels=[[[1]]],
        input_masks=[[prev]],
        multimask_output=False,
    )
    np.testing.assert_array_equal(one.pred_masks[0, 0], res["ref_masks"][0, 1])
    # the mask prompt changes the answer (the check can fail)
    assert not np.array_equal(res["ref_masks"][0, 1], res["masksFalse"][0, 1])


def test_post_process_masks_and_errors(torch_runtime, reference):
    model = EdgeTamImageModel(torch_runtime)
    out = reference[1]
    embs = out.image_embeddings
    masks = post_process_masks(out.pred_masks, out.original_sizes)
    assert masks[0].shape == (2, 1, 1024, 1024) and masks[1].shape == (2, 1, 700, 950)
    assert masks[0].dtype == bool
    logits = post_process_masks(out.pred_masks, out.original_sizes, binarize=False)
    assert logits[1].dtype == np.float32 and np.array_equal(logits[1] > 0, masks[1])
    with pytest.raises(ValueError, match="image 0: object 0: point labels must be 0"):
        model(image_embeddings=embs[:1], input_points=[[[[1, 2]]]], input_labels=[[[5]]])
    with pytest.raises(ValueError, match="input_points: 1 images given for 2 images"):
        model(image_embeddings=embs, input_points=POINTS[:1], input_labels=LABELS[:1])
    with pytest.raises(ValueError, match="exactly one of images or image_embeddings"):
        model(input_points=POINTS, input_labels=LABELS)
    with pytest.raises(ValueError, match="objects per image differ"):
        model(
            image_embeddings=embs[1:],
            input_points=[POINTS[0]],
            input_labels=[LABELS[0]],
            input_boxes=BOXES[1:],
        )


@pytest.mark.parametrize("backend", ["onnx", "executorch"])
def test_bundles_match_the_reference(exported_bundles, reference, backend):
    from edgetam_export.runtime.loader import runtime_from_bundle

    ref = reference[0]
    got, _, _ = run_scenario(runtime_from_bundle(exported_bundles["main"], backend=backend, precision="fp32"))
    for key in ref:
        kind = "logits" if "masks" in key else "scores"
        problems = tolerance(backend, "fp32", kind).check(compare(key, ref[key], got[key]))
        assert not problems, problems
