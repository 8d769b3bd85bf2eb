"""ONNX plugin: ``torch.onnx.export(dynamo=True)`` at opset >= 18, one self-contained file.

* Graph input/output names, shapes and descriptions (``doc_string``) come from the contract.
* Weights live inside the ``.onnx`` file (no external data; our graphs are < 100 MB, far
  below protobuf's 2 GB limit). The result passes ``onnx.checker.check_model(full_check=True)``.
* ``fp16``: a half copy of the module is exported behind float32 casts (see
  :func:`~edgetam_export.models.precision.fp16_compute`): weights and compute are fp16 except
  LayerNorms (fp32 islands, overflow-safe), graph I/O stays float32 so the contract holds. (onnxruntime's ``float16`` converter is not used:
  on dynamo-exported graphs it produces models that fail ``onnx.checker``.)
* ``int8`` / ``mixed``: the float32 graph is exported as above, then quantized per graph by
  the recipe's :class:`~edgetam_export.exporters.quantization.GraphQuant` with
  ``onnxruntime.quantization`` (:mod:`edgetam_export.exporters.onnx_quant`: static QDQ int8 with
  calibration, or dynamic int8); graph I/O stays float32 and the result passes the same checks.
* Every artifact, at every precision, gets a companion ``<graph>.<precision>.ort``: the ORT-format
  model onnxruntime's own converter makes from it (:mod:`edgetam_export.exporters.onnx_ort`;
  style Fixed, the converter's default level), for ORT mobile/minimal builds. Once a bundle's
  ONNX artifacts are all written, :meth:`OnnxExporter.finish_backend` writes
  ``onnx/required_operators.config`` (and ``required_operators_and_types.config``) from all its
  ``.ort`` files, for a reduced-size ORT build.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path
from typing import ClassVar

from torch import nn

from ..models.contracts import Contract, ExportModule
from ..models.flop_count import forward_gflop
from ..models.layers import LayerNorm2d
from ..models.memory_encoder import CXBlock
from ..models.precision import fp16_compute
from ..models.xnnpack_forms import rewritten_types, xnnpack_forms
from .base import Exporter, register_exporter
from .onnx_mobile import mobile_usability
from .onnx_ort import convert_to_ort, write_operator_configs
from .onnx_quant import RECIPES, output_accuracy, quantize_onnx
from .quantization import GraphQuant, Recipe

# Module types the ONNX mobile forms leave in their reference form (measured, ORT 1.32 CPU EP):
# LayerNorms, because ORT fuses LayerNormalization and the rewrite would decompose it; the
# ConvNeXt block, because ORT's depthwise 7x7 kernel takes 2.2 ms at 256x64x64 where the
# XNNPACK form's nine shifted 3x3 convolutions take 45.6 ms.
MOBILE_FORMS_KEEP = (nn.LayerNorm, LayerNorm2d, CXBlock)

_ONNX_DTYPES = {"float32": 1, "uint8": 2, "int32": 6, "float16": 10}


def check_onnx_against_contract(model_proto, contract: Contract, io_dtype: str = "float32") -> None:
    """Raise ``ValueError`` unless the graph's inputs/outputs match ``contract`` by name, shape and dtype."""
    problems = []
    for kind, values in (("input", model_proto.graph.input), ("output", model_proto.graph.output)):
        dims = [
            tuple(
                d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim
            )
            for v in values
        ]
        found = contract.mismatches(kind, [v.name for v in values], dims)
        problems += found
        if not found:
            problems += [
                f"{kind} {v.name!r}: elem_type {v.type.tensor_type.elem_type} != {io_dtype}"
                for v in values
                if v.type.tensor_type.elem_type != _ONNX_DTYPES[io_dtype]
            ]
    if problems:
        raise ValueError(f"ONNX graph {contract.name!r} does not match its contract: " + "; ".join(problems))


# Per-node metadata of the dynamo exporter that a shipped artifact does not need: the Python
# stack trace (absolute source paths of the exporting machine) and the FX node text; ~0.9 MB
# over the four graphs. Name scopes and class hierarchy stay (profiling and the quantization
# recipes' "name:" rules use them).
_DEBUG_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")


