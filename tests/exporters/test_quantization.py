"""Recipes are data: every backend's recipe covers the four graphs; resolve_recipe picks by name or precision, and names what exists."""

from __future__ import annotations

import pytest
from edgetam_export.exporters.quantization import GraphQuant, Recipe
from edgetam_export.exporters.recipes import recipes_for, resolve_recipe
from edgetam_export.models.constants import GRAPH_NAMES

from edgetam_export.backends import QUANTIZED_PRECISIONS


def test_onnx_recipes_cover_every_graph_with_a_reason():
    recipes = recipes_for("onnx")
    assert {"int8", "mixed", "int8_dynamic"} <= set(recipes)
    for name, r in recipes.items():
        assert isinstance(r, Recipe) and r.name == name and r.backend == "onnx"
        assert r.precision in QUANTIZED_PRECISIONS and r.description
        assert set(r.graphs) == set(GRAPH_NAMES), name
        for g, q in r.graphs.items():
            assert isinstance(q, GraphQuant) and q.why, (name, g)
    # int8 quantizes every graph; mixed keeps more float than int8 (a graph, a scheme, or parts)
    assert all(not q.is_float for q in recipes["int8"].graphs.values())
    int8 = recipes["int8"].graphs
    assert any(
        q.is_float or q.scheme != int8[g].scheme or set(q.keep_float) > set(int8[g].keep_float)
        for g, q in recipes["mixed"].graphs.items()
    )


def test_resolve_recipe_by_precision_and_by_name():
    assert resolve_recipe("onnx", "int8", None).name == "int8"
    assert resolve_recipe("onnx", "mixed", None).name == "mixed"
    assert resolve_recipe("onnx", "int8", "int8_dynamic").precision == "int8"


def test_resolve_recipe_errors_name_what_exists():
    with pytest.raises(ValueError, match=r"unknown onnx recipe 'nope'; choose one of: int8 \(int8\)"):
        resolve_recipe("onnx", "int8", "nope")
    with pytest.raises(ValueError, match="serves --precision mixed, not int8"):
        resolve_recipe("onnx", "int8", "mixed")
    with pytest.raises(ValueError, match="not 'fp16'"):
        resolve_recipe("onnx", "fp16", None)


def test_fold_weight_transposes_makes_the_weight_an_initializer():
    import numpy as np
    import onnx
    from edgetam_export.exporters.onnx_quant import fold_weight_transposes
    from onnx import helper, numpy_helper

    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
            helper.make_node("MatMul", ["x", "wt"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph)
    assert fold_weight_transposes(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MatMul"]
    (init,) = model.graph.initializer
    assert init.name == "wt" and np.array_equal(numpy_helper.to_array(init), w.T)
    onnx.checker.check_model(model)
