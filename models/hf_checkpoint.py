"""Hugging Face EdgeTAM checkpoints: the HF <-> official key table, the config check, and loading ``model.safetensors``.

A checkpoint that ``EdgeTamVideoModel.save_pretrained`` writes is a folder with ``config.json``
and ``model.safetensors`` (HF names). :func:`hf_to_official` turns its state dict into the
official layout (982 keys, ``checkpoint_layout.tsv``) with the explicit table
``hf_key_map.tsv`` (one row per official key and HF key; ``dev/gen_hf_key_map.py`` rebuilds
it from transformers' conversion rules). Three rows are not plain renames:

* ``official[i/n]``: the HF tensor is the i-th of n dim-0 pieces of the official one (the
  perceiver's fused ``to_kv`` is stored as ``k_proj`` + ``v_proj``);
* ``hf[i/n]``: the official tensor is the i-th of n dim-0 pieces of the HF one (the four
  (1, 256) point embeddings are one (4, 256) ``prompt_encoder.point_embed.weight``);
* ``copy``: an HF key that duplicates an official tensor (``shared_image_embedding``); on
  load it must equal its twin.

Errors name keys in the user's naming: HF names for an HF checkpoint.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import torch

from .checkpoint_check import CheckpointError, key_report_lines
from .checkpoint_layout import checkpoint_layout

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class HFCheckpointError(CheckpointError):
    """An HF checkpoint this reference cannot load (layout, config or file)."""


@dataclass(frozen=True)
class KeyMapRow:
    """One row of ``hf_key_map.tsv``: official key, HF key, relation ('=', 'copy', 'hf[i/n]', 'official[i/n]')."""

    official: str
    hf: str
    relation: str

    def piece(self) -> tuple[int, int]:
        """(i, n) of a dim-0 slice relation."""
        i, n = self.relation.split("[")[1].rstrip("]").split("/")
        return int(i), int(n)


@cache
def hf_key_map() -> tuple[KeyMapRow, ...]:
    """All rows of the table: one per (official key, HF key) pair, official key order."""
    text = resources.files(__package__).joinpath("hf_key_map.tsv").read_text()
    return tuple(KeyMapRow(*line.split("\t")) for line in text.strip().splitlines()[1:])


@cache
def hf_layout() -> dict[str, tuple[int, ...]]:
    """HF key -> shape, derived from the official layout through the table."""
    shapes = {s.key: s.shape for s in checkpoint_layout()}
    out: dict[str, tuple[int, ...]] = {}
    for r in hf_key_map():
        shape = shapes[r.official]
        if r.relation.startswith("official["):
            _, n = r.piece()
            out[r.hf] = (shape[0] // n, *shape[1:])
        elif r.relation.startswith("hf["):
            _, n = r.piece()
            out[r.hf] = (shape[0] * n, *shape[1:])
        else:
            out[r.hf] = shape
    return out


# Official names of image-only checkpoints (``EdgeTamModel``): the parts it does not hold.
_VIDEO_ONLY_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "spatial_perceiver.",
    "object_pointer_proj.",
    "memory_temporal_positional_encoding",
    "mask_downsample.",
    "no_memory_positional_encoding",
    "no_object_pointer",
)


def official_to_hf(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official-layout state dict -> HF ``EdgeTamVideoModel`` state dict (bit-exact tensors, HF key order)."""
    out: dict[str, torch.Tensor] = {}
    stacks: dict[str, list[tuple[int, torch.Tensor]]] = defaultdict(list)
    for r in hf_key_map():
        t = state_dict[r.official]
        if r.relation in ("=", "copy"):
            out[r.hf] = t.clone()
        elif r.relation.startswith("official["):
            i, n = r.piece()
            out[r.hf] = torch.chunk(t, n, dim=0)[i].clone()
        else:
            i, _ = r.piece()
            stacks[r.hf].append((i, t))
            out.setdefault(r.hf, t)  # placeholder keeps the table order
    for key, parts in stacks.items():
        out[key] = torch.cat([t for _, t in sorted(parts, key=lambda p: p[0])], dim=0)
    return out


