"""verify rows carry the tolerance that was applied, so a JSON report can be judged on its own."""

from __future__ import annotations

import numpy as np

from edgetam_export.verify.bundle_check import _row
from edgetam_export.verify.tolerances import tolerance


def test_rows_record_the_tolerance_applied():
    ref = np.linspace(-3, 3, 64, dtype=np.float32)
    for backend, precision in (("onnx", "fp32"), ("executorch", "fp16")):
        row = _row(backend, precision, "prompt_decoder", "case", "masks", "logits", ref, ref + 1e-3, "x")
        tol = tolerance(backend, precision, "logits")
        assert row.as_dict()["tolerance"] == {
            "kind": "logits",
            "rel_max_abs": tol.rel_max_abs,
            "min_cosine": tol.min_cosine,
        }


class _FakeRuntime:
    def __init__(self):
        self.contracts: dict = {}  # no graphs: no per-graph cases, no tracker scenario


def test_quantized_accuracy_records_recipe_and_artifact_sizes(monkeypatch):
    from pathlib import Path

    from edgetam_export.bundle import Bundle
    from edgetam_export.verify import bundle_check

    graphs = ("image_encoder", "prompt_decoder", "memory_encoder", "memory_attention")
    sizes = {"fp32": [400, 300, 200, 100], "int8": [110, 90, 60, 40]}
    arts = [
        {"backend": "onnx", "precision": p, "graph": g, "size_bytes": n}
        for p, ns in sizes.items()
        for g, n in zip(graphs, ns, strict=True)
    ]
    arts.append({"backend": "executorch", "precision": "fp32", "graph": "image_encoder", "size_bytes": 7})
    manifest = {"backends": {"onnx": {"quantization": {"int8": {"recipe": "int8_static"}}}}}
    bundle = Bundle(Path("b"), manifest, {}, {}, {}, arts)
    monkeypatch.setattr(bundle_check, "runtime_from_bundle", lambda *a, **k: _FakeRuntime())
    q = bundle_check.quantized_accuracy(bundle, _FakeRuntime(), _FakeRuntime(), [], "onnx", "int8")
    assert q["against"] == "onnx fp32" and q["recipe"] == "int8_static"
    assert q["artifact_bytes"] == {"total": 300, "fp32_total": 1000}
    # fp32 lacking one of the quantized graphs: the totals would not compare
    assert bundle.artifact_bytes("executorch", "fp32", ["image_encoder", "prompt_decoder"]) is None
    assert bundle.artifact_bytes("executorch", "fp32") == 7
    assert bundle.artifact_bytes("coreml", "fp32") is None
