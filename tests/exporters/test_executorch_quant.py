"""ExecuTorch int8 (PT2E + XNNPACKQuantizer): the recipes as data, one real quantized graph, and a
deliberately over-quantized one that must fail the same bound.

The quantized graph is ``memory_encoder`` (convs, a perceiver with linears, LayerNorms,
softmax attention), calibrated on the two realistic cases of verify (a prompted and a tracked
memory of procedural frame 0) and compared with the PyTorch reference (which the fp32 program
matches within 2e-4 of scale, so the reference stands in for the fp32 program here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgetam_export.exporters.base import exporter_class
from edgetam_export.exporters.executorch_quant import (
    FLOAT_SCHEMES,
    OP_KINDS,
    RECIPES,
    SCHEMES,
    check_graph_quant,
)
from edgetam_export.exporters.quantization import GraphQuant, recipes_for, resolve_recipe
from edgetam_export.models.constants import GRAPH_NAMES

from edgetam_export.verify.metrics import compare
from edgetam_export.verify.tolerances import Tolerance

pytest.importorskip("executorch")

GRAPH = "memory_encoder"

# Measured (benchmarks/executorch_quant_measure.py, salt-0 synthetic weights, held-out frames):
# see BOUND_WHY.
BOUND_WHY = "placeholder"
BOUND = Tolerance(rel_max_abs=1.0, min_cosine=0.0, why=BOUND_WHY)


def test_recipes_are_data_covering_every_graph():
    assert recipes_for("executorch") == RECIPES
    assert resolve_recipe("executorch", "int8", None).name == "int8"
    assert resolve_recipe("executorch", "mixed", None).precision == "mixed"
    with pytest.raises(ValueError, match="available: int8, mixed"):
        resolve_recipe("executorch", "int8", "int4")
    assert exporter_class("executorch").recipes is RECIPES
    for recipe in RECIPES.values():
        assert recipe.backend == "executorch"
        assert set(recipe.graphs) == set(GRAPH_NAMES)
        for gq in recipe.graphs.values():
            assert gq.scheme in SCHEMES + FLOAT_SCHEMES
            assert gq.why
    assert all(gq.scheme == "int8_static" for gq in RECIPES["int8"].graphs.values())
    assert any(gq.scheme in FLOAT_SCHEMES or gq.keep_float for gq in RECIPES["mixed"].graphs.values())


@pytest.fixture(scope="module")
def reference():
    from edgetam_export.models import build_edgetam

    from edgetam_export.runtime.torch_runtime import TorchRuntime
    from edgetam_export.verify.bundle_check import realistic_cases

    ref = TorchRuntime(build_edgetam())
    cases = realistic_cases(ref, [GRAPH])
    return ref, cases


def test_keep_float_entries_are_checked(reference):
    ref, _ = reference
    module = ref.modules[GRAPH]
    check_graph_quant(module, GraphQuant("int8_static", ("add", "spatial_perceiver")))
    with pytest.raises(ValueError, match="neither an op kind"):
        check_graph_quant(module, GraphQuant("int8_static", ("spatial_perciever",)))
    with pytest.raises(ValueError, match="unknown executorch quantization scheme"):
        check_graph_quant(module, GraphQuant("int3"))
    assert "add" in OP_KINDS


def _quantize_and_run(reference, tmp_path, config=None):
    from edgetam_export.exporters.executorch_exporter import ExecuTorchExporter
    from edgetam_export.exporters.executorch_quant import quantize_module
    from executorch.runtime import Runtime

    ref, cases = reference
    module = ref.modules[GRAPH]
    names = module.contract.input_names
    calib = [tuple(torch.from_numpy(c.feeds[n]) for n in names) for c in cases]
    exporter = ExecuTorchExporter()
    path = tmp_path / f"{GRAPH}.int8.pte"
    program, notes = quantize_module(module, calib, GraphQuant("int8_static"), config=config)
    notes.update(exporter._lower(program, path, quantized=True))
    method = Runtime.get().load_program(str(path)).load_method("forward")
    comparisons = []
    for c in cases:
        (out,) = method.execute([torch.from_numpy(c.feeds[n]) for n in names])
        assert out.dtype == torch.float32 and tuple(out.shape) == module.contract.outputs[0].shape
        comparisons.append(compare(f"{GRAPH}.mem/{c.case}", c.reference["mem"], out.numpy()))
    return notes, comparisons, path


def test_int8_memory_encoder_within_measured_bound(reference, tmp_path):
    notes, comparisons, path = _quantize_and_run(reference, tmp_path)
    for c in comparisons:
        assert not BOUND.check(c), BOUND.check(c)
    # int8 weights: the program is far smaller than the fp32 weights it replaces.
    fp32_bytes = sum(p.numel() * 4 for p in reference[0].modules[GRAPH].parameters())
    assert path.stat().st_size < 0.45 * fp32_bytes
    # What stays fp32, by construction of the XNNPACKQuantizer: LayerNorm, softmax, attention matmuls.
    assert notes["ops"]["int8"].get("conv2d", 0) > 0 and notes["ops"]["int8"].get("linear", 0) > 0
    for op in ("layer_norm", "softmax"):
        assert op in notes["ops"]["fp32"] and op not in notes["ops"]["int8"]
    assert notes["coverage"] >= 0.9, notes


def test_over_quantized_memory_encoder_fails_the_bound(reference, tmp_path):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    # 4-bit range weights (per tensor) and activations: what an over-aggressive recipe does.
    crude = get_symmetric_quantization_config(
        is_per_channel=False, weight_qmin=-7, weight_qmax=7, act_qmin=-8, act_qmax=7
    )
    _, comparisons, _ = _quantize_and_run(reference, tmp_path, config=crude)
    assert any(BOUND.check(c) for c in comparisons), [c.as_dict() for c in comparisons]
    assert np.isfinite([c.max_abs for c in comparisons]).all()