def validate_hf_state_dict(state_dict: Mapping[str, torch.Tensor], image_only: bool = False) -> None:
    """Raise :class:`HFCheckpointError` listing missing, unexpected and mis-shaped keys in HF names.

    ``image_only``: the checkpoint is an ``EdgeTamModel`` one, which lacks the video parts by
    design; the error then says so instead of listing hundreds of memory keys.
    """
    layout = hf_layout()
    missing = [k for k in layout if k not in state_dict]
    unexpected = [k for k in state_dict if k not in layout]
    misshaped = [
        f"{k} (expected {list(layout[k])}, got {list(v.shape)})"
        for k, v in state_dict.items()
        if k in layout and tuple(v.shape) != layout[k]
    ]
    lines = []
    video_missing = [k for k in missing if k.startswith(_VIDEO_ONLY_PREFIXES)]
    if image_only and video_missing:
        lines.append(
            f"  this is an image-only EdgeTamModel checkpoint: it lacks the {len(video_missing)} video keys "
            "(memory_attention, memory_encoder, spatial_perceiver, object_pointer_proj, ...) that the "
            "exported tracker needs; save an EdgeTamVideoModel checkpoint instead"
        )
        missing = [k for k in missing if k not in video_missing]
    lines += key_report_lines(missing, unexpected, misshaped)
    if lines:
        head = f"HF checkpoint does not match the EdgeTAM video layout ({len(layout)} HF keys expected):"
        raise HFCheckpointError("\n".join([head, *lines]))


def hf_to_official(
    state_dict: Mapping[str, torch.Tensor], image_only: bool = False
) -> dict[str, torch.Tensor]:
    """HF ``EdgeTamVideoModel`` state dict -> official layout (bit-exact, official key order).

    Validates first (errors in HF names); a ``copy`` key must equal its twin bit for bit.
    """
    validate_hf_state_dict(state_dict, image_only=image_only)
    pieces: dict[str, list[tuple[int, torch.Tensor]]] = defaultdict(list)
    out: dict[str, torch.Tensor] = {}
    for r in hf_key_map():
        t = state_dict[r.hf]
        if r.relation == "=":
            out[r.official] = t.clone()
        elif r.relation == "copy":
            continue
        elif r.relation.startswith("hf["):
            i, n = r.piece()
            out[r.official] = torch.chunk(t, n, dim=0)[i].clone()
        else:
            i, _ = r.piece()
            pieces[r.official].append((i, t))
    for key, parts in pieces.items():
        out[key] = torch.cat([t for _, t in sorted(parts, key=lambda p: p[0])], dim=0)
    for r in hf_key_map():
        if r.relation == "copy" and not torch.equal(state_dict[r.hf], out[r.official]):
            twin = next(x.hf for x in hf_key_map() if x.official == r.official and x.relation == "=")
            raise HFCheckpointError(f"HF checkpoint: {r.hf} must equal {twin} (both hold the same tensor)")
    return {s.key: out[s.key] for s in checkpoint_layout()}


# --------------------------------------------------------------------------------------------
# config.json: what the reference supports. Each entry: dotted field, supported value, HF default
# (save_pretrained may omit fields that equal the default).
_SUPPORTED = [
    ("image_size", 1024, 1024),
    ("num_maskmem", 7, 7),
    ("memory_attention_hidden_size", 256, 256),
    ("memory_attention_num_layers", 2, 2),
    ("memory_attention_num_attention_heads", 1, 1),
    ("memory_attention_rope_feat_sizes", [64, 64], [64, 64]),
    ("memory_encoder_hidden_size", 256, 256),
    ("memory_encoder_output_channels", 64, 64),
    ("perceiver_resampler_num_latents", 256, 256),
    ("perceiver_resampler_num_latents_2d", 256, 256),
    ("perceiver_resampler_hidden_size", 64, 64),
    ("perceiver_resampler_num_layers", 2, 2),
    ("enable_occlusion_spatial_embedding", False, True),
    ("enable_temporal_pos_encoding_for_object_pointers", False, True),
    ("vision_config.backbone_channel_list", [384, 192, 96, 48], [384, 192, 96, 48]),
    ("vision_config.backbone_feature_sizes", [[256, 256], [128, 128], [64, 64]], None),
    ("vision_config.fpn_hidden_size", 256, 256),
    ("vision_config.fpn_top_down_levels", [2, 3], [2, 3]),
    ("vision_config.num_feature_levels", 3, 3),
    ("prompt_encoder_config.hidden_size", 256, 256),
    ("prompt_encoder_config.image_size", 1024, 1024),
    ("prompt_encoder_config.patch_size", 16, 16),
    ("mask_decoder_config.hidden_size", 256, 256),
    ("mask_decoder_config.num_multimask_outputs", 3, 3),
    ("mask_decoder_config.num_hidden_layers", 2, 2),
]
_IMAGE_ONLY_FIELDS = ("image_size", "vision_config.", "prompt_encoder_config.", "mask_decoder_config.")
MODEL_TYPES = {"edgetam_video": False, "edgetam": True}  # model_type -> image_only


