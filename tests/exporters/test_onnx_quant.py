"""ONNX recipes name real nodes: every ``name:`` keep-float rule matches the exported graph, and a stale rule is an error."""

from __future__ import annotations

import numpy as np
import pytest
from edgetam_export.exporters.onnx_quant import (
    ALWAYS_FLOAT,
    ATTENTION_MATMUL,
    DECODER_FLOAT_PARTS,
    RECIPES,
    nodes_to_exclude,
    quantize_onnx,
)
from edgetam_export.exporters.quantization import GraphQuant


def _tiny_model(path):
    import onnx
    from onnx import helper, numpy_helper

    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj/MatMul")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_a_rule_naming_no_node_is_an_error(tmp_path):
    src = tmp_path / "tiny.onnx"
    _tiny_model(src)
    calib = [(np.ones((1, 2), np.float32),)]
    ok = GraphQuant("int8_static", ("name:proj",), "test")
    notes = quantize_onnx(src, tmp_path / "ok.onnx", ok, calib, ["x"])
    assert notes["kept_float"] == {"MatMul": 1}
    stale = GraphQuant("int8_static", ("name:proj", "name:no_such_scope"), "test")
    with pytest.raises(ValueError, match=r"\['name:no_such_scope'\] name no node of tiny.onnx"):
        quantize_onnx(src, tmp_path / "stale.onnx", stale, calib, ["x"])
    assert not (tmp_path / "stale.onnx").exists()


def test_mixed_decoder_rules_match_the_exported_decoder(exported_bundles):
    """Each float part of the mixed decoder exists in the real export, and int8 work remains."""
    import onnx

    b = exported_bundles["main"]
    (art,) = [
        a
        for a in b.artifacts
        if a["backend"] == "onnx" and a["graph"] == "prompt_decoder" and a["precision"] == "fp32"
    ]
    model = onnx.load(str(b.root / art["path"]))
    for rule in DECODER_FLOAT_PARTS:
        assert nodes_to_exclude(model, (rule,)), rule
    assert RECIPES["mixed"].graphs["prompt_decoder"].keep_float == (
        *ALWAYS_FLOAT,
        ATTENTION_MATMUL,
        *DECODER_FLOAT_PARTS,
    )
    kept = set(nodes_to_exclude(model, RECIPES["mixed"].graphs["prompt_decoder"].keep_float))
    weighted = [
        n
        for n in model.graph.node
        if n.op_type in ("MatMul", "Gemm", "Conv", "ConvTranspose") and n.name not in kept
    ]
    assert len(weighted) >= 10  # the MLPs and heads stay quantizable


def test_sensitivity_image_encoder_parts_cover_the_exported_encoder(exported_bundles):
    """benchmarks/quant_sensitivity.py's image-encoder parts each name nodes, and together every Conv."""
    import importlib.util
    from pathlib import Path

    import onnx

    script = Path(__file__).parents[2] / "benchmarks" / "quant_sensitivity.py"
    spec = importlib.util.spec_from_file_location("quant_sensitivity", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    b = exported_bundles["main"]
    (art,) = [
        a
        for a in b.artifacts
        if a["backend"] == "onnx" and a["graph"] == "image_encoder" and a["precision"] == "fp32"
    ]
    model = onnx.load(str(b.root / art["path"]))
    covered = set()
    for part, scopes in mod.IMAGE_ENCODER_PARTS.items():
        nodes = set(nodes_to_exclude(model, tuple(f"name:{s}" for s in scopes)))
        assert nodes, part
        assert not nodes & covered, f"{part} overlaps another part"
        covered |= nodes
    convs = {n.name for n in model.graph.node if n.op_type == "Conv"}
    assert convs <= covered, sorted(convs - covered)[:5]
