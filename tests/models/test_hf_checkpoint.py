"""Hugging Face EdgeTAM checkpoints: the key table, bit-exact round trips, strict errors in HF names, config refusal."""

import json

import pytest
import torch
from edgetam_export.models import CheckpointError, build_edgetam, load_checkpoint, state_dict_sha256
from edgetam_export.models.checkpoint_layout import checkpoint_layout
from edgetam_export.models.hf_checkpoint import (
    HFCheckpointError,
    check_hf_config,
    hf_key_map,
    hf_layout,
    hf_to_official,
    official_to_hf,
    save_hf_checkpoint,
)

from edgetam_export.bundle.reference import build_reference, weights_info

# Names as transformers' EdgeTAM conversion produces them (hand-checked against the script).
KNOWN = {
    "image_encoder.trunk.body.stem.conv1.c.weight": "vision_encoder.backbone.timm_model.stem.conv1.c.weight",
    "image_encoder.neck.convs.0.conv.weight": "vision_encoder.neck.convs.0.weight",
    "sam_prompt_encoder.mask_downscaling.4.weight": "prompt_encoder.mask_embed.layer_norm2.weight",
    "sam_mask_decoder.iou_prediction_head.layers.1.weight": "mask_decoder.iou_prediction_head.layers.0.weight",
    "sam_mask_decoder.output_hypernetworks_mlps.2.layers.2.bias": "mask_decoder.output_hypernetworks_mlps.2.proj_out.bias",
    "sam_mask_decoder.transformer.layers.1.mlp.layers.0.weight": "mask_decoder.transformer.layers.1.mlp.proj_in.weight",
    "sam_mask_decoder.output_upscaling.1.weight": "mask_decoder.upscale_layer_norm.weight",
    "memory_attention.layers.0.linear1.weight": "memory_attention.layers.0.mlp.up_proj.weight",
    "memory_attention.layers.1.cross_attn_image.out_proj.bias": "memory_attention.layers.1.cross_attn_image.o_proj.bias",
    "memory_encoder.mask_downsampler.encoder.12.weight": "memory_encoder.mask_downsampler.final_conv.weight",
    "memory_encoder.mask_downsampler.encoder.4.bias": "memory_encoder.mask_downsampler.layers.1.layer_norm.bias",
    "memory_encoder.fuser.layers.1.gamma": "memory_encoder.memory_fuser.layers.1.scale",
    "memory_encoder.out_proj.weight": "memory_encoder.projection.weight",
    "spatial_perceiver.latents": "spatial_perceiver.latents_1d",
    "spatial_perceiver.latents_2d": "spatial_perceiver.latents_2d",
    "spatial_perceiver.layers.0.attn.norm_x.weight": "spatial_perceiver.layers.0.layer_norm_input.weight",
    "spatial_perceiver.layers.1.self_ff.3.weight": "spatial_perceiver.layers.1.self_mlp.down_proj.weight",
    "obj_ptr_proj.layers.2.weight": "object_pointer_proj.proj_out.weight",
    "maskmem_tpos_enc": "memory_temporal_positional_encoding",
    "no_obj_ptr": "no_object_pointer",
}


def test_table_covers_the_official_layout_once():
    rows = hf_key_map()
    official = [s.key for s in checkpoint_layout()]
    assert {r.official for r in rows} == set(official) and len(official) == 982
    by_official = {r.official: r.hf for r in rows if r.relation == "="}
    for off, hf in KNOWN.items():
        assert by_official[off] == hf, off
    kv = [r for r in rows if r.official == "spatial_perceiver.layers.0.attn.to_kv.weight"]
    assert [(r.hf, r.relation) for r in kv] == [
        ("spatial_perceiver.layers.0.cross_attention.k_proj.weight", "official[0/2]"),
        ("spatial_perceiver.layers.0.cross_attention.v_proj.weight", "official[1/2]"),
    ]
    assert hf_layout()["prompt_encoder.point_embed.weight"] == (4, 256)
    assert "shared_image_embedding.positional_embedding" in hf_layout()
    # every HF key comes from one official key, except the stacked point-embedding table
    multi = {r.hf for r in rows if sum(x.hf == r.hf for x in rows) > 1}
    assert multi == {"prompt_encoder.point_embed.weight"}


