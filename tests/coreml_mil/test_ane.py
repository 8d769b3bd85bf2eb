"""Static ANE-readiness report: each rule fires on a toy program built to trip it, and the report
of the session's Core ML fp16 export finds no tensor of rank > 4."""

from __future__ import annotations

import numpy as np
import pytest

from edgetam_export.coreml_mil.ane import (
    FP32_RULE,
    RANK_RULE,
    ane_report,
    ane_report_for_bundle,
    format_ane_report,
)


@pytest.fixture(scope="module")
def toy_mlpackage(tmp_path_factory):
    """fp16 ML Program: a rank-5 add, a sin kept in fp32 (an fp32 island) and a gather."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 2, 3, 4, 5))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.add(x=x, y=1.0, name="add5d")
        y = mb.reshape(x=y, shape=[1, 120], name="flat")
        y = mb.sin(x=y, name="sin_fp32")
        return mb.gather(x=y, indices=np.array([0, 2], dtype=np.int32), axis=1, name="pick")

    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.transform.FP16ComputePrecision(op_selector=lambda op: op.op_type != "sin"),
        skip_model_load=True,
    )
    path = tmp_path_factory.mktemp("toy") / "toy.mlpackage"
    model.save(str(path))
    return path


def test_every_rule_fires_on_the_toy(toy_mlpackage):
    r = ane_report(toy_mlpackage, "toy")
    assert r.precision == "fp16"
    rank5 = r.by_rule(RANK_RULE)
    assert any(f.op_type == "add" and f.op_name.startswith("add5d") for f in rank5), r.findings
    assert any("rank 5 [1, 2, 3, 4, 5]" in f.detail for f in rank5)
    islands = r.by_rule(FP32_RULE)
    assert any(f.op_type == "sin" for f in islands), r.findings
    assert [f.op_type for f in r.by_rule("non-ane-op")] == ["gather"]
    assert r.boundary_casts  # the fp32 input is cast to fp16 at the boundary
    text = format_ane_report([r])
    assert "ops on tensors of rank > 4: " in text and "fp32 islands: " in text and "gather" in text
    assert "rank>4: keep every tensor at rank <= 4" in text


def test_session_coreml_fp16_bundle(exported_bundles):
    reports = ane_report_for_bundle(exported_bundles["coreml"], precision="fp16")
    by_graph = {r.graph: r for r in reports}
    assert set(by_graph) == {"image_encoder", "prompt_decoder", "memory_encoder", "memory_attention"}
    assert all(r.precision == "fp16" and r.n_ops > 0 for r in reports)
    # the perceiver's 4x4 window partition, the former rank-5 spot, is rank <= 4 now: no graph has one
    assert not any(r.by_rule(RANK_RULE) for r in reports), [r.by_rule(RANK_RULE) for r in reports]
    # the fp16 programs compute in fp16 between the float32 I/O casts
    assert not any(r.by_rule(FP32_RULE) for r in reports)
    assert all(r.boundary_casts for r in reports)
    text = format_ane_report(reports)
    assert "memory_encoder [fp16]" in text and "Suggested rewrites:" in text
