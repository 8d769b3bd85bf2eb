"""The XNNPACK EP placement prediction (exporters/onnx_xnnpack.py) on tiny hand-built graphs: each
rule read from onnxruntime's XNNPACK EP source, and the FLOP share from known shapes."""

from __future__ import annotations

import numpy as np
import onnx
from edgetam_export.exporters.onnx_xnnpack import ORT_XNNPACK_SOURCE, xnnpack_placement
from onnx import TensorProto, helper, numpy_helper

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _model(nodes, inputs, outputs, inits=(), opset=18):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        initializer=list(inits),
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return onnx.shape_inference.infer_shapes(m)


def _w(name, shape, dtype=np.float32):
    return numpy_helper.from_array(np.zeros(shape, dtype), name)


def _supported(m) -> dict:
    return xnnpack_placement(m)["supported_ops"]


def test_matmul_with_constant_b_is_taken_dynamic_b_is_not():
    m = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),  # [1, 64, 32] x const [32, 16]
            helper.make_node("MatMul", ["y", "k"], ["s"]),  # two activations: attention-like
        ],
        [("x", F32, [1, 64, 32]), ("k", F32, [1, 16, 64])],
        [("s", F32)],
        [_w("w", [32, 16])],
    )
    p = xnnpack_placement(m)
    assert p["supported_ops"] == {"MatMul": 1} and p["cpu_ep_ops"] == {"MatMul": 1}
    assert p["nodes"] == 2 and p["supported_nodes"] == 1 and p["predicted_from"] == ORT_XNNPACK_SOURCE
    # FLOPs: 2*64*16*32 on XNNPACK, 2*64*64*16 on the CPU EP
    on, off = 2 * 64 * 16 * 32, 2 * 64 * 64 * 16
    assert np.isclose(p["flop_share"], on / (on + off))
    assert np.isclose(p["gemm_conv_gflop"], (on + off) / 1e9)
    assert np.isclose(p["cpu_ep_gflop_by_op"]["MatMul"], off / 1e9)


def test_matmul_fp16_taken_and_batched_weight_not():
    m = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("MatMul", ["y", "w3"], ["z"]),  # rank-3 constant B: not a fully-connected weight
        ],
        [("x", F16, [8, 32])],
        [("z", F16)],
        [_w("w", [32, 16], np.float16), _w("w3", [1, 16, 4], np.float16)],
    )
    p = xnnpack_placement(m)
    assert p["supported_ops"] == {"MatMul": 1} and p["cpu_ep_ops"] == {"MatMul": 1}


def test_gemm_needs_constant_b_and_unit_alpha():
    m = _model(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1),
            helper.make_node("Gemm", ["y", "w2"], ["z"], alpha=0.5),
        ],
        [("x", F32, [4, 32])],
        [("z", F32)],
        [_w("w", [16, 32]), _w("b", [16]), _w("w2", [16, 8])],
    )
    p = xnnpack_placement(m)
    assert p["supported_ops"] == {"Gemm": 1} and p["cpu_ep_ops"] == {"Gemm": 1}
    on, off = 2 * 4 * 16 * 32, 2 * 4 * 8 * 16
    assert np.isclose(p["flop_share"], on / (on + off))


def test_conv_and_the_relu_after_it_are_taken_fp16_conv_is_not():
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])
    m = _model(
        [conv, helper.make_node("Relu", ["c"], ["y"])],
        [("x", F32, [1, 3, 8, 8])],
        [("y", F32)],
        [_w("w", [4, 3, 3, 3]), _w("b", [4])],
    )
    p = xnnpack_placement(m)
    assert p["supported_ops"] == {"Conv": 1, "Relu": 1} and p["fused_activations"] == 1
    assert p["flop_share"] == 1.0 and p["unsupported_ops"] == []
    assert p["partitions"] == 1 and p["partition_sizes"] == [2]
    assert np.isclose(p["gemm_conv_gflop"], 2 * 4 * 8 * 8 * 3 * 3 * 3 / 1e9)

    m16 = _model(
        [conv, helper.make_node("Relu", ["c"], ["y"])],
        [("x", F16, [1, 3, 8, 8])],
        [("y", F16)],
        [_w("w", [4, 3, 3, 3], np.float16), _w("b", [4], np.float16)],
    )
    p16 = xnnpack_placement(m16)
    assert p16["supported_nodes"] == 0 and p16["flop_share"] == 0.0  # no fp16 Conv in the source read


