"""Core ML quantization: recipes as data, the exporter's int8 path on one real graph, and a failing over-quantized setting.

The real-graph checks use the session's Core ML export (``exported_bundles["coreml"]``, fp32 and
fp16 programs) and the captured reference feeds (``bench_capture``): the int8 program of
``GRAPH`` is exported as a one-graph int8 bundle and evaluated with the MIL evaluator
against the fp32 program on the steady-state feed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")

from edgetam_export.exporters.coreml_exporter import CoreMLExporter  # noqa: E402
from edgetam_export.exporters.coreml_quant import (  # noqa: E402
    DECODER_FLOAT_WEIGHTS,
    FLOAT_SCHEMES,
    GRAPHS,
    RECIPES,
    SCHEMES,
    compress_mlmodel,
)
from edgetam_export.exporters.quantization import GraphQuant  # noqa: E402
from edgetam_export.exporters.recipes import resolve_recipe  # noqa: E402

import edgetam_export.coreml_mil  # noqa: E402,F401  (registers the W8A8 activation observer)
from edgetam_export.coreml_mil.evaluator import MILEvaluator  # noqa: E402
from edgetam_export.fileio import path_size  # noqa: E402
from edgetam_export.verify.metrics import compare  # noqa: E402
from edgetam_export.verify.tolerances import tolerance  # noqa: E402

GRAPH = "memory_encoder"
# The table's (coreml, int8) memory bound; its reason records the measurement.
INT8_BOUND = tolerance("coreml", "int8", "memory")


def test_recipes_are_data():
    assert {"int8", "mixed", "palettize6", "palettize4", "w8a8"} <= set(RECIPES)
    for name, r in RECIPES.items():
        assert r.name == name and r.backend == "coreml" and r.precision in ("int8", "mixed")
        assert set(r.graphs) == set(GRAPHS) and r.description
        for g, q in r.graphs.items():
            assert q.scheme in SCHEMES + FLOAT_SCHEMES and q.why, (name, g)
    assert RECIPES["int8"].precision == "int8" and RECIPES["mixed"].precision == "mixed"
    assert {q.scheme for q in RECIPES["int8"].graphs.values()} == {"int8_weights"}
    assert RECIPES["mixed"].graphs["prompt_decoder"].keep_float == DECODER_FLOAT_WEIGHTS
    assert CoreMLExporter.recipes is RECIPES
    assert resolve_recipe("coreml", "mixed", None) is RECIPES["mixed"]
    assert resolve_recipe("coreml", "int8", "palettize4") is RECIPES["palettize4"]
    with pytest.raises(ValueError, match="palettize6"):
        resolve_recipe("coreml", "int8", "nope")
    with pytest.raises(ValueError, match="int8_weights"):
        compress_mlmodel(None, GraphQuant("int3"))


@pytest.fixture(scope="module")
def fp32_run(exported_bundles, bench_capture):
    """(fp32 package path, steady-state feeds, fp32 program outputs) of GRAPH."""
    bundle = exported_bundles["coreml"]
    path = bundle.root / bundle.artifact("coreml", GRAPH, "fp32")["path"]
    feeds = bench_capture.calls[bench_capture.graph_benchmarks[GRAPH]].feeds
    return path, feeds, MILEvaluator(path, track_ranges=False).run(feeds)


def _worst(ref: dict, out: dict):
    cs = [compare(n, r.astype(np.float32), out[n].astype(np.float32)) for n, r in ref.items()]
    return min(cs, key=lambda c: c.cosine), max(cs, key=lambda c: c.rel_max_abs)


def test_int8_export_within_bound_and_smaller(tmp_path, fp32_run, exported_bundles):
    """Exported as a one-graph int8 bundle (weight-only: no calibration samples); the manifest
    records recipe and scheme, and the program is within the (coreml, int8) bound."""
    from edgetam_export.exporters.quantization import Calibration

    from edgetam_export.bundle import export_bundle

    with contextlib.redirect_stderr(io.StringIO()):
        bundle = export_bundle(
            tmp_path / "bundle",
            ["coreml"],
            precisions=["int8"],
            graphs=[GRAPH],
            salt=0,
            calibrate=lambda modules, constants, options: Calibration({}, "none (weight-only int8)"),
        )
    recorded = bundle.manifest["backends"]["coreml"]["quantization"]["int8"]
    assert recorded["recipe"] == "int8" and recorded["graphs"] == {GRAPH: "int8_weights"}
    art = bundle.artifact("coreml", GRAPH, "int8")
    path, notes = bundle.root / art["path"], art["notes"]
    assert (
        notes["quant_scheme"] == "int8_weights"
        and notes["compression_ops"]["constexpr_affine_dequantize"] > 0
    )
    meta = ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata
    assert meta["com.edgetam.precision"] == "int8" and meta["com.edgetam.quant_scheme"] == "int8_weights"

    fp32_path, feeds, ref = fp32_run
    session = exported_bundles["coreml"]
    fp16_size = path_size(session.root / session.artifact("coreml", GRAPH, "fp16")["path"])
    size = path_size(path)
    print(f"\n{GRAPH}: fp32 {path_size(fp32_path)} B, fp16 {fp16_size} B, int8 {size} B")
    assert size < 0.3 * path_size(fp32_path) and size < 0.6 * fp16_size

    ev = MILEvaluator(path, track_ranges=False)
    assert list(ev.input_specs) == bundle.contracts[GRAPH].input_names
    cos, rel = _worst(ref, ev.run(feeds))
    print(
        f"int8: worst cosine {cos.cosine:.6f} ({cos.name}), worst rel max-abs {rel.rel_max_abs:.3e} ({rel.name})"
    )
    assert not INT8_BOUND.check(cos) and not INT8_BOUND.check(rel)


def test_two_bit_palettization_exceeds_the_bound(fp32_run, exported_bundles, tmp_path):
    """A too-aggressive setting (4 LUT entries per tensor) is caught by the same bound."""
    bundle = exported_bundles["coreml"]
    fp16 = ct.models.MLModel(
        str(bundle.root / bundle.artifact("coreml", GRAPH, "fp16")["path"]), skip_model_load=True
    )
    small, _ = compress_mlmodel(fp16, GraphQuant("palettize2"))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        small.save(str(tmp_path / "p2.mlpackage"))
    _, feeds, ref = fp32_run
    cos, rel = _worst(ref, MILEvaluator(tmp_path / "p2.mlpackage", track_ranges=False).run(feeds))
    print(f"\npalettize2: worst cosine {cos.cosine:.6f}, worst rel max-abs {rel.rel_max_abs:.3e}")
    assert INT8_BOUND.check(rel)


def test_mixed_decoder_patterns_name_the_converted_decoder(exported_bundles):
    """Each fp16-kept weight pattern of the mixed decoder names weights of the real program; the rest
    of the decoder still compresses; a stale pattern is an error."""
    from edgetam_export.exporters.coreml_quant import _config, _int8_weights_config, _program_op_names

    bundle = exported_bundles["coreml"]
    fp16 = ct.models.MLModel(
        str(bundle.root / bundle.artifact("coreml", "prompt_decoder", "fp16")["path"]), skip_model_load=True
    )
    _, names = _program_op_names(fp16)
    cfg = _config(_int8_weights_config(), fp16, DECODER_FLOAT_WEIGHTS)
    kept = set(cfg.op_name_configs)
    for pattern in DECODER_FLOAT_WEIGHTS:
        assert any(fnmatch.fnmatch(n, pattern) for n in kept), pattern
    weights = {n for n in names if n.startswith("p_") and "weight" in n}
    assert len(weights - kept) >= 10  # MLPs and heads stay int8
    with pytest.raises(ValueError, match="p_no_such_module_"):
        _config(_int8_weights_config(), fp16, ("p_no_such_module_*",))
