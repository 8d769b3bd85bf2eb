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
