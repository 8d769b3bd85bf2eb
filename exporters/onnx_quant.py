"""ONNX quantization: the ONNX recipes (data) and quantizing one float ``.onnx`` with ``onnxruntime.quantization``.

Pipeline for one graph: the float32 model from the dynamo exporter ->
``quant_pre_process`` (shape inference; ORT's graph optimisation is skipped because its
constant folding would re-materialise the factored position tables, 12 MB of float32 that the
float export keeps as 128 KB factors; ORT runs the same optimisations in memory when it loads
the quantized model) -> either

* ``int8_static``: ``quantize_static`` in QDQ format, per-channel symmetric int8 weights, uint8
  activations (the CPU-EP recommendation on x86 with VNNI: U8S8, no reduced range), MinMax
  ranges from a ``CalibrationDataReader`` fed with the captured calibration tuples;
* ``int8_dynamic``: ``quantize_dynamic``: int8 weights (per channel), activations quantized at
  run time per tensor (no calibration);

Nodes named by the recipe's ``keep_float`` stay float (see :func:`nodes_to_exclude`). Graph
inputs and outputs stay float32 with the contract's names and shapes (checked).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from ..models.constants import GRAPH_NAMES
from .quantization import GraphQuant, Recipe

# Op types whose weights/activations the static and dynamic recipes quantize: the compute-heavy
# ops with weights. Elementwise ops (Add, Mul, ...) stay float: QDQ pairs around them add
# requantisation error and cost time on the CPU EP without saving any weight bytes.
QUANT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# keep_float tokens (besides ONNX op types, which exclude every node of that type, and
# "name:<substring>", which excludes nodes whose name or torch scope contains it):
ATTENTION_MATMUL = "attention_matmul"  # MatMul with no weight input: QK^T and attn.V
ALWAYS_FLOAT = ("Softmax", "LayerNormalization")

_WHY_FLOAT_OPS = (
    "Softmax and LayerNorm stay float: their outputs span many orders of magnitude (softmax) or "
    "normalise by a data-dependent variance, and a uint8 grid there moves every following token"
)
_WHY_ATTN = (
    "attention matmuls (QK^T, attn.V: two activations, no weights) stay float: QK^T logits feed "
    "the softmax, whose exponent amplifies their rounding, and quantizing them saves no bytes"
)


def _static(why: str, extra: tuple[str, ...] = ()) -> GraphQuant:
    return GraphQuant("int8_static", (*ALWAYS_FLOAT, ATTENTION_MATMUL, *extra), why)


_INT8 = Recipe(
    name="int8",
    backend="onnx",
    precision="int8",
    graphs={
        g: _static(
            f"static QDQ int8 on every Conv/ConvTranspose/MatMul/Gemm weight and input; {_WHY_FLOAT_OPS}; {_WHY_ATTN}."
        )
        for g in GRAPH_NAMES
    },
    description=(
        "every graph static QDQ int8 (per-channel weights, U8 activations, MinMax calibration) "
        "on Conv/ConvTranspose/MatMul/Gemm; softmax, layer norm and attention matmuls float"
    ),
)

_DYNAMIC = Recipe(
    name="int8_dynamic",
    backend="onnx",
    precision="int8",
    graphs={
        g: GraphQuant(
            "int8_dynamic",
            (*ALWAYS_FLOAT, ATTENTION_MATMUL),
            "dynamic int8 on MatMul/Gemm: weights int8 per channel, activations quantized per call "
            "at run time (no calibration data, no activation-range risk); convolutions stay float32.",
        )
        for g in GRAPH_NAMES
    },
    description=(
        "every graph dynamic int8 on MatMul/Gemm (weights int8, activation ranges computed at run "
        "time); convolutions float32"
    ),
)

# Prompt-decoder parts kept float in the mixed recipe (ONNX scope names, matched by "name:"), from
# the decoder sensitivity pass (benchmarks/quant_sensitivity.py; 40-frame, 2-object scenario,
# synthetic weights, only the decoder quantized, IoU vs the fp32 tracker): the whole decoder int8
# (5.2 MB) gave min 0.863 / mean 0.944; with these parts float (10.5 MB) min 0.967 / mean 0.985.
# The heads (IoU, object score, pointer) and the two-way transformer's MLPs quantize without a
# measurable cost.
DECODER_FLOAT_PARTS = (
    # the point encoding: phi = 2*pi*(2u-1)G then sin/cos; an int8 step in u or G moves the phase by
    # up to 2*pi*|G|*step, i.e. the click's position; (2, 128) weights, nothing to save
    "name:pe_layer",
    # mask downscaling of the mask prompt (the bank's previous mask on refinement frames)
    "name:prompt_encoder",
    # the upscaler and the hypernetwork MLPs produce the mask logits directly (their dot product):
    # int8 there moves the mask boundary on every frame
    "name:mask_decoder.output_upscaling",
    "name:mask_decoder.output_hypernetworks_mlps",
    # the token/image attention projections: the clicked token's query/key products decide which
    # image tokens the mask tokens read
    "name:self_attn",
    "name:cross_attn",
    "name:final_attn_token_to_image",
)

# The mixed recipe is the sensitivity pass's result (benchmarks/quant_sensitivity.py, synthetic
# weights, one graph int8 and the others fp32, IoU vs the fp32 tracker over 40 frames): the prompt
# decoder is the most sensitive graph (alone min 0.863 / mean 0.944) and keeps the parts above float.
_MIXED = Recipe(
    name="mixed",
    backend="onnx",
    precision="mixed",
    graphs={
        "image_encoder": _static(
            "holds most weights after the decoder; quantized alone it kept mask IoU >= 0.950 (mean "
            "0.969) over 40 frames in the sensitivity pass, and no single part (stem, stages, neck) "
            "costs more than 0.02 mean IoU alone, so it is quantized whole."
        ),
        "memory_encoder": _static(
            "small conv stack on a x20-scaled mask; static int8, cosine 0.9995 per graph."
        ),
        "memory_attention": _static(
            "linear projections int8; attention matmuls and softmax float, as in int8 (cosine 0.9998 per graph)."
        ),
        "prompt_decoder": _static(
            "the most sensitive graph (whole-decoder int8: min IoU 0.863 over 40 frames): static int8 "
            "on the transformer MLPs and the IoU / object-score heads; the point encoding, mask "
            "downscaling, token/image attention projections, upscaler and hypernetwork MLPs stay "
            "float32 (min 0.967 / mean 0.985 with only the decoder quantized).",
            DECODER_FLOAT_PARTS,
        ),
    },
    description=(
        "image encoder, memory encoder and memory attention static int8; prompt decoder static int8 "
        "except its point encoding, attention projections and mask-producing layers (float32)"
    ),
)

# Deliberately over-quantized (diagnostic, not for deployment): every op ORT can quantize, nothing
# kept float. It shows what the exclusions buy; the tests use it as verify's failing case.
_FULL = Recipe(
    name="int8_full",
    backend="onnx",
    precision="int8",
    graphs={
        g: GraphQuant(
            "int8_static_all",
            (),
            "diagnostic: softmax, layer norm, attention matmuls and elementwise ops quantized too "
            "(nothing kept float), to measure what the int8 recipe's exclusions buy.",
        )
        for g in GRAPH_NAMES
    },
    description="over-quantized diagnostic: every quantizable op of every graph static int8, nothing float",
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (_INT8, _MIXED, _DYNAMIC, _FULL)}


def nodes_to_exclude(model, keep_float: tuple[str, ...]) -> list[str]:
    """Names of the nodes of ``model`` (an ``onnx.ModelProto``) that ``keep_float`` keeps float.

    Tokens: an ONNX op type (``"Softmax"``) excludes every node of that type;
    :data:`ATTENTION_MATMUL` excludes MatMuls none of whose inputs is an initializer (or a
    constant); ``"name:<s>"`` excludes nodes whose name or ``pkg.torch.onnx.name_scopes``
    metadata contains ``<s>``.
    """
    consts = {t.name for t in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    # a weight may reach a MatMul through a Transpose/Cast of an initializer
    for n in model.graph.node:
        if n.op_type in ("Transpose", "Cast", "Reshape", "Identity") and n.input and n.input[0] in consts:
            consts |= set(n.output)
    op_types = {t for t in keep_float if ":" not in t and t != ATTENTION_MATMUL}
    names = [t.split(":", 1)[1] for t in keep_float if t.startswith("name:")]
    out = []
    for n in model.graph.node:
        scope = " ".join(p.value for p in n.metadata_props if "scope" in p.key or p.key.endswith("name"))
        if (
            n.op_type in op_types
            or (ATTENTION_MATMUL in keep_float and n.op_type == "MatMul" and not set(n.input) & consts)
            or any(s in n.name or s in scope for s in names)
        ):
            out.append(n.name)
    return out


def fold_weight_transposes(model) -> int:
    """Replace every ``Transpose`` of an initializer by the transposed initializer, in place; return how many.

    The one constant folding the quantizer needs (a MatMul weight reached through a Transpose
    would otherwise be quantized like an activation: per tensor, uint8), done without ORT's
    optimizer, which would also fold the factored position tables back into full tables.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    uses = Counter(i for n in model.graph.node for i in n.input)
    folded = 0
    for node in list(model.graph.node):
        if node.op_type != "Transpose" or node.input[0] not in inits:
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        w = numpy_helper.to_array(inits[node.input[0]])
        t = numpy_helper.from_array(np.ascontiguousarray(np.transpose(w, perm)), node.output[0])
        model.graph.initializer.append(t)
        model.graph.node.remove(node)
        uses[node.input[0]] -= 1
        if uses[node.input[0]] == 0:
            model.graph.initializer.remove(inits[node.input[0]])
        folded += 1
    return folded


