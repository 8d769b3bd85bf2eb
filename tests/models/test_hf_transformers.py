"""Cross-check against transformers' own EdgeTAM (skipped when transformers is not installed).

transformers builds EdgeTAM's RepViT backbone through timm, and timm imports torchvision, which
does not load next to this torch build. So the backbone module is replaced by a stand-in that
holds *our* RepViT under timm's ``timm_model`` names; everything else (neck, prompt encoder,
mask decoder, memory parts, the state-dict names, ``save_pretrained``/``config.json``) is
transformers' own code. Checked: our HF key table equals ``EdgeTamVideoModel``'s state dict
(strict load), a folder that transformers saves loads bit-exact through ``build_edgetam``, and
``EdgeTamModel``'s iou_scores / pred_masks / object_score_logits equal our image API's.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

transformers = pytest.importorskip("transformers")


class _TimmStandIn(torch.nn.Module):
    """Replaces ``TimmWrapperModel``: our RepViT body under ``timm_model``, features as ``last_hidden_state``."""

    def __init__(self):
        super().__init__()
        from edgetam_export.models.repvit import RepViTM1

        self.timm_model = RepViTM1().body

    def forward(self, pixel_values, **kwargs):
        return SimpleNamespace(last_hidden_state=self.timm_model(pixel_values), hidden_states=None)


@pytest.fixture(scope="module")
def hf(monkeypatch_module):
    from transformers.models.edgetam import modeling_edgetam

    original = modeling_edgetam.AutoModel.from_config

    def from_config(config, **kwargs):
        return _TimmStandIn() if config.model_type == "timm_wrapper" else original(config, **kwargs)

    monkeypatch_module.setattr(modeling_edgetam.AutoModel, "from_config", from_config)
    backbone = transformers.TimmWrapperConfig(
        architecture="repvit_m1.dist_in1k",
        model_args={"in_chans": 3, "features_only": True, "out_indices": (0, 1, 2, 3)},
    )
    vision = transformers.EdgeTamVisionConfig(backbone_config=backbone)
    return SimpleNamespace(vision=vision)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_video_model_names_and_save_pretrained(hf, synthetic_sd, tmp_path_factory):
    from edgetam_export.models import load_checkpoint
    from edgetam_export.models.hf_checkpoint import official_to_hf

    config = transformers.EdgeTamVideoConfig(
        vision_config=hf.vision,
        enable_temporal_pos_encoding_for_object_pointers=False,
        enable_occlusion_spatial_embedding=False,
    )
    model = transformers.EdgeTamVideoModel(config).eval()
    model.load_state_dict(official_to_hf(synthetic_sd), strict=True)  # every name and shape agrees
    folder = tmp_path_factory.mktemp("hf") / "edgetam-video"
    model.save_pretrained(folder)
    back = load_checkpoint(folder)  # transformers' own config.json passes the config check
    assert list(back) == list(synthetic_sd)
    assert all(torch.equal(back[k], v) for k, v in synthetic_sd.items())


def test_image_model_outputs_match_the_image_api(hf, synthetic_sd):
    from edgetam_export.models import build_edgetam
    from edgetam_export.models.hf_checkpoint import official_to_hf

    from edgetam_export.image_api import EdgeTamImageModel
    from edgetam_export.preprocessing import preprocess
    from edgetam_export.procedural import procedural_frame
    from edgetam_export.runtime.torch_runtime import TorchRuntime
    from edgetam_export.verify.metrics import compare
    from edgetam_export.verify.tolerances import tolerance

    model = transformers.EdgeTamModel(transformers.EdgeTamConfig(vision_config=hf.vision)).eval()
    res = model.load_state_dict(official_to_hf(synthetic_sd), strict=False)
    assert res.missing_keys == []
    assert all(
        k.startswith(("memory_", "mask_downsample", "spatial_perceiver", "object_pointer", "no_"))
        for k in res.unexpected_keys
    )

    image = procedural_frame(0)  # 1024 x 1024: no resizing on either side
    ours = EdgeTamImageModel(TorchRuntime(build_edgetam(synthetic_sd)))
    embs = ours.get_image_embeddings([image])
    pixel_values = torch.from_numpy(preprocess(image))
    with torch.no_grad():
        embeddings = model(
            pixel_values=pixel_values, input_points=torch.tensor([[[[260.0, 380.0]]]])
        ).image_embeddings
    cases = [
        ({"input_points": [[[[260, 380]]]], "input_labels": [[[1]]]}, True),
        ({"input_points": [[[[260, 380], [500, 520]]]], "input_labels": [[[1, 0]]]}, False),
        ({"input_boxes": [[[300, 200, 600, 450]]]}, True),
    ]
    for kw, mm in cases:
        mine = ours(image_embeddings=embs, multimask_output=mm, **kw)
        hf_kw = {
            k: torch.tensor(v, dtype=torch.float32 if k != "input_labels" else torch.int64)
            for k, v in kw.items()
        }
        with torch.no_grad():
            theirs = model(image_embeddings=embeddings, multimask_output=mm, **hf_kw)
        for name, kind, a, b in (
            ("iou_scores", "scores", theirs.iou_scores, mine.iou_scores),
            ("pred_masks", "logits", theirs.pred_masks, mine.pred_masks),
            ("object_score_logits", "scores", theirs.object_score_logits, mine.object_score_logits),
        ):
            c = compare(f"{name} {sorted(kw)} mm={mm}", a.numpy(), b)
            print(f"{c.name}: max-abs {c.max_abs:.3g} (rel {c.rel_max_abs:.3g}), cosine {c.cosine:.9f}")
            assert not tolerance("official", "fp32", kind).check(c), c
