"""ONNX Runtime mobile readiness of one ``.onnx`` file, from onnxruntime's own mobile helpers.

:func:`mobile_usability` runs the checks behind ``python -m
onnxruntime.tools.check_onnx_model_mobile_usability``: the model is optimized at ORT's BASIC
level (as the checker and the ``.ort`` converter do), shapes are inferred, and each mobile
execution provider's supported-operator table predicts how the graph is split. The result,
per provider, is the number of partitions, the nodes it can take, the operators it cannot,
and the checker's verdict (YES / MAYBE / NO).

The checker has tables for NNAPI and Core ML (NeuralNetwork and MLProgram) only; it has none
for XNNPACK, and the pip ``onnxruntime`` build ships no ``XnnpackExecutionProvider`` to place
nodes with. XNNPACK placement is therefore *predicted*, not checked: ``onnx_xnnpack.py`` applies
the XNNPACK EP's own placement rules (read from onnxruntime's source) to the same BASIC-optimized,
shape-inferred model, and reports supported nodes and the share of GEMM/conv FLOPs on XNNPACK.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .onnx_xnnpack import xnnpack_placement


def _summary(info) -> dict:
    return {
        "partitions": int(info.num_partitions),
        "supported_nodes": int(info.num_supported_nodes),
        "nodes": int(info.num_nodes),
        "partition_sizes": [len(g) for g in info.supported_groups],
        "unsupported_ops": sorted(info.unsupported_ops),
        "ops_with_unsupported_rank": sorted(info.ops_with_unsupported_rank),
        "suitability": info.suitability().name,
    }


def mobile_usability(path: str | Path) -> dict:
    """``{"NNAPI" | "CoreML_NeuralNetwork" | "CoreML_MLProgram": {partitions, supported_nodes, nodes,
    partition_sizes, unsupported_ops, ops_with_unsupported_rank, suitability}, "XNNPACK": prediction}``
    for the ONNX model at ``path`` (after ORT BASIC optimization, fixed input shapes), the
    XNNPACK entry being :func:`onnx_xnnpack.xnnpack_placement` (predicted from the EP's source,
    not run); ``{"not_checked": reason}`` without onnxruntime.
    """
    try:
        from onnxruntime.tools.mobile_helpers import usability_checker as uc
        from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model
    except ImportError:
        return {"not_checked": "onnxruntime is not installed (pip install onnxruntime)"}

    with tempfile.TemporaryDirectory() as tmp:
        basic = Path(tmp) / "basic.onnx"
        optimize_model(Path(path), basic, use_external_initializers=True)
        holder = ModelProtoWithShapeInfo(basic)
        model = holder.model_with_shape_info
        out = {
            "NNAPI": _summary(uc.check_nnapi_partitions(model, True)),
            "CoreML_NeuralNetwork": _summary(
                uc.check_coreml_partitions(model, True, "coreml_supported_neuralnetwork_ops.md")
            ),
            "CoreML_MLProgram": _summary(
                uc.check_coreml_partitions(model, True, "coreml_supported_mlprogram_ops.md")
            ),
            "XNNPACK": xnnpack_placement(model),
        }
        del holder, model
    return out


def mobile_summary(notes: dict) -> str:
    """One line for the export table from an artifact's ``mobile`` notes, e.g.
    ``mobile: NNAPI 3 part(s) 250/260, CoreML MLProgram 1 part(s) 260/260, XNNPACK (predicted)
    120/260 nodes, 97% of GEMM/conv FLOPs``."""
    m = notes.get("mobile")
    if not isinstance(m, dict):
        return ""
    parts = []
    for ep, label in (("NNAPI", "NNAPI"), ("CoreML_MLProgram", "CoreML MLProgram")):
        info = m.get(ep)
        if isinstance(info, dict):
            parts.append(f"{label} {info['partitions']} part(s) {info['supported_nodes']}/{info['nodes']}")
    x = m.get("XNNPACK")
    if isinstance(x, dict):
        share = x.get("flop_share")
        flops = f", {share:.0%} of GEMM/conv FLOPs" if share is not None else ""
        parts.append(f"XNNPACK (predicted) {x['supported_nodes']}/{x['nodes']} nodes{flops}")
    return "mobile: " + ", ".join(parts) if parts else ""
