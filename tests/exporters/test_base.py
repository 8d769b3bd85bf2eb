"""Exporter plugins on a small toy ExportModule: registry, errors, each backend at fp32/fp16.

The toy has the ingredients that matter for the real graphs (conv, LayerNorm, explicit
softmax attention with a -1e4 key bias from a host flag, a registered-buffer PE, nearest
resize, a reduction) but exports in seconds. Exports are cached per session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from edgetam_export.exporters import (
    FLOAT_PRECISIONS as PRECISIONS,
)
from edgetam_export.exporters import (
    Exporter,
    ExportError,
    MissingBackendError,
    available_exporters,
    fp16_compute,
    get_exporter,
    register_exporter,
)
from edgetam_export.exporters.base import exporter_class
from edgetam_export.models.contracts import Contract, ExportModule, TensorSpec
from torch import nn


class ToyAttention(ExportModule):
    """image (1,3,8,8), key_valid (1,16) -> feat (1,8,8,8), score (1,1)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.ln = nn.LayerNorm(8)
        self.q = nn.Linear(8, 8)
        self.k = nn.Linear(8, 8)
        self.register_buffer("pe", 0.1 * torch.randn(1, 16, 8))
        self.contract = Contract(
            "toy",
            (
                TensorSpec("image", (1, 3, 8, 8), description="toy image"),
                TensorSpec("key_valid", (1, 16), description="1 = key used, 0 = masked"),
            ),
            (
                TensorSpec("feat", (1, 8, 8, 8), description="attended features, nearest x2"),
                TensorSpec("score", (1, 1), description="mean of feat"),
            ),
            description="toy attention graph",
            options={"toy_option": 3},
        )

    def forward(self, image, key_valid):
        x = self.conv(image)  # (1, 8, 4, 4)
        t = self.ln(x.flatten(2).transpose(1, 2) + self.pe)  # (1, 16, 8)
        logits = self.q(t) @ self.k(t).transpose(1, 2) * (8**-0.5) + (1.0 - key_valid).unsqueeze(1) * -1e4
        a = torch.softmax(logits, dim=-1) @ t
        y = a.transpose(1, 2).reshape(1, 8, 4, 4) + x
        feat = F.interpolate(y, scale_factor=2.0, mode="nearest")
        return feat, feat.mean(dim=(1, 2, 3)).reshape(1, 1)

    def example_inputs(self):
        g = torch.Generator().manual_seed(1)
        valid = torch.ones(1, 16)
        valid[0, 12:] = 0
        return torch.randn(1, 3, 8, 8, generator=g), valid


BACKENDS = ("onnx", "executorch", "coreml")


@pytest.fixture(scope="session")
def toy():
    return ToyAttention().eval()


@pytest.fixture(scope="session")
def toy_exports(tmp_path_factory, toy):
    """{(backend, precision): ArtifactReport} for the toy at both precisions on every backend."""
    root = tmp_path_factory.mktemp("toy_exports")
    out = {}
    for b in BACKENDS:
        e = get_exporter(b)
        for p in PRECISIONS:
            out[(b, p)] = e.export(toy, root / b / e.artifact_name("toy", p), p, metadata={"weights": "toy"})
    return out


def _reference(toy):
    with torch.no_grad():
        return [o.numpy() for o in toy(*toy.example_inputs())]


# --------------------------------------------------------------------------- registry / errors


def test_registry_lists_builtin_plugins():
    assert set(BACKENDS) <= set(available_exporters())
    assert set(BACKENDS) <= set(available_exporters(installed_only=True))
    for b, suffix, default in (
        ("onnx", ".onnx", "fp32"),
        ("executorch", ".pte", "fp32"),
        ("coreml", ".mlpackage", "fp16"),
    ):
        e = get_exporter(b)
        assert (
            isinstance(e, Exporter) and e.name == b and e.suffix == suffix and e.default_precision == default
        )
        assert e.artifact_name("image_encoder", "fp16") == f"image_encoder.fp16{suffix}"


def test_unknown_exporter_and_bad_options():
    with pytest.raises(KeyError, match="unknown exporter 'tflite'"):
        get_exporter("tflite")
    with pytest.raises(ValueError, match="iOS17"):
        get_exporter("coreml", target="iOS12")
    with pytest.raises(ValueError, match="compute_units"):
        get_exporter("coreml", compute_units="gpu_only")
    with pytest.raises(ValueError, match="opset"):
        get_exporter("onnx", opset=17)
    with pytest.raises(TypeError):
        get_exporter("executorch", foo=1)
    assert get_exporter("coreml", target="iOS18").options()["target"] == "iOS18"


