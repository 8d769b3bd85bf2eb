"""Regenerate ``models/hf_key_map.tsv``: the official EdgeTAM keys under their Hugging Face names.

The rules restate, one by one, what transformers' EdgeTAM video conversion does to an official
checkpoint (``EdgeTamVideoModel`` loads the result with ``strict=True``, so the renamed set *is*
the HF state dict). The table, not these rules, is what the package reads; this script exists
so the table can be rebuilt and reviewed. Run from the repo root:

    .venv/bin/python dev/gen_hf_key_map.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Plain substring renames, applied in this order to every key (later ones see earlier results).
SUBSTRINGS = [
    ("iou_prediction_head.layers.0", "iou_prediction_head.proj_in"),
    ("iou_prediction_head.layers.1", "iou_prediction_head.layers.0"),
    ("iou_prediction_head.layers.2", "iou_prediction_head.proj_out"),
    ("mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"),
    ("mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"),
    ("mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("dwconv", "depthwise_conv"),
    ("pwconv", "pointwise_conv"),
    ("fuser", "memory_fuser"),
    ("point_embeddings", "point_embed"),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("obj_ptr_tpos_proj", "temporal_positional_encoding_projection_layer"),
    ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
    ("sam_prompt_encoder", "prompt_encoder"),
    ("sam_mask_decoder", "mask_decoder"),
    ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    ("gamma", "scale"),
    ("image_encoder.neck", "vision_encoder.neck"),
    ("image_encoder", "vision_encoder.backbone"),
    ("neck.0", "neck.conv1"),
    ("neck.1", "neck.layer_norm1"),
    ("neck.2", "neck.conv2"),
    ("neck.3", "neck.layer_norm2"),
    ("pix_feat_proj", "feature_projection"),
    ("patch_embed.proj", "patch_embed.projection"),
    ("no_mem_embed", "no_memory_embedding"),
    ("no_mem_pos_enc", "no_memory_positional_encoding"),
    ("obj_ptr", "object_pointer"),
    (".norm", ".layer_norm"),
    ("trunk.", ""),
    ("out_proj", "o_proj"),
    ("body.", "timm_model."),
    ("ff.0", "mlp.layer_norm"),
    ("ff.1", "mlp.up_proj"),
    ("ff.3", "mlp.down_proj"),
]

# Regex renames of the spatial perceiver, applied in order when the pattern matches at the start.
PERCEIVER = [
    (r"spatial_perceiver.latents", r"spatial_perceiver.latents_1d"),
    (r"spatial_perceiver.latents_1d_2d", r"spatial_perceiver.latents_2d"),
    (r"spatial_perceiver.layers.(\d+).attn.layer_norm_x", r"spatial_perceiver.layers.\1.layer_norm_input"),
    (
        r"spatial_perceiver.layers.(\d+).attn.layer_norm_latents",
        r"spatial_perceiver.layers.\1.layer_norm_latents",
    ),
    (r"spatial_perceiver.layers.(\d+).self_attn.layer_norm", r"spatial_perceiver.layers.\1.layer_norm_self"),
    (r"spatial_perceiver.layers.(\d+).attn.to_q", r"spatial_perceiver.layers.\1.cross_attention.q_proj"),
    (
        r"spatial_perceiver.layers.(\d+).attn.to_kv",
        r"spatial_perceiver.layers.\1.cross_attention.kv_proj_combined",
    ),
    (r"spatial_perceiver.layers.(\d+).attn.to_out", r"spatial_perceiver.layers.\1.cross_attention.o_proj"),
    (r"spatial_perceiver.layers.(\d+).self_attn.to_q", r"spatial_perceiver.layers.\1.self_attention.q_proj"),
    (
        r"spatial_perceiver.layers.(\d+).self_attn.to_kv",
        r"spatial_perceiver.layers.\1.self_attention.kv_proj_combined",
    ),
    (
        r"spatial_perceiver.layers.(\d+).self_attn.to_out",
        r"spatial_perceiver.layers.\1.self_attention.o_proj",
    ),
    (r"spatial_perceiver.layers.(\d+).attn", r"spatial_perceiver.layers.\1.cross_attention"),
    (r"spatial_perceiver.layers.(\d+).self_attn", r"spatial_perceiver.layers.\1.self_attention"),
]

# Three-layer MLP heads: layers.0 -> proj_in, layers.1 -> layers.0, layers.2 -> proj_out.
_THREE = {"0": "proj_in", "1": "layers.0", "2": "proj_out"}
_TWO = {"0": "proj_in", "1": "proj_out"}


def hf_name(key: str) -> str:
    """The HF name of one official key (before the kv split and the point-embedding merge)."""
    for old, new in SUBSTRINGS:
        if old in key:
            key = key.replace(old, new)
    for pattern, repl in PERCEIVER:
        if re.match(pattern, key):
            key = re.sub(pattern, repl, key)
    if key.startswith("memory_attention"):
        key = key.replace("linear1", "mlp.up_proj").replace("linear2", "mlp.down_proj")
    m = re.match(r"mask_decoder\.transformer\.layers\.\d+\.mlp\.layers\.(\d+)", key)
    if m:
        key = key.replace(f"mlp.layers.{m.group(1)}", f"mlp.{_TWO[m.group(1)]}")
    m = re.match(r"mask_decoder\.pred_obj_score_head\.layers\.(\d+)", key)
    if m:
        key = key.replace(f"layers.{m.group(1)}", _THREE[m.group(1)])
    m = re.match(r".*\.output_hypernetworks_mlps\.\d+\.layers\.(\d+)", key)
    if m:
        key = key.replace(f"layers.{m.group(1)}", _THREE[m.group(1)])
    if re.match(r"vision_encoder\.neck\.convs\.\d+\.conv", key):
        key = key.replace(".conv.", ".")
    if key.startswith("memory_encoder.o_proj"):
        key = key.replace(".o_proj.", ".projection.")
    m = re.match(r"object_pointer_proj\.layers\.(\d+)", key)
    if m:
        key = key.replace(f"layers.{m.group(1)}", _THREE[m.group(1)])
    m = re.match(r"memory_encoder\.mask_downsampler\.encoder\.(\d+)", key)
    if m:
        n = int(m.group(1))
        if n == 12:
            key = key.replace(f"encoder.{n}", "final_conv")
        elif n % 3 == 0:
            key = key.replace(f"encoder.{n}", f"layers.{n // 3}.conv")
        elif n % 3 == 1:
            key = key.replace(f"encoder.{n}", f"layers.{n // 3}.layer_norm")
    return key


def rows() -> list[tuple[str, str, str]]:
    """(official_key, hf_key, relation) rows; relation '=' or a dim-0 slice 'hf[i/n]' / 'official[i/n]'."""
    layout = (ROOT / "models" / "checkpoint_layout.tsv").read_text().strip().splitlines()[1:]
    out = []
    for line in layout:
        key = line.split("\t")[0]
        hf = hf_name(key)
        if "kv_proj_combined" in hf:  # HF stores k and v separately: each is half of official to_kv
            out.append((key, hf.replace("kv_proj_combined", "k_proj"), "official[0/2]"))
            out.append((key, hf.replace("kv_proj_combined", "v_proj"), "official[1/2]"))
            continue
        m = re.match(r"prompt_encoder\.point_embed\.(\d+)\.weight", hf)
        if m:  # HF stacks the four (1, 256) point embeddings into one (4, 256) table
            out.append((key, "prompt_encoder.point_embed.weight", f"hf[{m.group(1)}/4]"))
            continue
        out.append((key, hf, "="))
        if hf == "prompt_encoder.shared_embedding.positional_embedding":
            # HF keeps a second copy for the image-wide positional embedding
            out.append((key, "shared_image_embedding.positional_embedding", "copy"))
    return out


def main() -> None:
    path = ROOT / "models" / "hf_key_map.tsv"
    text = "official_key\thf_key\trelation\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows())
    path.write_text(text)
    print(f"wrote {path} ({len(text.splitlines()) - 1} rows)")


if __name__ == "__main__":
    main()
