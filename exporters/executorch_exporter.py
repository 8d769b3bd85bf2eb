"""ExecuTorch plugin: ``torch.export`` -> ``to_edge_transform_and_lower`` (XNNPACK) -> ``.pte``.

* Every float graph is lowered in its XNNPACK form (:func:`~edgetam_export.models.xnnpack_forms.xnnpack_forms`,
  a rewritten copy made of ops the partitioner lowers), so the fp32 programs run entirely inside
  the delegate. ``fp16``: a half copy of that form behind float32 casts
  (:func:`~edgetam_export.models.precision.fp16_compute`); its LayerNorms are the overflow-safe
  fp16 form and its GELUs an exact-erf form (XNNPACK has no fp16 GELU), so no fp32 islands
  remain. The program's inputs and outputs stay float32; those casts, and the casts of 0-dim
  scalar constants, run on portable kernels (XNNPACK does not delegate dtype conversions).
* fp16 size: XNNPACK stores conv weights as fp32 ("static weights", converted at load), so
  conv-heavy graphs (the image encoder) are barely smaller at fp16; linear weights are fp16.
* ``int8`` / ``mixed``: each graph follows its :class:`~.quantization.GraphQuant` (the recipes
  of :mod:`.executorch_quant`): PT2E static (or dynamic) int8 with the ``XNNPACKQuantizer``,
  calibrated on the caller's input tuples, or a float program for graphs a recipe keeps float.
  Inputs and outputs stay float32 (the quantize/dequantize at the boundary are in the program).
  The quantizer sees the reference form of the graph (not the XNNPACK form, whose LayerNorm means
  are linear layers the quantizer would quantize), so int8 programs keep the reference form's
  non-delegated ops.
* Delegate coverage: the report counts the ``call_function`` nodes left outside the XNNPACK
  delegate, by op name, and the edge ops inside the delegated subgraphs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar

from ..models.contracts import ExportModule
from ..models.flop_count import forward_gflop
from ..models.precision import fp16_compute
from ..models.xnnpack_forms import rewritten_types, xnnpack_forms
from .base import Exporter, register_exporter
from .executorch_quant import FLOAT_SCHEMES, RECIPES, check_graph_quant, quantize_module
from .quantization import GraphQuant, Recipe

# Structural nodes that are not compute: calls into the delegate and tuple unpacking.
_STRUCTURAL = {"executorch_call_delegate", "getitem"}


def _op_name(target) -> str:
    name = getattr(target, "__name__", None) or str(target)
    return name


def delegate_coverage(edge_program) -> dict:
    """Count ops inside and outside the XNNPACK delegate of a lowered edge program.

    Returns ``{"delegate_calls", "delegated_ops", "non_delegated_ops", "non_delegated"
    ({op name: count}), "coverage" (delegated / all compute ops)}``.
    """
    gm = edge_program.graph_module
    outside: Counter[str] = Counter()
    calls = 0
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if "executorch_call_delegate" in name:
            calls += 1
        elif name.split(".")[-1] not in _STRUCTURAL and name not in _STRUCTURAL:
            outside[name] += 1
    inside = 0
    for _, sub in gm.named_children():
        original = getattr(sub, "original_module", None)
        if original is None:
            continue
        for node in original.graph_module.graph.nodes:
            if node.op == "call_function" and _op_name(node.target) not in _STRUCTURAL:
                inside += 1
    total = inside + sum(outside.values())
    return {
        "delegate": "XnnpackBackend",
        "delegate_calls": calls,
        "delegated_ops": inside,
        "non_delegated_ops": sum(outside.values()),
        "non_delegated": dict(sorted(outside.items())),
        "coverage": round(inside / total, 4) if total else 1.0,
    }


@register_exporter
class ExecuTorchExporter(Exporter):
    """``.pte`` for the ExecuTorch runtime with the XNNPACK delegate (no options)."""

    name = "executorch"
    suffix = ".pte"
    default_precision = "fp32"
    requirements: ClassVar[dict[str, str]] = {"executorch": "executorch==1.5.1"}
    recipes: ClassVar[dict[str, Recipe]] = RECIPES
    attention_form: ClassVar[str] = (
        "explicit bmm + softmax + bmm inside the XNNPACK delegate: ExecuTorch 1.5.1's XNNPACK backend has "
        "no fused SDPA kernel, and torch's scaled_dot_product_attention lowers to a decomposition that "
        "leaves 12 ops (expand_copy, where, eq, ...) outside the delegate, 4.1x slower on a 4096x1024x64 "
        "attention (38.5 vs 9.4 ms; benchmarks/attention_forms.py, docs/PERFORMANCE.md); the memory attention's cross-attention scores its unrotated keys and "
        "averages its values in the 64-d memory space (XnnMemoryAttentionLayer, 19.6 fewer GFLOP)"
    )

    def __init__(self):
        pass

    def _export(
        self,
        module: ExportModule,
        path: Path,
        precision: str,
        metadata: dict[str, str],
        calibration=None,
        quant: GraphQuant | None = None,
    ) -> dict:
        """Float precisions as before; ``int8``/``mixed``: the graph's :class:`GraphQuant` decides.

        ``quant`` None at a quantized precision takes this plugin's recipe named like the
        precision. A ``GraphQuant`` with scheme ``fp32``/``fp16`` exports that float program (the
        mixed recipe's float graphs); an int8 scheme quantizes with PT2E
        (:func:`~.executorch_quant.quantize_module`) on ``calibration`` (input tuples in contract
        order).
        """
        if precision in ("fp32", "fp16") and quant is None:
            return self._export_float(module, path, precision)
        if quant is None:
            if precision not in self.recipes:
                raise ValueError(f"no executorch recipe for precision {precision!r}")
            quant = self.recipes[precision].graphs[module.contract.name]
        check_graph_quant(module, quant)
        if quant.scheme in FLOAT_SCHEMES:
            notes = self._export_float(module, path, quant.scheme)
        else:
            program, notes = quantize_module(module, calibration, quant)
            notes.update(self._lower(program, path, quantized=True))
            notes["weights_dtype"] = "int8 (conv/linear), float32 (kept-float ops, biases)"
        notes["quant_scheme"] = quant.scheme
        notes.setdefault("keep_float", list(quant.keep_float))
        if quant.why:
            notes["why"] = quant.why
        return notes

    def _lower(self, exported, path: Path, quantized: bool = False) -> dict:
        """``to_edge_transform_and_lower`` with the XnnpackPartitioner, write ``path``; return delegate coverage."""
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        kwargs = {}
        if quantized:
            # Quantize/dequantize ops are not core ATen: ExecuTorch's XNNPACK flow skips the IR check.
            from executorch.backends.xnnpack.utils.configs import get_xnnpack_edge_compile_config

            kwargs["compile_config"] = get_xnnpack_edge_compile_config()
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()], **kwargs)
        notes = delegate_coverage(edge.exported_program())
        program = edge.to_executorch()
        with open(path, "wb") as f:
            program.write_to_file(f)
        return notes

    def _export_float(self, module: ExportModule, path: Path, precision: str) -> dict:
        import torch

        # every op in a form XNNPACK lowers (models/xnnpack_forms.py)
        lowerable = xnnpack_forms(module, half=precision == "fp16")
        # the work of the lowered form (fp32 only: the fp16 program does the same arithmetic)
        gflop = {"gflop": forward_gflop(lowerable)} if precision == "fp32" else {}
        target = fp16_compute(lowerable) if precision == "fp16" else lowerable
        example = tuple(module.example_inputs())
        with torch.no_grad():
            exported = torch.export.export(target, example, strict=False)
        notes = self._lower(exported, path)
        notes["rewrites"] = rewritten_types(lowerable)
        notes.update(gflop)
        notes["weights_dtype"] = "float16" if precision == "fp16" else "float32"
        if precision == "fp16":
            notes["fp32_islands"] = f"{target.fp32_islands} LayerNorm/LayerNorm2d modules kept in fp32"
        if precision == "fp16":
            notes["weights_note"] = (
                "XNNPACK serializes convolution weights as fp32 static weights and packs them to fp16 "
                "at load, so conv-heavy fp16 programs are about as large as fp32 ones"
            )
        return notes
