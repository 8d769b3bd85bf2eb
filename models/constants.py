"""Model-level constants of EdgeTAM that the host code shares with the graphs: one definition each."""

from __future__ import annotations

IMAGE_SIZE = 1024  # square model input; point coordinates live in this pixel space
LOW_RES = 256  # side of the decoder's low-resolution mask logits (IMAGE_SIZE / 4)
PIXEL_MEAN = (0.485, 0.456, 0.406)  # ImageNet RGB mean, applied after /255
PIXEL_STD = (0.229, 0.224, 0.225)  # ImageNet RGB std
NUM_MASKMEM = 7  # temporal positions: 1 conditioning + 6 recent memories
NO_OBJ_SCORE = -1024.0  # mask logits written for an object judged absent
GRAPH_NAMES = (
    "image_encoder",
    "prompt_decoder",
    "memory_encoder",
    "memory_attention",
)  # the four exported graphs