class _Reader:
    """``CalibrationDataReader`` over captured tuples: one ``{input name: float32 array}`` per call."""

    def __init__(self, input_names: list[str], samples: list[tuple]):
        self.feeds = [
            {
                n: np.ascontiguousarray(_numpy(x), dtype=np.float32)
                for n, x in zip(input_names, s, strict=True)
            }
            for s in samples
        ]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.feeds):
            return None
        self.i += 1
        return self.feeds[self.i - 1]

    def rewind(self) -> None:
        self.i = 0


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _reader_class():
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(_Reader, CalibrationDataReader):
        pass

    return Reader


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime.quantization logs per-tensor warnings on the root logger (e.g. per-channel axis
    notes for rank-1 LayerNorm weights); keep them out of the CLI's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx(
    float_path: Path, out_path: Path, quant: GraphQuant, calibration: list[tuple], input_names
) -> dict:
    """Quantize the float32 model at ``float_path`` into ``out_path`` per ``quant``; return notes.

    ``calibration``: input tuples in contract order (needed by ``int8_static``). Notes:
    ``quant_scheme``, ``kept_float`` (count per op type of the excluded nodes),
    ``quantized_nodes`` (count per op type of the nodes now fed by DequantizeLinear or replaced
    by integer ops), ``calibration_samples``.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="onnxq-", dir=out_path.parent) as td, _quiet_root_logger():
        pre = Path(td) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre), skip_optimization=True, skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        if fold_weight_transposes(model):
            onnx.save(model, str(pre))
        # Scopes ("name:" rules) live in the exporter's node metadata, which ORT's optimizer
        # drops: match them on the float model too (unfused nodes keep their names).
        float_model = onnx.load(str(float_path))
        exclude = sorted(
            set(nodes_to_exclude(model, quant.keep_float))
            | set(nodes_to_exclude(float_model, quant.keep_float))
        )
        unmatched = [
            r
            for r in quant.keep_float
            if r.startswith("name:") and not any(nodes_to_exclude(m, (r,)) for m in (model, float_model))
        ]
        if unmatched:
            raise ValueError(
                f"keep_float rules {unmatched} name no node of {float_path.name}: the recipe is out of "
                "date with the exported graph (fix the rule in exporters/onnx_quant.py)"
            )
        kept = Counter(n.op_type for n in model.graph.node if n.name in set(exclude))
        if quant.scheme in ("int8_static", "int8_static_all"):
            if not calibration:
                raise ValueError("int8_static needs calibration samples (none were captured for this graph)")
            quantize_static(
                str(pre),
                str(out_path),
                _reader_class()(list(input_names), calibration),
                quant_format=QuantFormat.QDQ,
                # int8_static_all: every op type ORT can quantize (softmax, add, mul, ... too)
                op_types_to_quantize=list(QUANT_OPS) if quant.scheme == "int8_static" else None,
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={
                    "ActivationSymmetric": False,
                    "WeightSymmetric": True,
                },
            )
        elif quant.scheme == "int8_dynamic":
            quantize_dynamic(
                str(pre),
                str(out_path),
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                reduce_range=False,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
            )
        else:
            raise ValueError(
                f"unknown ONNX quant scheme {quant.scheme!r}; known: int8_static, int8_static_all, int8_dynamic, fp32, fp16"
            )
    q = onnx.load(str(out_path))
    ops = Counter(n.op_type for n in q.graph.node)
    return {
        "quant_scheme": quant.scheme,
        "kept_float": dict(sorted(kept.items())),
        "kept_float_rules": list(quant.keep_float),
        "quant_ops": {k: v for k, v in sorted(ops.items()) if "Quant" in k or "Integer" in k},
        "calibration_samples": len(calibration),
    }


def output_accuracy(float_path: Path, quant_path: Path, input_names, output_names, sample: tuple) -> dict:
    """Worst output's cosine and max-abs / max|ref| of ``quant_path`` vs ``float_path`` on one sample (ORT CPU)."""
    import onnxruntime as ort

    feeds = {
        n: np.ascontiguousarray(_numpy(x), dtype=np.float32) for n, x in zip(input_names, sample, strict=True)
    }
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ref = ort.InferenceSession(str(float_path), so, providers=["CPUExecutionProvider"]).run(
        list(output_names), feeds
    )
    got = ort.InferenceSession(str(quant_path), so, providers=["CPUExecutionProvider"]).run(
        list(output_names), feeds
    )
    worst = {"cosine": 1.0, "rel_max_abs": 0.0}
    for r, g in zip(ref, got, strict=True):
        r, g = r.astype(np.float64).ravel(), g.astype(np.float64).ravel()
        nr, ng = np.linalg.norm(r), np.linalg.norm(g)
        cos = 1.0 if nr == ng == 0 else float(r @ g / (nr * ng)) if nr and ng else 0.0
        rel = float(np.max(np.abs(r - g)) / (np.max(np.abs(r)) or 1.0))
        worst = {"cosine": min(worst["cosine"], cos), "rel_max_abs": max(worst["rel_max_abs"], rel)}
    return worst
