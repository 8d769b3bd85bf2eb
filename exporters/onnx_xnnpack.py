"""Static prediction of which nodes of an ONNX graph ONNX Runtime's XNNPACK execution provider takes.

Predicted, not run: the pip ``onnxruntime`` has no ``XnnpackExecutionProvider`` and the mobile
usability checker has no XNNPACK table, so :func:`xnnpack_placement` re-states the EP's own
placement rules, read from onnxruntime's source (``onnxruntime/core/providers/xnnpack/``), in our
own words. The source versions read are in :data:`ORT_XNNPACK_SOURCE`:

- ``xnnpack_execution_provider.cc`` (1b38b58, the newest stored ``GetCapability``): every supported
  node gets its own single-node ComputeCapability. XNNPACK is a static-kernel EP, not a compiling
  one: supported nodes run XNNPACK kernels and every other node runs on ORT's CPU EP (MLAS) in the
  same session. A ``Relu``/``Clip`` (constant min/max) whose input comes from a supported ``Conv``,
  ``MaxPool`` or ``AveragePool`` is fused into that node's kernel.
- ``detail/node_support_checker.cc`` (6479e4b): the ONNX-domain ops checked are Conv,
  ConvTranspose, MaxPool, AveragePool, Softmax, Resize, Gemm and MatMul (plus QLinear variants).
- per op (``IsOnnxNodeSupported``): MatMul and Gemm take fp32 or fp16 with the B input (Gemm: and
  C) a constant initializer of rank <= 2 (the fp16 versions of ``math/matmul.cc`` and
  ``math/gemm.cc``); Gemm needs alpha = beta = 1 and A of rank <= 2. MatMul's A may have any rank
  since onnxruntime PR #24908 (merged 2025-05-30, "Support activation broadcasting in XNNPACK
  Matmul", ORT 1.23), which removed the rank-2 limit on A. Conv/ConvTranspose (``nn/conv_base.cc``
  05d54b3) take 4-D fp32 (or int8/uint8) input with known C, H, W, a constant rank-4 weight and a
  constant bias; none of the stored versions of that file read here accepts fp16, so fp16
  convolutions are predicted on the CPU EP. Softmax (``math/softmax.cc`` 240f69d) takes fp32/fp16
  over the last axis with a known last dimension. Resize (``tensor/resize.cc`` 590497b) takes
  4-D fp32 ``linear`` mode with constant scales/sizes that keep C. MaxPool (6479e4b) /
  AveragePool (d6efbe4) take 4-D fp32 2-D pooling, no ceil mode, kernel not 1x1.

On fp16 graphs the x86 CPU EP that optimizes the model (``optimize_model``) wraps the fp16 nodes
it has no kernels for in inserted casts to fp32; the phone's EP places nodes before that happens,
so the prediction undoes those casts and reads the graph's dtypes as exported.

What matters for speed is the share of the graph's GEMM/convolution arithmetic (MatMul, Gemm, Conv,
ConvTranspose FLOPs from the inferred shapes) that lands on XNNPACK kernels: e.g. attention
MatMuls with two activation inputs run on the CPU EP (MLAS, NEON on a phone, multi-threaded).
``edgetam_export/bench/flops.py`` counts FLOPs of the PyTorch reference modules; per ONNX node
counts live here.
"""

from __future__ import annotations

import math
from collections import Counter

from .onnx_ort import INSERTED_CAST_PREFIX

ORT_XNNPACK_SOURCE = (
    "onnxruntime/core/providers/xnnpack @ microsoft/onnxruntime: xnnpack_execution_provider.cc 1b38b58 "
    "(GetCapability: one node per ComputeCapability), detail/node_support_checker.cc 6479e4b, "
    "math/matmul.cc + math/gemm.cc fp16 versions (MatMul A rank limit lifted by PR #24908, ORT 1.23), "
    "math/softmax.cc 240f69d, nn/conv_base.cc 05d54b3, tensor/resize.cc 590497b, nn/max_pool.cc 6479e4b, "
    "nn/average_pool.cc d6efbe4"
)

_F32, _U8, _I8, _F16 = 1, 2, 3, 10
_FLOP_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")


