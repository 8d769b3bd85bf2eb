"""Core ML plugin: an ML Program ``.mlpackage`` via coremltools 9.

* Conversion source: ``torch.export`` (ATen dialect after ``run_decompositions({})``), the
  path validated with torch 2.13; ``method="auto"`` falls back to ``torch.jit.trace`` if the
  exported program does not convert (the report's notes say which path was used).
* ``fp16`` (default) converts with ``compute_precision=FLOAT16`` (fp16 weights and
  activations); ``fp32`` with ``FLOAT32``. Inputs and outputs are float32 at both precisions,
  named and shaped by the contract.
* Deployment target ``iOS17`` (default) or ``iOS18``; ``compute_units`` (``all``,
  ``cpu_only``, ``cpu_and_gpu``, ``cpu_and_ne``) is a load-time setting in Core ML, so it is
  recorded in the model's metadata (``com.edgetam.compute_units``) for the app to use.
* Metadata: author, license, version, short description, one description per input and
  output from the contract, plus user-defined metadata (graph, precision, contract JSON and
  whatever the caller passes, e.g. the weights' provenance).
* ``int8`` / ``mixed`` (quantized): the graph is converted at fp16, then compressed with
  ``coremltools.optimize`` per the graph's ``GraphQuant`` (schemes and recipes in
  :mod:`~edgetam_export.exporters.coreml_quant`: int8 weights, k-means palettization, W8A8);
  a ``GraphQuant`` scheme ``"fp16"``/``"fp32"`` exports that float precision unchanged.
* Core ML prediction needs macOS; on Linux the model is converted and saved without loading.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import ClassVar

from .. import __version__
from ..backends import COREML_COMPUTE_UNITS
from ..models.contracts import ExportModule
from .base import Exporter, register_exporter
from .coreml_quant import FLOAT_SCHEMES, RECIPES, compress_mlmodel
from .quantization import GraphQuant, Recipe

TARGETS = ("iOS17", "iOS18")
METHODS = ("auto", "export", "trace")
AUTHOR = "edgetam-export"
LICENSE = "Apache-2.0 (code); model weights under their own license (EdgeTAM: Apache-2.0)"


def mlprogram_ops(spec) -> Counter:
    """Count MIL operation types in the main function of an ML Program spec."""
    ops: Counter[str] = Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                ops[op.type] += 1
    return ops


def mlprogram_weight_dtypes(spec) -> Counter:
    """Count the element types of the ``const`` tensors (weights) with >= 16 elements in an ML Program."""
    from coremltools.proto import MIL_pb2

    names = {v: k for k, v in MIL_pb2.DataType.items()}
    dtypes: Counter[str] = Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                if op.type != "const":
                    continue
                for out in op.outputs:
                    tt = out.type.tensorType
                    n = 1
                    for d in tt.dimensions:
                        n *= d.constant.size
                    if tt.rank >= 1 and n >= 16:
                        dtypes[names.get(tt.dataType, str(tt.dataType))] += 1
    return dtypes


@register_exporter
class CoreMLExporter(Exporter):
    """``.mlpackage`` ML Program.

    Options: ``target`` (``"iOS17"`` | ``"iOS18"``), ``compute_units`` (``"all"`` |
    ``"cpu_only"`` | ``"cpu_and_gpu"`` | ``"cpu_and_ne"``), ``method`` (``"auto"`` |
    ``"export"`` | ``"trace"``).
    """

    name = "coreml"
    suffix = ".mlpackage"
    default_precision = "fp16"
    requirements: ClassVar[dict[str, str]] = {"coremltools": "coremltools==9.0"}
    recipes: ClassVar[dict[str, Recipe]] = RECIPES
    attention_form: ClassVar[str] = (
        "explicit matmul + softmax + matmul in MIL: Core ML's fused scaled_dot_product_attention (iOS 18) "
        "is not used because its speed cannot be measured here (no Apple device) and the form is kept "
        "that the MIL evaluator proves equal (docs/PERFORMANCE.md)"
    )

    def __init__(self, target: str = "iOS17", compute_units: str = "all", method: str = "auto"):
        if target not in TARGETS:
            raise ValueError(f"Core ML target must be one of {TARGETS}, got {target!r}")
        if compute_units not in COREML_COMPUTE_UNITS:
            raise ValueError(
                f"compute_units must be one of {sorted(COREML_COMPUTE_UNITS)}, got {compute_units!r}"
            )
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.target, self.compute_units, self.method = target, compute_units, method

    def options(self) -> dict:
        return {"target": self.target, "compute_units": self.compute_units, "method": self.method}

    def _convert(self, module: ExportModule, precision: str, method: str):
        import coremltools as ct
        import numpy as np
        import torch

        contract = module.contract
        example = tuple(module.example_inputs())
        common = dict(
            outputs=[ct.TensorType(name=s.name, dtype=np.float32) for s in contract.outputs],
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, self.target),
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            compute_units=getattr(ct.ComputeUnit, COREML_COMPUTE_UNITS[self.compute_units]),
            skip_model_load=True,
        )
        with torch.no_grad():
            if method == "export":
                program = torch.export.export(module, example, strict=False).run_decompositions({})
                return ct.convert(program, **common)
            traced = torch.jit.trace(module, example, check_trace=False, strict=False)
            inputs = [ct.TensorType(name=s.name, shape=s.shape, dtype=np.float32) for s in contract.inputs]
            return ct.convert(traced, inputs=inputs, **common)

    def _export(
        self,
        module: ExportModule,
        path: Path,
        precision: str,
        metadata: dict[str, str],
        calibration: list | None = None,
        quant: GraphQuant | None = None,
    ) -> dict:
        """Convert (and, for quantized precisions, compress) ``module``; save the package at ``path``.

        ``calibration``: inputs of this graph in contract order (float32 tensors), used by the
        ``w8a8`` scheme only. ``quant``: this graph's ``GraphQuant`` (quantized precisions; None
        takes the graph's entry of the recipe named like ``precision``).
        """
        import coremltools as ct

        contract = module.contract
        notes: dict = {}
        if precision in FLOAT_SCHEMES:
            compute = precision
        else:
            if quant is None:
                quant = self.recipes[precision].graphs[contract.name]
            compute = "fp32" if quant.scheme == "fp32" else "fp16"
        methods = ["export", "trace"] if self.method == "auto" else [self.method]
        log = io.StringIO()
        mlmodel, errors = None, []
        for method in methods:
            try:
                # coremltools reports progress on stderr (tqdm); keep it out of the CLI's output.
                with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
                    mlmodel = self._convert(module, compute, method)
                notes["conversion"] = "torch.export" if method == "export" else "torch.jit.trace"
                break
            except Exception as e:
                errors.append(f"{method}: {type(e).__name__}: {e}")
        if mlmodel is None:
            raise RuntimeError("Core ML conversion failed: " + " | ".join(errors))
        if errors:
            notes["fallback_reason"] = errors[0][:500]

        spec = mlmodel.get_spec()
        # torch.export names inputs after forward()'s parameters: rename them to the contract.
        got_inputs = [f.name for f in spec.description.input]
        if len(got_inputs) != len(contract.inputs):
            raise ValueError(f"converted model has inputs {got_inputs}, contract has {contract.input_names}")
        renamed = False
        for old, new in zip(got_inputs, contract.input_names, strict=True):
            if old != new:
                ct.utils.rename_feature(spec, old, new, rename_outputs=False)
                renamed = True
        if renamed:
            mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
        self._check_io(mlmodel.get_spec(), contract)
        if quant is not None:
            samples = [
                {
                    n: x.detach().cpu().numpy().astype("float32")
                    for n, x in zip(contract.input_names, s, strict=True)
                }
                for s in calibration or []
            ]
            mlmodel, qnotes = compress_mlmodel(mlmodel, quant, samples)
            notes.update(qnotes)
            self._check_io(mlmodel.get_spec(), contract)

        mlmodel.author = AUTHOR
        mlmodel.license = LICENSE
        mlmodel.version = __version__
        weights = metadata.get("weights", "")
        kind = f"{compute} compute" if quant is None else f"{quant.scheme} quantization, {compute} compute"
        mlmodel.short_description = (
            f"EdgeTAM {contract.name}: {contract.description} "
            f"({kind}, float32 I/O{', weights: ' + weights if weights else ''})"
        )
        for s in contract.inputs:
            mlmodel.input_description[s.name] = f"{s.description} shape {list(s.shape)} {s.dtype}"
        for s in contract.outputs:
            mlmodel.output_description[s.name] = f"{s.description} shape {list(s.shape)} {s.dtype}"
        user = {
            **{str(k): str(v) for k, v in metadata.items()},
            "com.edgetam.graph": contract.name,
            "com.edgetam.precision": precision,
            **({"com.edgetam.quant_scheme": quant.scheme} if quant is not None else {}),
            "com.edgetam.compute_units": self.compute_units,
            "com.edgetam.target": self.target,
            "com.edgetam.contract": json.dumps(contract.as_dict(), sort_keys=True),
        }
        for k, v in user.items():
            mlmodel.user_defined_metadata[k] = v
        mlmodel.save(str(path))

        saved = ct.utils.load_spec(str(path))
        ops = mlprogram_ops(saved)
        notes.update(
            {
                "target": self.target,
                "compute_units": self.compute_units,
                "mil_ops": sum(ops.values()),
                "weights_dtype": dict(mlprogram_weight_dtypes(saved)),
                "spec_version": saved.specificationVersion,
            }
        )
        if quant is not None:
            notes["compression_ops"] = {
                t: n
                for t, n in sorted(ops.items())
                if t.startswith("constexpr_") or t in ("quantize", "dequantize")
            }
        return notes

    @staticmethod
    def _check_io(spec, contract) -> None:
        from coremltools.proto import FeatureTypes_pb2

        fp32 = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
        problems = []
        for kind, feats in (("input", spec.description.input), ("output", spec.description.output)):
            shapes = [tuple(f.type.multiArrayType.shape) or None for f in feats]
            found = contract.mismatches(kind, [f.name for f in feats], shapes)
            problems += found
            if not found:
                problems += [
                    f"{kind} {f.name!r}: dtype is not FLOAT32"
                    for f in feats
                    if f.type.multiArrayType.dataType != fp32
                ]
        if problems:
            raise ValueError(
                f"Core ML model {contract.name!r} does not match its contract: " + "; ".join(problems)
            )