def test_round_trip_is_bit_exact(synthetic_sd):
    hf = official_to_hf(synthetic_sd)
    assert set(hf) == set(hf_layout())
    back = hf_to_official(hf)
    assert list(back) == list(synthetic_sd)
    for k, v in synthetic_sd.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k


def test_folder_and_file_load_like_the_official_layout(synthetic_sd, tmp_path):
    folder = save_hf_checkpoint(synthetic_sd, tmp_path / "edgetam-hf")
    for source in (folder, folder / "model.safetensors"):
        sd = load_checkpoint(source)
        assert state_dict_sha256(sd) == state_dict_sha256(synthetic_sd)
    # the weights a bundle records (no export needed): same state_dict_sha256 as the official layout
    _, _, info = build_reference(folder)
    assert info["state_dict_sha256"] == weights_info(None, 0, synthetic_sd)["state_dict_sha256"]
    assert info["source"] == "checkpoint" and len(info["sha256"]) == 64
    model = build_edgetam(str(folder))
    assert torch.equal(model.no_obj_ptr, synthetic_sd["no_obj_ptr"])


def test_errors_name_hf_keys(synthetic_sd):
    hf = official_to_hf(synthetic_sd)
    del hf["no_object_pointer"]
    hf["mask_decoder.extra.weight"] = torch.zeros(3)
    hf["prompt_encoder.point_embed.weight"] = torch.zeros(3, 256)
    with pytest.raises(CheckpointError) as e:
        hf_to_official(hf)
    msg = str(e.value)
    assert "missing keys (1): no_object_pointer" in msg
    assert "unexpected keys (1): mask_decoder.extra.weight" in msg
    assert "prompt_encoder.point_embed.weight (expected [4, 256], got [3, 256])" in msg
    hf = official_to_hf(synthetic_sd)
    hf["shared_image_embedding.positional_embedding"] = hf["shared_image_embedding.positional_embedding"] + 1
    with pytest.raises(HFCheckpointError, match=r"must equal prompt_encoder\.shared_embedding"):
        hf_to_official(hf)


def test_image_only_checkpoint_is_refused_by_name(synthetic_sd, tmp_path):
    folder = save_hf_checkpoint(synthetic_sd, tmp_path / "img")
    from safetensors.torch import load_file, save_file

    sd = load_file(str(folder / "model.safetensors"))
    keep = {k: v for k, v in sd.items() if k.startswith(("vision_encoder", "prompt_encoder", "mask_decoder"))}
    keep["no_memory_embedding"] = sd["no_memory_embedding"]
    keep["shared_image_embedding.positional_embedding"] = sd["shared_image_embedding.positional_embedding"]
    save_file(keep, str(folder / "model.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "edgetam"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(HFCheckpointError, match="image-only EdgeTamModel checkpoint") as e:
        load_checkpoint(folder)
    assert "missing keys" not in str(e.value)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"image_size": 512}, "image_size = 512"),
        ({"num_maskmem": 6}, "num_maskmem = 6"),
        ({"enable_occlusion_spatial_embedding": None}, "enable_occlusion_spatial_embedding = true"),
        (
            {"vision_config": {"backbone_channel_list": [768, 384, 192, 96]}},
            "vision_config.backbone_channel_list",
        ),
        (
            {"vision_config": {"backbone_config": {"architecture": "hiera_tiny"}}},
            "backbone_config.architecture",
        ),
        ({"model_type": "sam2_video"}, "model_type 'sam2_video'"),
    ],
)
def test_unsupported_config_is_refused_naming_the_field(synthetic_sd, tmp_path, edit, field):
    folder = save_hf_checkpoint(synthetic_sd, tmp_path / "cfg")
    cfg = json.loads((folder / "config.json").read_text())
    for k, v in edit.items():
        if v is None:
            cfg.pop(k)  # absent field = transformers' default (True here), which is unsupported
        elif isinstance(v, dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(HFCheckpointError, match=r"config\.json") as e:
        load_checkpoint(folder)
    assert field in str(e.value)
    assert check_hf_config(json.loads(json.dumps({"model_type": "edgetam"}))) is True


def test_unreadable_safetensors(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="could not read"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