def test_missing_backend_names_pip_command(tmp_path, toy):
    @register_exporter
    class _Missing(Exporter):
        name = "test-missing-backend"
        suffix = ".bin"
        requirements: ClassVar[dict[str, str]] = {"edgetam_no_such_module_xyz": "edgetam-no-such-pkg>=1.0"}

        def _export(self, module, path, precision, metadata):
            raise AssertionError("must not be reached")

    assert "test-missing-backend" in available_exporters()
    assert "test-missing-backend" not in available_exporters(installed_only=True)
    with pytest.raises(MissingBackendError, match=r'pip install "edgetam-no-such-pkg>=1.0"'):
        get_exporter("test-missing-backend").export(toy, tmp_path / "x.bin", "fp32")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="already registered"):

        @register_exporter
        class _Clash(Exporter):
            name = "onnx"
            suffix = ".onnx"

            def _export(self, module, path, precision, metadata):
                return {}

    assert exporter_class("onnx").__name__ == "OnnxExporter"


def test_export_argument_errors(tmp_path, toy):
    e = get_exporter("onnx")
    with pytest.raises(ValueError, match="precision must be one of"):
        e.export(toy, tmp_path / "t.onnx", "int4")
    with pytest.raises(ValueError, match="int8 export needs quant="):
        e.export(toy, tmp_path / "t.onnx", "int8")
    with pytest.raises(ValueError, match=r"must end with '\.onnx'"):
        e.export(toy, tmp_path / "t.pte", "fp32")
    with pytest.raises(TypeError, match="ExportModule"):
        e.export(nn.Linear(2, 2), tmp_path / "t.onnx", "fp32")


def test_failed_export_is_atomic(tmp_path, toy):
    """A failing export leaves the previous artifact untouched and no temporary files."""

    class Broken(ToyAttention):
        def forward(self, image, key_valid):
            if image.sum() > 0:  # data-dependent control flow: torch.export refuses
                return super().forward(image, key_valid)
            return super().forward(-image, key_valid)

    target = tmp_path / "toy.fp32.pte"
    target.write_bytes(b"previous artifact")
    with pytest.raises(ExportError, match="executorch export of 'toy' at fp32 failed"):
        get_exporter("executorch").export(Broken().eval(), target, "fp32")
    assert target.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.fp32.pte"]


