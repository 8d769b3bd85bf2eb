"""Image encoder: strict loading, golden parity (unfused reference and fused export wrapper), export.

The encoder costs ~17 GMAC per call, so each model is built once per module and each
(weights, frame, path) output is computed once and cached.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgetam_export.models.image_encoder import ImageEncoder
from edgetam_export.models.layers import sub_state_dict
from edgetam_export.models.wrap_image_encoder import ImageEncoderExport
from torch import nn

OUTPUT_NAMES = ("feat_s0", "feat_s1", "vis")
GOLDEN_KEYS = {
    "feat_s0": "high_res_feat_s0_ch0_7",
    "feat_s1": "high_res_feat_s1_ch0_7",
    "vis": "vision_features",
}
STATS_KEYS = {"feat_s0": "s0", "feat_s1": "s1", "vis": "vis"}


def _load_parts(sd: dict[str, torch.Tensor]) -> tuple[ImageEncoder, nn.Conv2d, nn.Conv2d]:
    enc = ImageEncoder()
    enc.load_state_dict(sub_state_dict(sd, "image_encoder"), strict=True)
    conv_s0 = nn.Conv2d(256, 32, 1)
    conv_s0.load_state_dict(sub_state_dict(sd, "sam_mask_decoder.conv_s0"), strict=True)
    conv_s1 = nn.Conv2d(256, 64, 1)
    conv_s1.load_state_dict(sub_state_dict(sd, "sam_mask_decoder.conv_s1"), strict=True)
    return enc.eval(), conv_s0.eval(), conv_s1.eval()


@pytest.fixture(scope="module")
def parts(synthetic_sd):
    return _load_parts(synthetic_sd)


@pytest.fixture(scope="module")
def wrappers(parts):
    return {"unfused": ImageEncoderExport(*parts, fuse=False), "fused": ImageEncoderExport(*parts, fuse=True)}


@pytest.fixture(scope="module")
def frame0_outputs(wrappers, frame_tensor):
    """{path: {name: (1,C,H,W) tensor}} for golden frame 0 with salt-0 weights."""
    image = frame_tensor(0)
    out = {}
    with torch.no_grad():
        for path, w in wrappers.items():
            out[path] = dict(zip(OUTPUT_NAMES, w(image), strict=True))
    return out


def test_strict_load_and_param_count(parts):
    enc, _, _ = parts
    # docs/MODEL.md §6: trunk 4,713,712 params unfused, neck 185,344
    assert sum(p.numel() for p in enc.trunk.parameters()) == 4_713_712
    assert sum(p.numel() for p in enc.neck.parameters()) == 185_344
    names = {k for k, _ in enc.state_dict().items()}
    assert "trunk.body.stem.conv1.c.weight" in names
    assert "neck.convs.3.conv.weight" in names
    # SE on even blocks only (stages_2 has 14 blocks: 0, 2, ..., 12)
    body = enc.trunk.body
    se_blocks = [i for i, b in enumerate(body.stages_2.blocks) if not isinstance(b.se, nn.Identity)]
    assert se_blocks == list(range(0, 14, 2))


def test_contract_and_output_shapes(wrappers, frame0_outputs):
    for path, w in wrappers.items():
        assert w.contract.name == "image_encoder"
        assert w.contract.input_names == ["image"]
        assert w.contract.output_names == list(OUTPUT_NAMES)
        assert all(s.description for s in (*w.contract.inputs, *w.contract.outputs))
        (example,) = w.example_inputs()
        w.contract.inputs[0].check(example)
        for spec in w.contract.outputs:
            spec.check(frame0_outputs[path][spec.name])


@pytest.mark.parametrize("path", ["unfused", "fused"])
@pytest.mark.parametrize("name", OUTPUT_NAMES)
def test_golden_frame0(path, name, frame0_outputs, golden, parity):
    ref = golden("image_encoder")[GOLDEN_KEYS[name]]
    test = frame0_outputs[path][name][0]
    if name != "vis":
        test = test[:8]  # the golden file stores channels 0..7
    parity.check(
        f"image_encoder[{path}].{name}{'' if name == 'vis' else '[:8]'}",
        ref,
        test,
        "official",
        "fp32",
        "features",
    )


@pytest.mark.parametrize("path", ["unfused", "fused"])
@pytest.mark.parametrize("name", OUTPUT_NAMES)
def test_golden_full_stats(path, name, frame0_outputs, golden_json, parity):
    stats = golden_json["scenarios"]["image_encoder"]["full_stats"][STATS_KEYS[name]]
    t = frame0_outputs[path][name][0]
    assert list(t.shape) == stats["shape"]
    ref = np.array([stats["mean"], stats["std"], stats["max_abs"]])
    x = t.double()
    test = np.array([x.mean().item(), x.std().item(), x.abs().max().item()])
    parity.check(
        f"image_encoder[{path}].{name}.(mean,std,max_abs)", ref, test, "official", "fp32", "features"
    )


def test_fused_matches_unfused_salt0_frame0(frame0_outputs, parity):
    for name in OUTPUT_NAMES:
        parity.check(
            f"image_encoder.{name} fused vs unfused (salt 0, frame 0)",
            frame0_outputs["unfused"][name],
            frame0_outputs["fused"][name],
            "reference_fused",
            "fp32",
            "features",
        )


def test_torch_export_fused(wrappers):
    w = wrappers["fused"]
    ep = torch.export.export(w, w.example_inputs())
    graph = ep.graph_module.graph
    # export rules (docs/MODEL.md §5): no rank > 5 tensor anywhere, no constants lifted from forward, no BN
    for node in graph.nodes:
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor):
            assert val.dim() <= 5, f"{node.name} has rank {val.dim()}"
    assert not ep.constants, f"constants created in forward: {list(ep.constants)}"
    targets = {str(n.target) for n in graph.nodes if n.op == "call_function"}
    assert not any("batch_norm" in t for t in targets), targets
    assert not any("upsample" in t or "interpolate" in t for t in targets), targets
    out_shapes = [tuple(v.shape) for v in (n.meta["val"] for n in graph.output_node().args[0])]
    assert out_shapes == [s.shape for s in w.contract.outputs]
