"""benchmarks/attention_forms.py in --quick mode: the fused ONNX attentions agree with the explicit
form (and a wrong fused graph would not), and the sdpa lowering leaves ops outside the XNNPACK
delegate where the explicit bmm leaves none."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "attention_forms.py"
TOL = 1e-4  # fp32 attention over ≤ 256 keys: the forms differ by ~1e-6 at most


@pytest.fixture(scope="module")
def forms():
    spec = importlib.util.spec_from_file_location("attention_forms", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_onnx_fused_forms_match_explicit(forms):
    res = forms.run(only="onnx", quick=True, iterations=2)["onnx"]
    assert [c["case"] for c in res["cases"]] == ["self_unmasked", "cross_masked"]
    for case in res["cases"]:
        # the explicit graph is attention at all (a float64 numpy reference) ...
        assert case["explicit_vs_numpy_max_abs_diff"] < TOL, case
        # ... and every fused form that ran gives its output
        assert "max_abs_diff" in case["forms"]["mha"], case  # MultiHeadAttention is in every ORT we use
        for form, r in case["forms"].items():
            if "skipped" in r:
                continue
            assert r["median_ms"] > 0
            if form != "explicit":
                assert r["max_abs_diff"] < TOL, (case["case"], form, r)
                assert r["speedup"] > 0


def test_onnx_check_catches_a_wrong_fused_graph(forms):
    """The comparison is on real outputs: MHA with a wrong scale, or without the bias, differs."""
    _, nq, nk, d, _ = next(c for c in forms.ONNX_CASES["quick"] if c[4])  # the masked case
    q, k, v = forms._inputs(nq, nk, d)
    feeds = {"q": q, "k": k, "v": v, "bias": forms._key_bias(nk)}

    def run(form, masked=True, scale=None):
        model = forms.onnx_graph(form, nq, nk, d, masked, scale=scale)
        with tempfile.TemporaryDirectory() as tmp:
            s = forms._session(model, Path(tmp), form, 1)
            return s.run(None, feeds if masked else {n: feeds[n] for n in "qkv"})[0]

    want = run("explicit")
    assert forms._max_abs(run("mha"), want) < TOL
    assert forms._max_abs(run("mha", scale=2.0 / np.sqrt(d)), want) > 1e-2
    assert forms._max_abs(run("mha", masked=False), want) > 1e-2


def test_executorch_sdpa_leaves_ops_outside_the_delegate(forms):
    res = forms.run(only="executorch", quick=True, iterations=2)["executorch"]
    sdpa, bmm = res["forms"]["sdpa"], res["forms"]["bmm"]
    assert sdpa["non_delegated_ops"] > 0
    assert any("expand_copy" in op for op in sdpa["non_delegated"]), sdpa["non_delegated"]
    assert bmm["non_delegated_ops"] == 0 and bmm["non_delegated"] == {} and bmm["coverage"] == 1.0
    for r in (sdpa, bmm):
        assert r["max_abs_diff_vs_eager_bmm"] < TOL
        assert r["median_ms"] > 0
