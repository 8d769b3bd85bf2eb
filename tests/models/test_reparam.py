"""Reparameterization of the image encoder: exactness of each fold, structure, no input mutation.

The full-model check uses salt-1 weights on procedural frame 7 (neither is golden data); the
salt-0 / frame-0 fused-vs-unfused check lives in test_image_encoder.py, where those outputs are
already cached.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from edgetam_export.models import synthetic_state_dict
from edgetam_export.models.image_encoder import ImageEncoder
from edgetam_export.models.layers import sub_state_dict
from edgetam_export.models.reparam import (
    fold_conv_bn,
    fold_pointwise_chain,
    fold_token_mixer,
    fuse_image_encoder,
    nearest_upsample_x2,
)
from edgetam_export.models.repvit import ConvBN, DwRepMixer
from edgetam_export.models.wrap_image_encoder import ImageEncoderExport
from torch import nn

OUTPUT_NAMES = ("feat_s0", "feat_s1", "vis")


def _randomize_bn(bn: nn.BatchNorm2d, g: torch.Generator) -> None:
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(1 + 0.3 * torch.randn(c, generator=g))
        bn.bias.copy_(0.2 * torch.randn(c, generator=g))
        bn.running_mean.copy_(0.5 * torch.randn(c, generator=g))
        bn.running_var.copy_(0.3 + torch.rand(c, generator=g))


# ---------------------------------------------------------------- per-fold unit checks (cheap)


def test_fold_conv_bn_strided_grouped():
    g = torch.Generator().manual_seed(0)
    m = ConvBN(8, 8, 3, 2, 1, groups=8).eval()
    _randomize_bn(m.bn, g)
    x = torch.randn(2, 8, 17, 17, generator=g)
    fused = fold_conv_bn(m.c, m.bn)
    assert fused.stride == (2, 2) and fused.groups == 8 and fused.bias is not None
    torch.testing.assert_close(fused(x), m(x), rtol=0, atol=1e-5)


def test_fold_token_mixer_is_one_dw3x3():
    g = torch.Generator().manual_seed(1)
    m = DwRepMixer(16).eval()
    _randomize_bn(m.conv.bn, g)
    _randomize_bn(m.conv1.bn, g)
    x = torch.randn(1, 16, 20, 20, generator=g)
    fused = fold_token_mixer(m)
    assert isinstance(fused, nn.Conv2d) and fused.kernel_size == (3, 3) and fused.groups == 16
    torch.testing.assert_close(fused(x), m(x), rtol=0, atol=1e-5)


def test_fold_pointwise_chain():
    g = torch.Generator().manual_seed(2)
    a, b = nn.Conv2d(12, 40, 1), nn.Conv2d(40, 6, 1)
    x = torch.randn(1, 12, 9, 9, generator=g)
    fused = fold_pointwise_chain(a, b)
    assert (fused.in_channels, fused.out_channels) == (12, 6)
    torch.testing.assert_close(fused(x), b(a(x)), rtol=0, atol=1e-5)


def test_nearest_upsample_as_conv_transpose_is_bit_exact():
    x = torch.randn(1, 256, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = nearest_upsample_x2(256)(x)
    assert torch.equal(y, F.interpolate(x, scale_factor=2.0, mode="nearest"))


# ---------------------------------------------------------------- full encoder, salt 1, frame 7


@pytest.fixture(scope="module")
def salt1_parts():
    sd = synthetic_state_dict(1)
    enc = ImageEncoder()
    enc.load_state_dict(sub_state_dict(sd, "image_encoder"), strict=True)
    conv_s0 = nn.Conv2d(256, 32, 1)
    conv_s0.load_state_dict(sub_state_dict(sd, "sam_mask_decoder.conv_s0"), strict=True)
    conv_s1 = nn.Conv2d(256, 64, 1)
    conv_s1.load_state_dict(sub_state_dict(sd, "sam_mask_decoder.conv_s1"), strict=True)
    return enc.eval(), conv_s0.eval(), conv_s1.eval()


@pytest.fixture(scope="module")
def fused_salt1(salt1_parts):
    """(fused module, snapshot of the inputs' state dicts taken before fusing)."""
    snapshot = [{k: v.clone() for k, v in m.state_dict().items()} for m in salt1_parts]
    return fuse_image_encoder(*salt1_parts), snapshot


@pytest.fixture(scope="module")
def frame7_outputs(salt1_parts, fused_salt1, frame_tensor):
    image = frame_tensor(7)
    with torch.no_grad():
        ref = ImageEncoderExport(*salt1_parts, fuse=False)(image)
        test = fused_salt1[0](image)
    return dict(zip(OUTPUT_NAMES, ref, strict=True)), dict(zip(OUTPUT_NAMES, test, strict=True))


@pytest.mark.parametrize("name", OUTPUT_NAMES)
def test_fused_matches_unfused_salt1_frame7(name, frame7_outputs, parity):
    ref, test = frame7_outputs
    assert ref[name].shape == test[name].shape
    parity.check(
        f"image_encoder.{name} fused vs unfused (salt 1, frame 7)",
        ref[name],
        test[name],
        "reference_fused",
        "fp32",
        "features",
    )


def test_fused_structure(fused_salt1):
    fused, _ = fused_salt1
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert not any(isinstance(m, (ConvBN, DwRepMixer)) for m in fused.modules())
    # docs/MODEL.md §6: fused trunk = 103 Conv2d (incl. SE fc1/fc2), 4,682,056 params
    assert sum(isinstance(m, nn.Conv2d) for m in fused.trunk.modules()) == 103
    assert sum(p.numel() for p in fused.trunk.parameters()) == 4_682_056
    # + 2 laterals (384/192 -> 256) + 2 folded high-res projections; upsampling is one dw ConvT
    assert sum(isinstance(m, nn.Conv2d) for m in fused.modules()) == 107
    ups = [m for m in fused.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 1 and ups[0].groups == 256 and torch.all(ups[0].weight == 1)
    assert (fused.proj_s0.in_channels, fused.proj_s0.out_channels) == (48, 32)
    assert (fused.proj_s1.in_channels, fused.proj_s1.out_channels) == (96, 64)
    # docs/MODEL.md §6: fused + folded encoder ≈ 4,837,800 params; the ones-kernel ConvT adds 256·2·2
    assert sum(p.numel() for p in fused.parameters()) == 4_837_800 + 1024
    # every token mixer is a single depthwise 3x3 conv with bias
    body = fused.trunk.body
    mixers = [b.token_mixer for s in range(4) for b in getattr(body, f"stages_{s}").blocks]
    mixers += [getattr(body, f"stages_{s}").downsample.pre_block.token_mixer for s in (1, 2, 3)]
    assert len(mixers) == 23
    for m in mixers:
        assert type(m) is nn.Conv2d
        assert m.kernel_size == (3, 3) and m.groups == m.in_channels == m.out_channels and m.bias is not None


def test_inputs_not_mutated(salt1_parts, fused_salt1, frame7_outputs):
    fused, snapshot = fused_salt1
    for module, before in zip(salt1_parts, snapshot, strict=True):
        after = module.state_dict()
        assert after.keys() == before.keys()
        for k, v in before.items():
            assert torch.equal(after[k], v), k
    # the original still has its BatchNorms and the fused copy shares no storage with it
    enc = salt1_parts[0]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in enc.modules()) == 106
    original = {t.data_ptr() for m in salt1_parts for t in m.state_dict().values()}
    assert not original & {t.data_ptr() for t in fused.state_dict().values()}
