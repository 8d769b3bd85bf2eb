"""The five scoped patches (P1-P5, shared golden README §1) and building the official predictor with them.

All patches are applied here and nowhere else; each is installed on an instance or inside a context and
undone on exit. The official package is imported and driven, never copied.

* P1  memory features stay fp32: inside :func:`official_session` the predictor *module*
      ``sam2.sam2_video_predictor`` sees a ``torch`` proxy whose ``bfloat16`` is ``float32``.
* P2  ``predictor.fill_hole_area = 0`` after the build (the builder appends ``=8``).
* P3  for B > 1 the unmodified official ``PerceiverResampler.forward_2d`` is called once per
      object and the results are concatenated (instance attribute on the model's perceiver).
* P4  the timm trunk is created with ``pretrained=False`` (scoped to the build call).
* P5  ``init_state`` receives preprocessed frame tensors: inside :func:`official_session` the
      predictor module's ``load_video_frames`` accepts a :class:`TensorVideo`.
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass

import torch

from .env import CONFIG, import_official
from .inputs import synthetic_weights


class _TorchBf16IsFp32:
    """P1: a stand-in for the ``torch`` module whose ``bfloat16`` is ``float32``."""

    def __init__(self, real):
        object.__setattr__(self, "_real", real)

    def __getattr__(self, name):
        if name == "bfloat16":
            return self._real.float32
        return getattr(self._real, name)


@contextlib.contextmanager
def _swapped(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield old
    finally:
        setattr(obj, name, old)


@dataclass
class TensorVideo:
    """P5: preprocessed frames (T, 3, 1024, 1024) fp32 plus the *declared* video size."""

    images: torch.Tensor
    height: int = 1024
    width: int = 1024


def _install_perceiver_batch_fix(model) -> None:
    """P3: run the unmodified official forward_2d once per object when B > 1."""
    perceiver = model.spatial_perceiver
    official_forward_2d = type(perceiver).forward_2d

    def forward_2d_per_object(x):
        if x.shape[0] == 1:
            return official_forward_2d(perceiver, x)
        outs = [official_forward_2d(perceiver, x[b : b + 1]) for b in range(x.shape[0])]
        return torch.cat([o[0] for o in outs], 0), torch.cat([o[1] for o in outs], 0)

    perceiver.forward_2d = forward_2d_per_object


def build_official_predictor(
    salt: int = 0, threads: int = 2, quiet: bool = True, weights_override: dict | None = None
):
    """Official SAM2VideoPredictor for configs/edgetam.yaml on CPU with synthetic weights ``salt``."""
    torch.set_num_threads(threads)
    import_official()
    import sam2.modeling.backbones.timm as official_timm_backbone
    from sam2.build_sam import build_sam2_video_predictor

    official_create_model = official_timm_backbone.create_model

    def create_model_without_download(*args, **kwargs):  # P4
        kwargs["pretrained"] = False
        return official_create_model(*args, **kwargs)

    sink = io.StringIO() if quiet else sys.stdout
    with (
        _swapped(official_timm_backbone, "create_model", create_model_without_download),
        contextlib.redirect_stdout(sink),
    ):
        predictor = build_sam2_video_predictor(CONFIG, ckpt_path=None, device="cpu")
    predictor.fill_hole_area = 0  # P2
    predictor.load_state_dict(synthetic_weights(salt, weights_override), strict=True)
    predictor.eval()
    _install_perceiver_batch_fix(predictor)  # P3
    predictor._oracle_salt = salt
    return predictor


@contextlib.contextmanager
def official_patches():
    """P1 + P5, scoped: everything that runs the predictor must happen inside this context."""
    vp, _ = import_official()
    official_loader = vp.load_video_frames

    def load_video_frames(video_path, **kwargs):
        if isinstance(video_path, TensorVideo):
            return video_path.images, video_path.height, video_path.width
        return official_loader(video_path=video_path, **kwargs)

    with _swapped(vp, "torch", _TorchBf16IsFp32(torch)), _swapped(vp, "load_video_frames", load_video_frames):
        yield


@contextlib.contextmanager
def official_session(predictor, video: TensorVideo):
    """``with official_session(p, TensorVideo(frames)) as state:`` -> official inference_state."""
    with official_patches():
        yield predictor.init_state(video)
