"""ExecuTorch int8: PT2E quantization with the XNNPACKQuantizer, and the executorch recipes (as data).

Flow (the one ExecuTorch's own XNNPACK examples use): ``torch.export.export(module).module()``
-> ``prepare_pt2e(gm, XNNPACKQuantizer)`` -> run the calibration tuples -> ``convert_pt2e`` ->
``torch.export.export`` again -> ``to_edge_transform_and_lower`` with the ``XnnpackPartitioner``
(done by :mod:`.executorch_exporter`).

Schemes (``GraphQuant.scheme``):

* ``int8_static``: ``get_symmetric_quantization_config(is_per_channel=True)``: int8 weights,
  symmetric per output channel (MinMax); int8 activations, per tensor, calibrated
  (HistogramObserver over the calibration tuples). The quantizer annotates conv / conv
  transpose, linear, add, mul, cat and adaptive-avg-pool patterns; everything else stays fp32
  (see :data:`FP32_BY_DESIGN`).
* ``int8_dynamic``: the same weights; activations of ``linear`` quantized at run time (per
  tensor, no calibration); convolutions and elementwise ops stay fp32.

``GraphQuant.keep_float`` entries are either an op kind of :data:`OP_KINDS` (every such node of
the graph stays fp32, e.g. ``"add"``) or a submodule path of the export wrapper (every
quantizable node inside it stays fp32, e.g. ``"mask_decoder.pred_obj_score_head"``); a path
that names no submodule is an error.
"""

from __future__ import annotations

from collections import Counter

from ..models.constants import GRAPH_NAMES
from .quantization import GraphQuant, Recipe

SCHEMES = ("int8_static", "int8_dynamic")
FLOAT_SCHEMES = ("fp32", "fp16")

# keep_float op kinds -> the aten targets the XNNPACKQuantizer annotates for them.
OP_KINDS = ("conv", "linear", "add", "mul", "cat", "adaptive_avg_pool2d")

# Ops the XNNPACKQuantizer has no int8 pattern for: they always run in fp32 (between a
# dequantize and a quantize), delegated to XNNPACK's fp32 kernels where XNNPACK has them.
FP32_BY_DESIGN = (
    "softmax",
    "layer_norm (LayerNorm, LayerNorm2d)",
    "attention matmul / bmm (q·kᵀ and attn·v)",
    "gelu, sigmoid, exp, erf",
    "upsample / interpolate (bilinear)",
    "sin/cos (RoPE and sine position encodings are baked constants)",
)

# Shape/layout ops: counted in neither precision in the op report.
_LAYOUT_OPS = {
    "view",
    "reshape",
    "_unsafe_view",
    "permute",
    "transpose",
    "t",
    "expand",
    "unsqueeze",
    "squeeze",
    "flatten",
    "contiguous",
    "clone",
    "slice",
    "select",
    "getitem",
    "split",
    "split_with_sizes",
    "chunk",
    "unbind",
    "alias",
    "detach",
    "_assert_tensor_metadata",
    "lift_fresh_copy",
}


def _op_targets(kind: str) -> set:
    from executorch.backends.xnnpack.quantizer import xnnpack_quantizer as xq

    return {
        "conv": set(xq.CONV_TARGETS) | set(xq.CONV_TRANSPOSE_TARGETS),
        "linear": set(xq.LINEAR_TARGETS),
        "add": set(xq.ADD_TARGETS),
        "mul": set(xq.MUL_TARGETS),
        "cat": set(xq.CAT_TARGETS),
        "adaptive_avg_pool2d": set(xq.ADAPTIVE_AVG_POOL2D_TARGETS),
    }[kind]


def check_graph_quant(module, quant: GraphQuant) -> None:
    """Raise ``ValueError`` unless ``quant`` is an ExecuTorch scheme whose keep_float entries exist in ``module``."""
    if quant.scheme not in SCHEMES + FLOAT_SCHEMES:
        raise ValueError(
            f"unknown executorch quantization scheme {quant.scheme!r}; one of {SCHEMES + FLOAT_SCHEMES}"
        )
    names = {n for n, _ in module.named_modules() if n}
    for entry in quant.keep_float:
        if entry not in OP_KINDS and entry not in names:
            raise ValueError(
                f"keep_float entry {entry!r} is neither an op kind {OP_KINDS} nor a submodule of "
                f"{module.contract.name!r}"
            )