def test_companions_are_renamed_next_to_the_artifact_only_when_all_exist(tmp_path, toy):
    """Exporter.companions: files _export writes beside the temporary artifact, renamed with it."""

    class _WithSide(Exporter):
        name = "test-companions"
        suffix = ".bin"
        companions: ClassVar[dict[str, str]] = {"side": ".side.txt"}
        write_side = True

        def _export(self, module, path, precision, metadata):
            path.write_bytes(b"artifact")
            if self.write_side:
                self.companion_path(path, "side").write_text("derived")
            return {}

    e = _WithSide()
    target = tmp_path / "toy.fp32.bin"
    assert e.companion_path(target, "side") == tmp_path / "toy.fp32.side.txt"
    rep = e.export(toy, target, "fp32")
    assert rep.companions == {"side": str(tmp_path / "toy.fp32.side.txt")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.fp32.bin", "toy.fp32.side.txt"]
    assert rep.size_bytes == len(b"artifact")  # the artifact of record alone
    e.write_side = False
    with pytest.raises(ExportError, match="failed: the plugin wrote no side companion file"):
        e.export(toy, tmp_path / "other.fp32.bin", "fp32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.fp32.bin", "toy.fp32.side.txt"]
    assert Exporter.finish_backend(e, tmp_path, []) == {}  # the bundle hook's default


def test_fp16_compute_keeps_original_and_float32_boundary(toy):
    half = fp16_compute(toy)
    assert toy.conv.weight.dtype == torch.float32
    assert half.inner.conv.weight.dtype == torch.float16
    # LayerNorm stays a float32 island (fp16 variance overflows on real activations)
    assert half.fp32_islands == 1 and half.inner.ln.inner.weight.dtype == torch.float32
    assert fp16_compute(toy, keep_fp32=()).fp32_islands == 0
    assert half.contract is toy.contract
    with torch.no_grad():
        outs = half(*toy.example_inputs())
    ref = _reference(toy)
    for o, r in zip(outs, ref, strict=True):
        assert o.dtype == torch.float32
        np.testing.assert_allclose(o.numpy(), r, atol=2e-2 * np.abs(r).max())


# --------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("precision", PRECISIONS)
def test_onnx_artifact(toy_exports, toy, precision):
    import onnx
    import onnxruntime as ort

    rep = toy_exports[("onnx", precision)]
    assert rep.io_dtype == "float32" and rep.notes["opset"] >= 18
    assert rep.notes["weights_dtype"] == ("float16" if precision == "fp16" else "float32")
    model = onnx.load(rep.path)  # one self-contained file: no external data beside it
    onnx.checker.check_model(model, full_check=True)
    assert {p.suffix for p in Path(rep.path).parent.iterdir()} == {".onnx", ".ort"}  # the .ort companions
    assert (
        rep.companions == {"ort": rep.path[: -len(".onnx")] + ".ort"}
        and Path(rep.companions["ort"]).is_file()
    )
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18
    assert [i.name for i in model.graph.input] == toy.contract.input_names
    assert [o.name for o in model.graph.output] == toy.contract.output_names
    assert model.graph.input[1].doc_string == "1 = key used, 0 = masked"
    assert {p.key: p.value for p in model.metadata_props}["precision"] == precision
    fp16_inits = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert bool(fp16_inits) == (precision == "fp16")

    sess = ort.InferenceSession(rep.path, providers=["CPUExecutionProvider"])
    feeds = {n: x.numpy() for n, x in zip(toy.contract.input_names, toy.example_inputs(), strict=True)}
    outs = sess.run(None, feeds)
    tol = 1e-5 if precision == "fp32" else 2e-2
    for o, r in zip(outs, _reference(toy), strict=True):
        assert o.dtype == np.float32
        np.testing.assert_allclose(o, r, atol=tol * np.abs(r).max())


# --------------------------------------------------------------------------- ExecuTorch


@pytest.mark.parametrize("precision", PRECISIONS)
def test_executorch_artifact(toy_exports, toy, precision):
    from executorch.runtime import Runtime

    rep = toy_exports[("executorch", precision)]
    n = rep.notes
    assert n["delegate"] == "XnnpackBackend" and n["delegate_calls"] >= 1 and n["delegated_ops"] > 0
    assert n["non_delegated_ops"] == sum(n["non_delegated"].values())
    assert 0 < n["coverage"] <= 1
    # The XNNPACK form of LayerNorm (models/xnnpack_forms.py) runs inside the delegate; the toy's
    # other ops (expand, mean, upsample) have no rewrite and must be reported outside it.
    assert any("LayerNorm" in r for r in n["rewrites"]), n["rewrites"]
    assert not any("layer_norm" in k for k in n["non_delegated"]), n["non_delegated"]
    assert "aten.mean.dim" in n["non_delegated"]
    if precision == "fp16":  # float32 boundary casts stay on portable kernels
        assert any("_to_dim_order_copy" in k or "_to_copy" in k for k in n["non_delegated"])
    json.dumps(rep.as_dict())

    method = Runtime.get().load_program(rep.path).load_method("forward")
    outs = method.execute(list(toy.example_inputs()))
    tol = 1e-5 if precision == "fp32" else 2e-2
    for o, r in zip(outs, _reference(toy), strict=True):
        assert o.dtype == torch.float32
        np.testing.assert_allclose(o.numpy(), r, atol=tol * np.abs(r).max())


# --------------------------------------------------------------------------- Core ML


@pytest.mark.parametrize("precision", PRECISIONS)
def test_coreml_artifact(toy_exports, toy, precision):
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2
    from edgetam_export.exporters.coreml_exporter import mlprogram_weight_dtypes

    rep = toy_exports[("coreml", precision)]
    assert rep.notes["conversion"] in ("torch.export", "torch.jit.trace")
    spec = ct.utils.load_spec(rep.path)
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion == 8  # iOS17
    d = spec.description
    assert [f.name for f in d.input] == toy.contract.input_names
    assert [f.name for f in d.output] == toy.contract.output_names
    for f, s in zip([*d.input, *d.output], [*toy.contract.inputs, *toy.contract.outputs], strict=True):
        assert f.type.multiArrayType.dataType == FeatureTypes_pb2.ArrayFeatureType.FLOAT32
        assert tuple(f.type.multiArrayType.shape) == s.shape
        assert f.shortDescription.startswith(s.description)
    md = d.metadata
    assert md.author == "edgetam-export" and "Apache-2.0" in md.license and md.versionString == "0.1.0"
    assert "toy" in md.shortDescription and precision in md.shortDescription
    user = dict(md.userDefined)
    assert user["com.edgetam.precision"] == precision and user["com.edgetam.compute_units"] == "all"
    assert json.loads(user["com.edgetam.contract"]) == toy.contract.as_dict()
    assert user["weights"] == "toy"
    dtypes = mlprogram_weight_dtypes(spec)
    assert set(dtypes) == ({"FLOAT16"} if precision == "fp16" else {"FLOAT32"}), dtypes


def test_coreml_ios18_and_trace_path(tmp_path, toy):
    import coremltools as ct

    e = get_exporter("coreml", target="iOS18", compute_units="cpu_and_ne", method="trace")
    rep = e.export(toy, tmp_path / "toy.fp16.mlpackage", "fp16")
    assert rep.notes["conversion"] == "torch.jit.trace" and rep.notes["target"] == "iOS18"
    spec = ct.utils.load_spec(rep.path)
    assert spec.specificationVersion == 9
    assert dict(spec.description.metadata.userDefined)["com.edgetam.compute_units"] == "cpu_and_ne"
    assert [f.name for f in spec.description.input] == toy.contract.input_names