@register_exporter
class OnnxExporter(Exporter):
    """``.onnx`` via the dynamo exporter, with its ``.ort`` companion.

    Options: ``opset`` (>= 18, default 18), ``optimize`` (run the exporter's graph
    optimizer, default True), ``mobile_forms`` (default True: export the rewritten copies of
    :func:`~edgetam_export.models.xnnpack_forms.xnnpack_forms` without comparisons, ``where``,
    ``expand`` and leading ``unsqueeze``, so ORT's mobile execution providers are not split by
    them; LayerNorms stay ``LayerNormalization``, which ONNX Runtime fuses).
    """

    name = "onnx"
    suffix = ".onnx"
    companions: ClassVar[dict[str, str]] = {"ort": ".ort"}
    default_precision = "fp32"
    requirements: ClassVar[dict[str, str]] = {"onnx": "onnx>=1.17", "onnxscript": "onnxscript>=0.2"}
    recipes: ClassVar[dict[str, Recipe]] = RECIPES
    attention_form: ClassVar[str] = (
        "explicit MatMul + Softmax + MatMul, which ONNX Runtime rewrites to FusedMatMul + Softmax + MatMul: "
        "its fused com.microsoft.MultiHeadAttention (CPU EP) measured 0.79x as fast on the unmasked "
        "4096x4096x256 self-attention and 0.57x on the masked cross-attention (its bias must be expanded to "
        "(Nq, Nk)), the opset-23 Attention 0.47-0.49x (benchmarks/attention_forms.py); neither is on the NNAPI / Core ML / XNNPACK execution providers' operator lists, so a fused "
        "node would split the graph on phones (docs/PERFORMANCE.md); with mobile_forms the memory "
        "attention's cross-attention scores its unrotated keys and averages its values in the 64-d memory "
        "space (XnnMemoryAttentionLayer, 19.6 fewer GFLOP)"
    )

    def __init__(self, opset: int = 18, optimize: bool = True, mobile_forms: bool = True):
        if int(opset) < 18:
            raise ValueError(f"opset must be >= 18, got {opset}")
        self.opset = int(opset)
        self.optimize = bool(optimize)
        self.mobile_forms = bool(mobile_forms)

    def options(self) -> dict:
        return {"opset": self.opset, "optimize": self.optimize, "mobile_forms": self.mobile_forms}

    def _export(
        self,
        module: ExportModule,
        path: Path,
        precision: str,
        metadata: dict[str, str],
        *,
        calibration: list[tuple] | None = None,
        quant: GraphQuant | None = None,
    ) -> dict:
        notes = self._export_onnx(module, path, precision, metadata, calibration=calibration, quant=quant)
        notes["ort"] = convert_to_ort(path, self.companion_path(path, "ort"))
        return notes

    def finish_backend(self, root: Path, artifacts: list[dict]) -> dict:
        """Give kept artifacts of an older bundle their ``.ort`` companion, then write the bundle's
        reduced-build operator configs from every ``.ort`` file; returns ``{"reduced_build":
        {"required_operators", "required_operators_and_types", "models"}}`` (bundle paths)."""
        for a in artifacts:
            if "ort" not in a.get("companions", {}):
                rel = self.companion_path(a["path"], "ort").as_posix()
                try:
                    notes = convert_to_ort(root / a["path"], root / rel)
                except RuntimeError as e:
                    raise RuntimeError(f"{a['path']} (kept from the previous bundle): {e}") from e
                a.setdefault("notes", {})["ort"] = notes
                a["companions"] = {**a.get("companions", {}), "ort": rel}
        ort_files = sorted(a["companions"]["ort"] for a in artifacts)
        configs = write_operator_configs(root, ort_files, self.name)
        return {"reduced_build": {**configs, "models": ort_files}}

    def _export_onnx(
        self,
        module: ExportModule,
        path: Path,
        precision: str,
        metadata: dict[str, str],
        *,
        calibration: list[tuple] | None = None,
        quant: GraphQuant | None = None,
    ) -> dict:
        """The ``.onnx`` artifact alone (float, or quantized by ``quant``); returns its notes."""
        import onnx

        contract = module.contract
        if quant is None:
            return self._export_float(module, path, precision, metadata)
        float_precision = quant.scheme if quant.is_float else "fp32"
        meta = {**metadata, "quant_scheme": quant.scheme}
        if quant.is_float:  # a graph the recipe keeps float: the same code path as fp32/fp16
            notes = self._export_float(module, path, float_precision, meta, label=precision)
            return {**notes, "quant_scheme": quant.scheme, "kept_float": "whole graph"}
        fp = path.parent / f"{path.stem}.float.onnx"
        try:
            self._export_float(module, fp, "fp32", meta, label=precision)
            qnotes = quantize_onnx(fp, path, quant, list(calibration or []), contract.input_names)
            proto = onnx.load(str(path))
            self._finish(proto, contract, meta, precision)
            onnx.save_model(proto, str(path), save_as_external_data=False)
            accuracy = (
                output_accuracy(fp, path, contract.input_names, contract.output_names, calibration[-1])
                if calibration
                else None
            )
        finally:
            fp.unlink(missing_ok=True)
        ops = Counter(n.op_type for n in proto.graph.node)
        return {
            "opset": self.opset,
            "nodes": sum(ops.values()),
            "initializers": len(proto.graph.initializer),
            "weights_dtype": "int8",
            **qnotes,
            **({"accuracy": accuracy} if accuracy else {}),
        }

    def _finish(self, proto, contract: Contract, metadata: dict[str, str], precision: str) -> None:
        """Contract docs + metadata on ``proto``, then the contract and ``onnx.checker`` checks."""
        import onnx

        docs = {s.name: s.description for s in (*contract.inputs, *contract.outputs)}
        for v in (*proto.graph.input, *proto.graph.output):
            v.doc_string = docs.get(v.name, "")
        proto.doc_string = contract.description
        proto.producer_name = "edgetam-export"
        del proto.metadata_props[:]
        for node in proto.graph.node:  # exporter debug info: source paths of this machine
            keep = [p for p in node.metadata_props if p.key not in _DEBUG_METADATA]
            if len(keep) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(keep)
        for k, v in sorted({**metadata, "graph": contract.name, "precision": precision}.items()):
            entry = proto.metadata_props.add()
            entry.key, entry.value = str(k), str(v)
        external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        if external:
            raise ValueError(f"initializers stored as external data: {external[:5]}")
        check_onnx_against_contract(proto, contract)
        onnx.checker.check_model(proto, full_check=True)

    def _export_float(
        self,
        module: ExportModule,
        path: Path,
        precision: str,
        metadata: dict[str, str],
        label: str | None = None,
    ) -> dict:
        """The dynamo export at ``precision`` (fp32/fp16) to ``path``; ``label`` is the recorded precision."""
        import onnx
        import torch

        contract = module.contract
        form = xnnpack_forms(module, keep=MOBILE_FORMS_KEEP) if self.mobile_forms else module
        target = fp16_compute(form) if precision == "fp16" else form
        example = tuple(module.example_inputs())
        log = io.StringIO()
        # The dynamo exporter prints its progress to stdout; keep it out of the CLI's progress bar.
        with contextlib.redirect_stdout(log), torch.no_grad():
            program = torch.onnx.export(
                target,
                example,
                dynamo=True,
                opset_version=self.opset,
                input_names=contract.input_names,
                output_names=contract.output_names,
                external_data=False,
                optimize=self.optimize,
                verbose=False,
            )
        proto = program.model_proto
        self._finish(proto, contract, metadata, label or precision)
        onnx.save_model(proto, str(path), save_as_external_data=False)
        mobile = mobile_usability(path)  # partitions per mobile execution provider (onnx_mobile.py)
        ops = Counter(n.op_type for n in proto.graph.node)
        return {
            "opset": self.opset,
            "nodes": sum(ops.values()),
            "op_types": dict(sorted(ops.items())),
            "initializers": len(proto.graph.initializer),
            "weights_dtype": "float16" if precision == "fp16" else "float32",
            "mobile": mobile,
            "rewrites": rewritten_types(form),
            # the work of the exported form (fp32 only: fp16 does the same arithmetic)
            **({"gflop": forward_gflop(form)} if precision == "fp32" else {}),
            **(
                {"fp32_islands": f"{target.fp32_islands} LayerNorm/LayerNorm2d modules kept in fp32"}
                if precision == "fp16"
                else {}
            ),
        }