def _keep_float_filter(keep_float: tuple[str, ...]):
    """Quantizer filter: False for nodes that must stay fp32 (by op kind or enclosing module)."""
    from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter

    targets = set().union(*(_op_targets(k) for k in keep_float if k in OP_KINDS))
    module_filters = [get_module_name_filter(k) for k in keep_float if k not in OP_KINDS]

    def quantize_node(node) -> bool:
        if node.op == "call_function" and node.target in targets:
            return False
        return not any(f(node) for f in module_filters)

    return quantize_node


def quantization_config(scheme: str):
    """The XNNPACKQuantizer config of an int8 ``scheme``."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    if scheme == "int8_static":
        return get_symmetric_quantization_config(is_per_channel=True)
    if scheme == "int8_dynamic":
        return get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    raise ValueError(f"{scheme!r} is not an int8 scheme; one of {SCHEMES}")


def quantize_module(module, calibration, quant: GraphQuant, config=None):
    """PT2E-quantize ``module``; return ``(exported_program, notes)`` ready for lowering.

    ``calibration``: list of input tuples in contract order (float32, batch 1); required for
    ``int8_static``, unused by ``int8_dynamic``. ``config`` overrides the scheme's quantizer
    config (tests use it to build a deliberately over-quantized program). ``notes``:
    ``quant_scheme``, ``keep_float``, ``calibration_samples``, ``ops`` (``{"int8": {op: n},
    "fp32": {op: n}}``: every compute node of the quantized graph by the precision it runs in)
    and ``fp32_by_design``.
    """
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    check_graph_quant(module, quant)
    samples = list(calibration or [])
    if quant.scheme == "int8_static" and not samples:
        raise ValueError(
            f"{module.contract.name}: int8_static needs calibration samples (input tuples in contract order)"
        )
    n_in = len(module.contract.inputs)
    for i, s in enumerate(samples):
        if len(s) != n_in:
            raise ValueError(
                f"{module.contract.name}: calibration sample {i} has {len(s)} inputs, expected {n_in}"
            )
    example = tuple(module.example_inputs())
    quantizer = XNNPACKQuantizer().set_global(config or quantization_config(quant.scheme))
    quantizer.set_filter_function(_keep_float_filter(tuple(quant.keep_float)))
    with torch.no_grad():
        gm = torch.export.export(module, example, strict=False).module()
        prepared = prepare_pt2e(gm, quantizer)
        ops = op_precisions(prepared)
        for s in samples:
            prepared(*(torch.as_tensor(t, dtype=torch.float32) for t in s))
        converted = convert_pt2e(prepared)
        program = torch.export.export(converted, example, strict=False)
    notes = {
        "quant_scheme": quant.scheme,
        "keep_float": list(quant.keep_float),
        "calibration_samples": len(samples),
        "ops": ops,
        "fp32_by_design": list(FP32_BY_DESIGN),
    }
    return program, notes


def _base_name(target) -> str:
    """``aten.linear.default`` -> ``linear`` (the op's overload packet name)."""
    packet = getattr(target, "overloadpacket", None)
    name = getattr(packet, "__name__", None) or getattr(target, "__name__", None) or str(target)
    return name.split(".")[-1]


def op_precisions(gm) -> dict:
    """Compute nodes of a ``prepare_pt2e`` graph by precision: ``{"int8": {op: n}, "fp32": {op: n}}``.

    A node runs in int8 when the quantizer annotated it (its inputs and output get int8
    qparams: the ``dq -> op -> q`` pattern after conversion); every other compute node runs in
    fp32 between a dequantize and a quantize. Observers and layout ops are not counted.
    """
    int8: Counter[str] = Counter()
    fp32: Counter[str] = Counter()
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        name = _base_name(node.target)
        if name in _LAYOUT_OPS:
            continue
        annotation = node.meta.get("quantization_annotation")
        (int8 if annotation is not None and annotation._annotated else fp32)[name] += 1
    return {"int8": dict(sorted(int8.items())), "fp32": dict(sorted(fp32.items()))}


# --------------------------------------------------------------------------- recipes (data)

# Elementwise ops kept fp32 in the default int8 recipe (measured: quantizing them costs more than
# it saves; see the recipe reasons).
ELEMENTWISE = ("add", "mul", "cat")
# Prompt-decoder submodules (paths in the export wrapper) the mixed recipe keeps fp32; the same parts
# as exporters/onnx_quant.DECODER_FLOAT_PARTS, where the sensitivity numbers and reasons are.
DECODER_FLOAT_MODULES = (
    "prompt_encoder",
    "mask_decoder.output_upscaling",
    "mask_decoder.output_hypernetworks_mlps",
    *(
        f"mask_decoder.transformer.layers.{i}.{a}"
        for i in (0, 1)
        for a in ("self_attn", "cross_attn_token_to_image", "cross_attn_image_to_token")
    ),
    "mask_decoder.transformer.final_attn_token_to_image",
)
_INT8_WHY = (
    "conv and linear in int8 (weights per output channel, activations per tensor calibrated on the "
    "reference run); add/mul/cat stay fp32: they carry the -1e4 key-mask bias, LayerNorm2d's "
    "arithmetic, the mask scaling and the residual stream, whose ranges int8 per-tensor cannot hold"
)


def _recipe(name: str, precision: str, graphs: dict[str, GraphQuant], description: str) -> Recipe:
    missing = set(GRAPH_NAMES) - set(graphs)
    if missing:
        raise ValueError(f"recipe {name!r} misses graphs {sorted(missing)}")
    return Recipe(name, "executorch", precision, dict(graphs), description)


RECIPES: dict[str, Recipe] = {
    "int8": _recipe(
        "int8",
        "int8",
        {g: GraphQuant("int8_static", ELEMENTWISE, _INT8_WHY) for g in GRAPH_NAMES},
        "PT2E static int8 (XNNPACKQuantizer, per-channel weights) for every conv and linear of the "
        "four graphs; elementwise ops, LayerNorm, softmax and attention matmuls fp32",
    ),
    "mixed": _recipe(
        "mixed",
        "mixed",
        {
            "image_encoder": GraphQuant("int8_static", ELEMENTWISE, _INT8_WHY),
            "prompt_decoder": GraphQuant(
                "int8_static",
                ELEMENTWISE + DECODER_FLOAT_MODULES,
                "the most sensitive graph at the tracker level (int8 alone: 12-frame, 2-object mask IoU vs "
                "fp32 min 0.921 / mean 0.947; per-tensor cosine 0.9992 hides the boundary flips): int8 on "
                "the transformer MLPs, the IoU / object-score heads and the pointer projection; the prompt "
                "encoder, the token/image attentions and the mask-producing layers stay fp32 (the ONNX "
                "decoder sensitivity pass: min 0.967 / mean 0.985 over 40 frames with only the decoder quantized)",
            ),
            "memory_encoder": GraphQuant(
                "fp32",
                (),
                "the most sensitive graph at int8 (held-out worst cosine 0.997, rel max-abs 0.23 on the "
                "memory tokens) and its error is fed back through the memory bank every frame; fp32, not "
                "fp16: XNNPACK's fp16 program ran 2.2x slower than fp32 on an x86 CPU without fp16 "
                "arithmetic, and it is small (7.7 MB)",
            ),
            "memory_attention": GraphQuant(
                "int8_static",
                ELEMENTWISE,
                "measured insensitive (held-out worst cosine 0.9998 on pix) with the -1e4 key-mask bias "
                "kept fp32: int8 as in the int8 recipe",
            ),
        },
        "the int8 recipe with the memory encoder (most sensitive per tensor, feeding the memory bank) "
        "kept at fp32 and the prompt decoder's prompt encoder, attentions and mask-producing layers fp32",
    ),
}
