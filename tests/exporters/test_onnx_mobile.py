"""Every ONNX artifact records onnxruntime's mobile usability check (partitions per mobile EP) and
the XNNPACK EP placement predicted from its source (exporters/onnx_xnnpack.py)."""

from __future__ import annotations

from edgetam_export.exporters.onnx_mobile import mobile_summary
from edgetam_export.exporters.onnx_xnnpack import ORT_XNNPACK_SOURCE

from edgetam_export.cli.export import artifacts_table

EPS = ("NNAPI", "CoreML_NeuralNetwork", "CoreML_MLProgram")


def test_onnx_artifacts_carry_mobile_partitioning(exported_bundles):
    arts = [a for a in exported_bundles["main"].artifacts if a["backend"] == "onnx"]
    assert len(arts) == 8  # 4 graphs x fp32/fp16
    for a in arts:
        mobile = a["notes"]["mobile"]
        x = mobile["XNNPACK"]
        where = f"{a['graph']} {a['precision']} XNNPACK: {x}"
        assert x["predicted_from"] == ORT_XNNPACK_SOURCE, where
        # the same BASIC-optimized model, less the casts the x86 CPU EP wrapped fp16 nodes in
        assert x["nodes"] + x["inserted_casts_ignored"] == mobile["CoreML_MLProgram"]["nodes"], where
        assert (x["inserted_casts_ignored"] > 0) == (a["precision"] == "fp16"), where
        assert 0 <= x["supported_nodes"] <= x["nodes"], where
        assert sum(x["supported_ops"].values()) == x["supported_nodes"], where
        assert sum(x["cpu_ep_ops"].values()) == x["nodes"] - x["supported_nodes"], where
        assert sum(x["partition_sizes"]) == x["supported_nodes"], where
        assert len(x["partition_sizes"]) == x["partitions"], where
        assert x["gemm_conv_gflop"] > 0 and 0.0 <= x["flop_share"] <= 1.0, where
        if a["precision"] == "fp32":
            assert x["supported_nodes"] > 0 and x["flop_share"] > 0.2, where
        for ep in EPS:
            info = mobile[ep]
            where = f"{a['graph']} {a['precision']} {ep}: {info}"
            assert info["nodes"] > 0 and 0 <= info["supported_nodes"] <= info["nodes"], where
            assert len(info["partition_sizes"]) == info["partitions"], where
            assert sum(info["partition_sizes"]) == info["supported_nodes"], where
            assert info["suitability"] in ("YES", "MAYBE", "NO"), where
        summary = mobile_summary(a["notes"])
        assert summary.startswith("mobile: NNAPI ") and "XNNPACK (predicted) " in summary, summary
    table = artifacts_table(exported_bundles["main"].artifacts)
    cells = [str(cell) for col in table.columns for cell in col._cells]
    assert any("mobile: NNAPI" in c and "XNNPACK (predicted)" in c for c in cells)


def test_xnnpack_prediction_puts_the_fp32_image_encoder_convs_on_xnnpack(exported_bundles):
    """The fp32 image encoder is convolutional (RepViT + FPN): its conv FLOPs are XNNPACK kernels.
    fp16 convolutions are predicted on the CPU EP (no fp16 Conv in the EP source read)."""
    arts = {
        (a["graph"], a["precision"]): a["notes"]["mobile"]["XNNPACK"]
        for a in exported_bundles["main"].artifacts
        if a["backend"] == "onnx"
    }
    enc = arts[("image_encoder", "fp32")]
    assert enc["flop_share"] > 0.9 and enc["supported_ops"].get("Conv", 0) > 0, enc
    assert "Conv" not in enc["cpu_ep_ops"], enc
    enc16 = arts[("image_encoder", "fp16")]
    assert "Conv" not in enc16["supported_ops"] and enc16["flop_share"] < enc["flop_share"], enc16
    # The memory attention's GEMM work left to the CPU EP is its attention MatMuls (two activations).
    attn = arts[("memory_attention", "fp32")]
    assert set(attn["cpu_ep_gflop_by_op"]) == {"MatMul"} and attn["supported_ops"]["Gemm"] > 0, attn


# What still splits each fp32 graph on the Core ML MLProgram EP once the mobile forms are exported
# (ORT's checker, onnxruntime 1.32): the prompt decoder's exact ``==`` form uses Abs and its mask
# input is padded (Pad); everything else is one partition. The reference forms split on Expand,
# Equal, Greater and Gather as well (docs/PERFORMANCE.md).
MLPROGRAM_FP32 = {
    "image_encoder": (1, set()),
    "prompt_decoder": (2, {"ai.onnx:Abs", "ai.onnx:Pad"}),
    "memory_encoder": (1, set()),
    "memory_attention": (1, set()),
}


def test_mobile_forms_keep_fp32_graphs_whole_on_coreml_mlprogram(exported_bundles):
    arts = [
        a for a in exported_bundles["main"].artifacts if a["backend"] == "onnx" and a["precision"] == "fp32"
    ]
    assert exported_bundles["main"].manifest["backends"]["onnx"]["options"]["mobile_forms"] is True
    for a in arts:
        info = a["notes"]["mobile"]["CoreML_MLProgram"]
        parts, unsupported = MLPROGRAM_FP32[a["graph"]]
        assert info["partitions"] <= parts and set(info["unsupported_ops"]) <= unsupported, (a["graph"], info)
        if a["graph"] != "image_encoder":  # the encoder needs no rewrite
            assert a["notes"]["rewrites"] and "XnnLayerNorm" not in a["notes"]["rewrites"], a["notes"][
                "rewrites"
            ]
