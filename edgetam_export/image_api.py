"""The batched image API shaped like transformers' ``EdgeTamModel`` + ``Sam2Processor``, on any runtime.

``EdgeTamImageModel(runtime)(images=..., input_points=..., input_labels=..., input_boxes=...,
input_masks=..., image_embeddings=..., multimask_output=True)`` takes the same nested lists as
``Sam2Processor`` (``[image][object][point][xy]``, ``[image][object][label]``,
``[image][object][x0, y0, x1, y1]``, in original image pixels) and returns what
``EdgeTamModel`` returns: ``iou_scores`` (B, O, M), ``pred_masks`` (B, O, M, 256, 256) low-res
logits, ``object_score_logits`` (B, O, 1) and ``image_embeddings`` (one per image, reusable).
M is 3 with ``multimask_output`` (decoder masks 1..3) and 1 without (mask 0 unless its
stability is < 0.98, then the best of 1..3: the model's dynamic multimask choice). As in
``EdgeTamModel``, masks are not gated by the object score.

Each image is encoded once; each object is one run of the batch-1 ``prompt_decoder`` graph, so
every object's result equals running it alone. Padding: images with fewer objects than the
largest one are padded to O with ``iou_scores`` 0, ``pred_masks`` and ``object_score_logits``
``PAD_LOGIT`` (−1024, i.e. "no object": binarizes to an empty mask); ``num_objects`` tells the
real counts. (transformers pads the *inputs* with label −10 points and returns whatever the
model makes of them there; those slots carry no meaning either way.) Point labels −10 in the
inputs (HF's padding) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .models.constants import LOW_RES, NO_OBJ_SCORE
from .preprocessing import preprocess, to_model_frame
from .runtime.base import Runtime
from .tracker.decisions import STABILITY_THRESH, best_multimask_index, stability_score
from .tracker.feeds import decoder_feeds
from .tracker.postprocess import post_process_masks as _post_process_masks
from .tracker.prompts import parse_prompts
from .tracker.session import PointPrompt

PAD_LOGIT = NO_OBJ_SCORE
HF_PAD_LABEL = -10


@dataclass
class ImageEmbeddings:
    """Image-encoder outputs of one image: feat_s0 (1,32,256,256), feat_s1 (1,64,128,128), vis (1,256,64,64); original (H, W)."""

    feats: dict[str, np.ndarray]
    original_size: tuple[int, int]


@dataclass
class ImageSegmentationOutput:
    """``EdgeTamModel`` outputs, numpy: iou_scores (B,O,M), pred_masks (B,O,M,256,256), object_score_logits (B,O,1)."""

    iou_scores: np.ndarray
    pred_masks: np.ndarray
    object_score_logits: np.ndarray
    image_embeddings: list[ImageEmbeddings]
    original_sizes: np.ndarray  # (B, 2) int64 (H, W)
    num_objects: list[int] = field(default_factory=list)


def _images(images) -> list[np.ndarray]:
    if images is None:
        return []
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    out = []
    for k, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ValueError(f"images[{k}]: expected an (H, W, 3) uint8 RGB array, got {im.dtype} {im.shape}")
        out.append(im)
    return out


def _per_image(value, n_images: int, what: str) -> list:
    """Split an image-batched nested list/array into one entry per image (None -> Nones)."""
    if value is None:
        return [None] * n_images
    if isinstance(value, (np.ndarray, torch.Tensor)):
        value = list(np.asarray(value))
    if len(value) != n_images:
        raise ValueError(f"{what}: {len(value)} images given for {n_images} images")
    return list(value)


def _drop_hf_padding(points, labels):
    """Remove points labelled −10 (``Sam2Processor`` padding) from one image's nested lists."""
    if points is None or labels is None:
        return points, labels
    pts_out, lab_out = [], []
    for obj_pts, obj_lab in zip(points, labels, strict=False):
        keep = [i for i, v in enumerate(np.asarray(obj_lab).reshape(-1).tolist()) if v != HF_PAD_LABEL]
        pts_out.append([np.asarray(obj_pts, np.float32).reshape(-1, 2)[i].tolist() for i in keep])
        lab_out.append([int(np.asarray(obj_lab).reshape(-1)[i]) for i in keep])
    return pts_out, lab_out


def _mask_inputs(masks, n_obj: int) -> list[np.ndarray]:
    """One (1,1,256,256) float32 logit mask per object, resized like ``EdgeTamModel`` (bilinear, antialias)."""
    arr = masks if isinstance(masks, (list, tuple)) else list(np.asarray(masks))
    if len(arr) != n_obj:
        raise ValueError(f"input_masks: {len(arr)} masks given for {n_obj} objects")
    out = []
    for k, m in enumerate(arr):
        m = np.asarray(m, np.float32)
        m = m.reshape(m.shape[-2:]) if m.ndim > 2 and int(np.prod(m.shape[:-2])) == 1 else m
        if m.ndim != 2:
            raise ValueError(f"input_masks: object {k}: each mask must be (H, W), got shape {m.shape}")
        t = torch.from_numpy(np.ascontiguousarray(m))[None, None]
        if tuple(t.shape[-2:]) != (LOW_RES, LOW_RES):
            t = F.interpolate(
                t, size=(LOW_RES, LOW_RES), mode="bilinear", align_corners=False, antialias=True
            )
        out.append(t.numpy())
    return out