# Cast nodes and tensors that ORT's InsertCastTransformer adds when the x86 CPU EP, which lacks
# fp16 kernels, optimizes an fp16 graph (optimize_model): fp16 nodes then compute in fp32 between
# casts. On the phone, partitioning (XNNPACK GetCapability) runs before that transformer, so the
# prediction reads the graph as exported: inserted casts dropped, their tensors renamed back and
# fp32 ones typed fp16 again.
_INSERTED = INSERTED_CAST_PREFIX


class _Graph:
    """Nodes, shapes, dtypes and constants of one shape-inferred ONNX graph, with the CPU EP's
    inserted fp16 casts undone (``inserted_casts`` counts them)."""

    def __init__(self, model):
        import onnx
        from onnx import numpy_helper

        g = model.graph
        self.opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}.get("ai.onnx", 0)

        def orig(name: str) -> str:
            return name[len(_INSERTED) :] if name.startswith(_INSERTED) else name

        self.nodes = []
        self.was_fp16: set[int] = set()
        self.inserted_casts = 0
        for n in g.node:
            if n.op_type == "Cast" and n.name.startswith(_INSERTED):
                self.inserted_casts += 1
                continue
            c = onnx.NodeProto()
            c.CopyFrom(n)
            if any(x.startswith(_INSERTED) for x in (*n.input, *n.output)):
                self.was_fp16.add(id(c))  # the transformer only wraps fp16 nodes
            c.input[:] = [orig(i) for i in n.input]
            c.output[:] = [orig(o) for o in n.output]
            self.nodes.append(c)
        inputs = {i.name for i in g.input}
        self.sources = [*inputs, *(i.name for i in g.initializer if i.name not in inputs)]
        self.consts = {i.name: i for i in g.initializer if i.name not in inputs}  # overridable: not constant
        self.shape: dict[str, list[int | None]] = {}
        self.dtype: dict[str, int] = {}
        for vi in (*g.input, *g.output, *g.value_info):
            t = vi.type.tensor_type
            name, dtype = orig(vi.name), t.elem_type
            if name != vi.name:
                if name in self.dtype:
                    continue  # the tensor's own entry wins
                dtype = _F16 if dtype == _F32 else dtype
            self.dtype[name] = dtype
            if t.HasField("shape"):
                self.shape[name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        for name, t in self.consts.items():
            self.shape[name] = list(t.dims)
            self.dtype[name] = t.data_type
        self.producer = {o: n for n in self.nodes for o in n.output}
        self._np = numpy_helper

    def in_dtype(self, node, i: int = 0) -> int | None:
        """Element type of ``node.input[i]`` as exported (fp16 for a node the CPU EP wrapped in
        casts, even where ORT then removed a cast pair in front of it)."""
        dtype = self.dtype.get(node.input[i])
        return _F16 if dtype == _F32 and id(node) in self.was_fp16 else dtype

    def const(self, name: str):
        t = self.consts.get(name)
        if t is not None:
            return t
        p = self.producer.get(name)  # ORT turns Constant nodes into initializers at load
        if p is not None and p.op_type == "Constant" and p.domain in ("", "ai.onnx"):
            for a in p.attribute:
                if a.name == "value":
                    return a.t
        return None

    def value(self, name: str):
        t = self.const(name)
        return None if t is None else self._np.to_array(t)


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _known(shape, dims) -> bool:
    return shape is not None and all(shape[d] is not None and shape[d] > 0 for d in dims)


def _matmul(node, g: _Graph) -> bool:
    if len(node.input) != 2 or g.in_dtype(node) not in (_F32, _F16):
        return False
    a, b = g.shape.get(node.input[0]), g.shape.get(node.input[1])
    if a is None or len(a) == 0 or b is None or len(b) not in (1, 2) or not _known(b, range(len(b))):
        return False
    return g.const(node.input[1]) is not None


def _gemm(node, g: _Graph) -> bool:
    if _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0:
        return False
    if g.in_dtype(node) not in (_F32, _F16) or g.const(node.input[1]) is None:
        return False
    a, b = g.shape.get(node.input[0]), g.shape.get(node.input[1])
    if a is None or len(a) >= 3 or b is None or len(b) >= 3:
        return False
    if len(node.input) > 2 and node.input[2]:
        c = g.shape.get(node.input[2])
        if g.const(node.input[2]) is None or c is None or not 1 <= len(c) <= 2:
            return False
        if c[0] not in (b[-1], b[0]):
            return False
    return True


def _conv(node, g: _Graph) -> bool:
    x = g.shape.get(node.input[0])
    if g.opset < 11 or x is None or len(x) != 4 or g.in_dtype(node) not in (_F32, _U8, _I8):
        return False
    if not _known(x, (1, 2, 3)):
        return False
    w = g.const(node.input[1])
    if w is None or len(w.dims) != 4:
        return False
    if len(node.input) > 2 and node.input[2] and g.const(node.input[2]) is None:
        return False
    auto_pad = _attr(node, "auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    return _attr(node, "pads") is not None or auto_pad in ("NOTSET", "VALID", "SAME_UPPER")


def _softmax(node, g: _Graph) -> bool:
    x = g.shape.get(node.input[0])
    if g.in_dtype(node) not in (_F32, _F16, _U8) or not x:
        return False
    axis = _attr(node, "axis", -1)
    if g.opset >= 13 and axis not in (-1, len(x) - 1):
        return False
    return x[-1] is not None and x[-1] > 0


def _resize(node, g: _Graph) -> bool:
    x = g.shape.get(node.input[0])
    if g.in_dtype(node) not in (_F32, _U8, _I8) or x is None or len(x) != 4 or not _known(x, (1,)):
        return False
    scales = g.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    sizes = g.value(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if scales is not None and scales.size == 0:
        scales = None
    if scales is None and sizes is None:
        return False
    if (scales is not None and float(scales[1]) != 1.0) or (sizes is not None and int(sizes[1]) != x[1]):
        return False

    def s(name, default):
        v = _attr(node, name, default)
        return v.decode() if isinstance(v, bytes) else v

    if s("mode", "nearest") != "linear" or _attr(node, "antialias", 0) != 0 or _attr(node, "axes"):
        return False
    if s("keep_aspect_ratio_policy", "stretch") != "stretch" or _attr(node, "extrapolation_value", 0.0) != 0:
        return False
    if _attr(node, "exclude_outside", 0) != 0:
        return False
    y = g.shape.get(node.output[0]) or [None] * 4
    big = all(d is not None and d > 1 for d in y[2:4])
    mode = s("coordinate_transformation_mode", "half_pixel")
    return mode in ("asymmetric", "half_pixel", "align_corners") or (mode == "pytorch_half_pixel" and big)


def _pool(node, g: _Graph) -> bool:
    x = g.shape.get(node.input[0])
    if g.in_dtype(node) not in (_F32, _U8) or x is None or len(x) != 4 or not _known(x, (1, 2, 3)):
        return False
    k = _attr(node, "kernel_shape", [])
    if len(k) != 2 or list(k) == [1, 1] or _attr(node, "ceil_mode", 0) != 0:
        return False
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        return False
    return node.op_type != "AveragePool" or _attr(node, "count_include_pad", 0) == 0


_RULES = {
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Conv": _conv,
    "ConvTranspose": _conv,
    "Softmax": _softmax,
    "Resize": _resize,
    "MaxPool": _pool,
    "AveragePool": _pool,
}
_FUSES_INTO = ("Conv", "MaxPool", "AveragePool")  # Relu / Clip ride on these kernels


def node_flops(node, g: _Graph) -> int:
    """Multiply-add FLOPs (2 per MAC) of a MatMul / Gemm / Conv / ConvTranspose node from inferred
    shapes; 0 for other ops or unknown shapes."""
    shape = g.shape.get
    if node.op_type == "MatMul":
        a, y = shape(node.input[0]), shape(node.output[0])
        if a and y is not None and all(d for d in (*a[-1:], *y)):
            return 2 * math.prod(y) * a[-1]
    elif node.op_type == "Gemm":
        a, y = shape(node.input[0]), shape(node.output[0])
        if a and len(a) == 2 and y and all(y):
            k = a[0] if _attr(node, "transA", 0) else a[1]
            return 2 * math.prod(y) * k if k else 0
    elif node.op_type == "Conv":
        w, y = shape(node.input[1]), shape(node.output[0])
        if w and y and all(w) and all(y):
            return 2 * math.prod(y) * math.prod(w[1:])  # Cout*Hout*Wout * (Cin/groups)*kh*kw
    elif node.op_type == "ConvTranspose":
        x, w = shape(node.input[0]), shape(node.input[1])
        if x and w and all(x) and all(w):
            return 2 * math.prod(x) * math.prod(w[1:])  # every input pixel scatters (Cout/groups)*kh*kw
    return 0


def _partition_count(g: _Graph, supported: set[str]):
    """Contiguous groups of supported nodes, counted with onnxruntime's own partition grouping
    (usability_checker.check_partitioning); ``None`` when that helper is not importable."""
    try:
        from onnxruntime.tools.mobile_helpers.usability_checker import check_partitioning
    except ImportError:
        return None

    class _ByNode:  # the checker interface check_partitioning calls
        def is_op_supported(self, node):
            return (node.output[0] if node.output else node.name) in supported

        def get_caveats(self):
            return []

    # shapes were checked per rule above; the helper would also reject the empty optional inputs
    # of e.g. Resize (roi="") as not fixed-size
    import onnx

    # graph inputs and initializers as (shapeless) inputs: the helper checks every input is produced
    known = [onnx.helper.make_tensor_value_info(n, g.dtype.get(n, 0), None) for n in g.sources]
    graph = onnx.helper.make_graph(g.nodes, "xnnpack_view", known, [])
    info = check_partitioning(graph, _ByNode(), require_fixed_input_sizes=False)
    return int(info.num_partitions), [len(grp) for grp in info.supported_groups]


def xnnpack_placement(model) -> dict:
    """Predicted XNNPACK EP placement of a shape-inferred ``onnx.ModelProto`` (see the module
    docstring): ``{predicted_from, nodes, supported_nodes, fused_activations, partitions,
    partition_sizes, supported_ops, unsupported_ops, cpu_ep_ops, gemm_conv_gflop, flop_share,
    cpu_ep_gflop_by_op, inserted_casts_ignored, note}``. ``nodes`` excludes the casts the x86 CPU
    EP inserted around fp16 nodes while optimizing (see ``_INSERTED``). ``partitions`` counts
    contiguous groups of supported nodes (ORT's partition grouping); the EP itself requests one
    capability per node."""
    g = _Graph(model)
    supported: set[str] = set()
    fused = 0
    by_key = {}
    for node in g.nodes:  # ONNX graphs are stored topologically sorted
        key = node.output[0] if node.output else node.name
        by_key[key] = node
        if node.domain not in ("", "ai.onnx"):
            continue
        rule = _RULES.get(node.op_type)
        if rule is not None and rule(node, g):
            supported.add(key)
            continue
        if node.op_type in ("Relu", "Clip") and node.input:
            src = g.producer.get(node.input[0])
            ok_clip = all(g.const(i) is not None for i in node.input[1:] if i)
            if src is not None and src.op_type in _FUSES_INTO and src.output[0] in supported and ok_clip:
                supported.add(key)
                fused += 1

    def op(n):
        return n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"

    sup_ops, cpu_ops = Counter(), Counter()
    total = on = 0
    cpu_flop_ops = Counter()
    for key, node in by_key.items():
        f = node_flops(node, g)
        total += f
        if key in supported:
            sup_ops[op(node)] += 1
            on += f
        else:
            cpu_ops[op(node)] += 1
            if f:
                cpu_flop_ops[op(node)] += f
    parts = _partition_count(g, supported)
    return {
        "predicted_from": ORT_XNNPACK_SOURCE,
        "nodes": len(by_key),
        "inserted_casts_ignored": g.inserted_casts,
        "supported_nodes": len(supported),
        "fused_activations": fused,
        "partitions": parts[0] if parts else None,
        "partition_sizes": parts[1] if parts else None,
        "supported_ops": dict(sorted(sup_ops.items())),
        "unsupported_ops": sorted(cpu_ops),
        "cpu_ep_ops": dict(sorted(cpu_ops.items())),
        "gemm_conv_gflop": total / 1e9,
        "flop_share": (on / total) if total else None,
        "cpu_ep_gflop_by_op": {k: v / 1e9 for k, v in sorted(cpu_flop_ops.items())},
        "note": (
            "predicted from onnxruntime's XNNPACK EP source, not run; the EP places single nodes "
            "(one ComputeCapability each), the rest run on the CPU EP in the same session"
        ),
    }
