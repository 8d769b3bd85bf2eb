"""Every ONNX artifact records onnxruntime's mobile usability check (partitions per mobile EP)."""

from __future__ import annotations

from edgetam_export.exporters.onnx_mobile import XNNPACK_NOT_CHECKED, mobile_summary

from edgetam_export.cli.export import artifacts_table

EPS = ("NNAPI", "CoreML_NeuralNetwork", "CoreML_MLProgram")


def test_onnx_artifacts_carry_mobile_partitioning(exported_bundles):
    arts = [a for a in exported_bundles["main"].artifacts if a["backend"] == "onnx"]
    assert len(arts) == 8  # 4 graphs x fp32/fp16
    for a in arts:
        mobile = a["notes"]["mobile"]
        assert mobile["XNNPACK"] == XNNPACK_NOT_CHECKED
        for ep in EPS:
            info = mobile[ep]
            where = f"{a['graph']} {a['precision']} {ep}: {info}"
            assert info["nodes"] > 0 and 0 <= info["supported_nodes"] <= info["nodes"], where
            assert len(info["partition_sizes"]) == info["partitions"], where
            assert sum(info["partition_sizes"]) == info["supported_nodes"], where
            assert info["suitability"] in ("YES", "MAYBE", "NO"), where
        assert mobile_summary(a["notes"]).startswith("mobile: NNAPI ")
    table = artifacts_table(exported_bundles["main"].artifacts)
    assert any("mobile: NNAPI" in str(cell) for col in table.columns for cell in col._cells)


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