class EdgeTamImageModel:
    """``EdgeTamModel`` + ``Sam2Processor`` over a :class:`Runtime` (reference or bundle)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        shapes = {s.name: s.shape for s in runtime.contracts["prompt_decoder"].inputs}
        self.max_points = int(shapes["pt_xy"][1])

    def get_image_embeddings(self, images) -> list[ImageEmbeddings]:
        """Run the image encoder once per (H, W, 3) uint8 RGB image."""
        out = []
        for im in _images(images):
            feats = self.runtime.run("image_encoder", {"image": preprocess(to_model_frame(im))})
            out.append(ImageEmbeddings(feats, (int(im.shape[0]), int(im.shape[1]))))
        return out

    def _objects(
        self, emb, points, labels, boxes, masks
    ) -> list[tuple[PointPrompt | None, np.ndarray | None]]:
        """(prompt in 1024 space or None, mask logits (1,1,256,256) or None) per object of one image."""
        counts = {
            name: len(v)
            for name, v in (("input_points", points), ("input_boxes", boxes), ("input_masks", masks))
            if v is not None
        }
        if len(set(counts.values())) > 1:
            raise ValueError(f"objects per image differ between inputs: {counts}")
        if points is not None and labels is None:
            labels = [[1] * len(np.asarray(p, np.float32).reshape(-1, 2)) for p in points]
        points, labels = _drop_hf_padding(points, labels)
        n_obj = next(iter(counts.values()), 1)
        prompts: list[PointPrompt | None] = [None] * n_obj
        if points is not None or boxes is not None:
            pending = parse_prompts(
                list(range(n_obj)),
                0,
                emb.original_size,
                input_points=points,
                input_labels=labels,
                input_boxes=boxes,
            )
            prompts = [p.points for p in pending]
        for k, p in enumerate(prompts):
            if p is not None and len(p.labels) > self.max_points - 1:
                raise ValueError(
                    f"object {k}: {len(p.labels)} points (a box counts 2) but the decoder takes at most "
                    f"{self.max_points - 1}; export with a larger --max-points"
                )
        mask_in = _mask_inputs(masks, n_obj) if masks is not None else [None] * n_obj
        return list(zip(prompts, mask_in, strict=True))

    def decode(
        self, emb: ImageEmbeddings, prompt: PointPrompt | None, mask_in: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Raw ``prompt_decoder`` outputs for one object: masks (1,4,256,256), iou (1,4), obj_logit (1,1), ptr_all.

        ``prompt``: points in 1024 space (box = labels 2, 3 first); ``mask_in`` (1,1,256,256) logits or None.
        """
        return self.runtime.run(
            "prompt_decoder",
            decoder_feeds(emb.feats, emb.feats["vis"], True, prompt, mask_in, self.max_points),
        )

    def _decode(self, emb, prompt, mask_in, multimask_output: bool):
        out = self.decode(emb, prompt, mask_in)
        masks, iou = out["masks"][0], out["iou"][0]
        if multimask_output:
            idx = [1, 2, 3]
        else:
            stable = stability_score(masks[0]) >= np.float32(STABILITY_THRESH)
            idx = [0 if stable else best_multimask_index(iou)]
        return iou[idx], masks[idx], out["obj_logit"].reshape(1)

    def __call__(
        self,
        images=None,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        input_masks=None,
        image_embeddings: Sequence[ImageEmbeddings] | None = None,
        multimask_output: bool = True,
    ) -> ImageSegmentationOutput:
        """Segment every object of every image; give ``images`` or ``image_embeddings`` (from an earlier output)."""
        if (images is None) == (image_embeddings is None):
            raise ValueError("give exactly one of images or image_embeddings")
        embs = list(image_embeddings) if image_embeddings is not None else self.get_image_embeddings(images)
        n = len(embs)
        per = [
            _per_image(v, n, name)
            for name, v in (
                ("input_points", input_points),
                ("input_labels", input_labels),
                ("input_boxes", input_boxes),
                ("input_masks", input_masks),
            )
        ]
        results = []
        for i, emb in enumerate(embs):
            try:
                objs = self._objects(emb, per[0][i], per[1][i], per[2][i], per[3][i])
            except ValueError as e:
                raise ValueError(f"image {i}: {e}") from None
            results.append([self._decode(emb, p, m, multimask_output) for p, m in objs])
        m_out = 3 if multimask_output else 1
        o_max = max(len(r) for r in results)
        iou = np.zeros((n, o_max, m_out), np.float32)
        masks = np.full((n, o_max, m_out, LOW_RES, LOW_RES), PAD_LOGIT, np.float32)
        obj = np.full((n, o_max, 1), PAD_LOGIT, np.float32)
        for i, r in enumerate(results):
            for k, (s, m, o) in enumerate(r):
                iou[i, k], masks[i, k], obj[i, k] = s, m, o
        return ImageSegmentationOutput(
            iou_scores=iou,
            pred_masks=masks,
            object_score_logits=obj,
            image_embeddings=embs,
            original_sizes=np.array([e.original_size for e in embs], np.int64),
            num_objects=[len(r) for r in results],
        )


def post_process_masks(masks, original_sizes, mask_threshold: float = 0.0, binarize: bool = True) -> list:
    """``Sam2Processor.post_process_masks``: per image (O, M, 256, 256) logits -> (O, M, H, W), bilinear.

    ``masks``: (B, O, M, 256, 256) array or a list of (O, M, 256, 256); ``original_sizes``: (B, 2) (H, W).
    Returns one array per image: bool (``> mask_threshold``) if ``binarize`` else float32 logits.
    """
    return _post_process_masks(list(masks), original_sizes, binarize=binarize, mask_threshold=mask_threshold)