def check_hf_config(config: Mapping) -> bool:
    """Refuse an HF ``config.json`` the reference cannot represent, naming the field; return image_only.

    Supported: ``model_type`` ``edgetam_video`` (``EdgeTamVideoModel``) or ``edgetam``
    (``EdgeTamModel``, image parts only), the RepViT-M1 backbone at 1024², 7 memory slots, the
    2D spatial perceiver with 256+256 latents, no occlusion embedding, no temporal pointer encoding.
    """
    mt = config.get("model_type")
    if mt not in MODEL_TYPES:
        raise HFCheckpointError(
            f"config.json: model_type {mt!r} is not an EdgeTAM checkpoint (expected 'edgetam_video' or 'edgetam')"
        )
    image_only = MODEL_TYPES[mt]
    backbone = (config.get("vision_config") or {}).get("backbone_config") or {}
    arch = str(backbone.get("architecture", backbone.get("model_type", "")))
    if backbone and "repvit_m1" not in arch:
        raise HFCheckpointError(
            f"config.json: vision_config.backbone_config.architecture is {arch!r}; only 'repvit_m1' is supported"
        )
    for field, supported, default in _SUPPORTED:
        if image_only and not field.startswith(_IMAGE_ONLY_FIELDS):
            continue
        node, found = config, True
        for part in field.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                found = False
                break
        value = node if found else default
        if value is None:
            continue
        if isinstance(value, tuple):
            value = list(value)
        if value != supported:
            raise HFCheckpointError(
                f"config.json: {field} = {json.dumps(value)} is not supported (the reference needs {json.dumps(supported)})"
            )
    return image_only


def is_hf_checkpoint(path: str | os.PathLike) -> bool:
    """True for a folder holding ``model.safetensors`` or for a ``.safetensors`` file."""
    p = Path(path)
    return (p.is_dir() and (p / WEIGHTS_FILE).is_file()) or p.suffix == ".safetensors"


def load_hf_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an HF EdgeTAM checkpoint folder (config.json + model.safetensors) or a ``.safetensors`` file.

    Returns the official-layout state dict. The config, when present, is checked first
    (:func:`check_hf_config`); a bare ``.safetensors`` file is checked by its keys and shapes only.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    image_only = False
    if p.is_dir():
        weights, cfg = p / WEIGHTS_FILE, p / CONFIG_FILE
        if not weights.is_file():
            raise HFCheckpointError(
                f"{p}: no {WEIGHTS_FILE} in this folder (expected save_pretrained output)"
            )
        if cfg.is_file():
            try:
                config = json.loads(cfg.read_text())
            except (OSError, ValueError) as e:
                raise HFCheckpointError(f"{cfg}: not readable JSON ({e})") from e
            image_only = check_hf_config(config)
    else:
        weights = p
        if not weights.is_file():
            raise HFCheckpointError(f"checkpoint file not found: {weights}")
    try:
        sd = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise HFCheckpointError(f"could not read {weights}: {e}") from e
    if not image_only and sd and all(not k.startswith(_VIDEO_ONLY_PREFIXES) for k in sd):
        image_only = True  # a bare EdgeTamModel file: say so in the error
    return hf_to_official(sd, image_only=image_only)


def save_hf_checkpoint(state_dict: Mapping[str, torch.Tensor], folder: str | os.PathLike) -> Path:
    """Write official weights as an HF ``EdgeTamVideoModel`` folder (config.json + model.safetensors).

    The config holds the fields :func:`check_hf_config` reads (the values the reference supports).
    Used by tests and to hand our synthetic weights to transformers.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config: dict = {"model_type": "edgetam_video", "architectures": ["EdgeTamVideoModel"]}
    for field, supported, _ in _SUPPORTED:
        node = config
        *parents, leaf = field.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = supported
    config["vision_config"]["model_type"] = "edgetam_vision_model"
    config["vision_config"]["backbone_config"] = {
        "model_type": "timm_wrapper",
        "architecture": "repvit_m1.dist_in1k",
        "model_args": {"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    }
    hf = {k: v.contiguous() for k, v in official_to_hf(state_dict).items()}
    save_file(hf, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The file that holds the weights of a checkpoint path: ``model.safetensors`` of an HF folder, else the path."""
    p = Path(path)
    return p / WEIGHTS_FILE if p.is_dir() else p