def test_relu_not_after_a_supported_node_stays_on_cpu():
    m = _model(
        [helper.make_node("Add", ["x", "x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])],
        [("x", F32, [1, 4, 8, 8])],
        [("y", F32)],
    )
    p = xnnpack_placement(m)
    assert p["supported_nodes"] == 0 and p["cpu_ep_ops"] == {"Add": 1, "Relu": 1}
    assert p["flop_share"] is None and p["partitions"] == 0


def test_add_layernorm_transpose_are_not_taken_softmax_is():
    m = _model(
        [
            helper.make_node("Add", ["x", "x"], ["a"]),
            helper.make_node("LayerNormalization", ["a", "g", "bt"], ["n"], axis=-1),
            helper.make_node("Transpose", ["n"], ["t"], perm=[0, 2, 1]),
            helper.make_node("Softmax", ["t"], ["s"], axis=-1),
            helper.make_node("Softmax", ["t"], ["s1"], axis=1),  # not the last axis
        ],
        [("x", F32, [1, 6, 8])],
        [("s", F32), ("s1", F32)],
        [_w("g", [8]), _w("bt", [8])],
    )
    p = xnnpack_placement(m)
    assert p["supported_ops"] == {"Softmax": 1}
    assert p["cpu_ep_ops"] == {"Add": 1, "LayerNormalization": 1, "Softmax": 1, "Transpose": 1}


def test_flop_share_and_partitions_on_a_mixed_graph():
    # Conv (on) -> Reshape/Transpose (CPU) -> MatMul const (on) -> MatMul x MatMul (CPU)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),  # [1,8,4,4] -> [1,16,4,4], 1x1
        helper.make_node("Reshape", ["c", "shp"], ["r"]),  # [1,16,16]
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),  # [1,16,16]
        helper.make_node("MatMul", ["t", "wm"], ["q"]),  # [1,16,16] x [16,32]
        helper.make_node("Transpose", ["q"], ["qt"], perm=[0, 2, 1]),  # [1,32,16]
        helper.make_node("MatMul", ["q", "qt"], ["a"]),  # [1,16,32] x [1,32,16]
    ]
    shp = numpy_helper.from_array(np.array([1, 16, 16], np.int64), "shp")
    m = _model(
        nodes, [("x", F32, [1, 8, 4, 4])], [("a", F32)], [_w("w", [16, 8, 1, 1]), _w("wm", [16, 32]), shp]
    )
    p = xnnpack_placement(m)
    conv, mm, attn = 2 * 16 * 4 * 4 * 8, 2 * 16 * 32 * 16, 2 * 16 * 16 * 32
    assert p["supported_ops"] == {"Conv": 1, "MatMul": 1}
    assert np.isclose(p["flop_share"], (conv + mm) / (conv + mm + attn))
    assert p["partitions"] == 2 and sorted(p["partition_sizes"]) == [1, 1]


def test_casts_the_x86_cpu_ep_inserted_around_fp16_nodes_are_undone():
    """optimize_model on x86 wraps fp16 nodes in InsertedPrecisionFreeCast_ casts to fp32 (the CPU
    EP has no fp16 MatMul); on the phone XNNPACK places the fp16 node before those exist."""
    pre = "InsertedPrecisionFreeCast_"
    nodes = [
        helper.make_node("Cast", ["x"], [pre + "x"], name=pre + "x", to=F32),
        helper.make_node("Cast", ["w"], [pre + "w"], name=pre + "w", to=F32),
        helper.make_node("MatMul", [pre + "x", pre + "w"], [pre + "y"]),
        helper.make_node("Cast", [pre + "y"], ["y"], name=pre + "y", to=F16),
    ]
    m = _model(nodes, [("x", F16, [4, 32])], [("y", F16)], [_w("w", [32, 16], np.float16)])
    p = xnnpack_placement(m)
    assert p["inserted_casts_ignored"] == 3 and p["nodes"] == 1
    assert p["supported_ops"] == {"MatMul": 1} and p["flop_share"] == 1.0


def test_a_node_the_cpu_ep_wrapped_in_casts_keeps_its_fp16_type():
    # ORT removed the exported fp32->fp16 input cast and its inserted fp16->fp32 twin, so the Conv
    # reads the fp32 graph input directly; its wrapped weight shows it computes in fp16 as exported.
    pre = "InsertedPrecisionFreeCast_"
    nodes = [
        helper.make_node("Cast", ["w"], [pre + "w"], name=pre + "w", to=F32),
        helper.make_node("Conv", ["x", pre + "w"], [pre + "c"]),
        helper.make_node("Cast", [pre + "c"], ["c"], name=pre + "c", to=F16),
    ]
    m = _model(nodes, [("x", F32, [1, 3, 8, 8])], [("c", F16)], [_w("w", [4, 3, 3, 3], np.float16)])
    p = xnnpack_placement(m)
    assert p["nodes"] == 1 and p["supported_nodes"] == 0 and p["cpu_ep_ops"] == {"Conv": 1}
