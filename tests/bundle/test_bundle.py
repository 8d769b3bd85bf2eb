"""Bundles on toy graphs: layout, manifest, checksums, tamper refusal, atomic replace, runtimes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from edgetam_export.models.contracts import Contract, ExportModule, TensorSpec
from torch import nn

from edgetam_export.bundle import (
    CONSTANTS,
    FORMAT_VERSION,
    MANIFEST,
    BundleError,
    load_bundle,
    write_bundle,
)
from edgetam_export.bundle.manifest import default_choice
from edgetam_export.fileio import file_sha256 as sha256_file
from edgetam_export.runtime.base import MissingBackendError, Runtime
from edgetam_export.runtime.loader import runtime_from_bundle


class ToyEncoder(ExportModule):
    """x (1,4,8,8) -> y (1,8,4,4) (conv stride 2 + GELU)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.contract = Contract(
            "toy_encoder",
            (TensorSpec("x", (1, 4, 8, 8), description="input map"),),
            (TensorSpec("y", (1, 8, 4, 4), description="encoded map"),),
            "toy encoder",
            {"stride": 2},
        )

    def forward(self, x):
        return (torch.nn.functional.gelu(self.conv(x)),)


class ToyHead(ExportModule):
    """y (1,8,4,4), flag (1,1) -> logits (1,2), pooled (1,8)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc = nn.Linear(8, 2)
        self.contract = Contract(
            "toy_head",
            (
                TensorSpec("y", (1, 8, 4, 4), description="encoded map"),
                TensorSpec("flag", (1, 1), description="0/1"),
            ),
            (
                TensorSpec("logits", (1, 2), description="scores"),
                TensorSpec("pooled", (1, 8), description="pool"),
            ),
            "toy head",
            {"classes": 2},
        )

    def forward(self, y, flag):
        pooled = y.mean(dim=(2, 3)) * (1.0 + flag)
        return self.fc(pooled), pooled


MODULES = {"toy_encoder": ToyEncoder().eval(), "toy_head": ToyHead().eval()}
CONSTS = {"no_obj_ptr": torch.arange(4, dtype=torch.float32), "bias": np.ones((1,), np.float64)}
WEIGHTS = {"source": "synthetic", "recipe": "toy", "salt": 7, "state_dict_sha256": "0" * 64}
OPTIONS = {"max_points": 8, "num_spatial_slots": 8}


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory):
    """A bundle with ONNX (fp32 + fp16) and ExecuTorch (fp32) artifacts of two toy graphs."""
    root = tmp_path_factory.mktemp("toy_bundle")
    onnx_b = write_bundle(
        root / "onnx_only",
        MODULES,
        ["onnx"],
        constants=CONSTS,
        weights=WEIGHTS,
        options=OPTIONS,
        precisions=["fp32", "fp16"],
    )
    seen = []
    both = write_bundle(
        root / "both",
        MODULES,
        ["onnx", "executorch"],
        constants=CONSTS,
        weights=WEIGHTS,
        options=OPTIONS,
        progress=lambda b, g, p, r: seen.append((b, g, p, r is None)),
    )
    return onnx_b, both, seen


def _copy(bundle, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(bundle.root, dst)
    return dst


def test_layout_and_manifest(toy_bundle):
    onnx_b, both, seen = toy_bundle
    names = sorted(p.relative_to(both.root).as_posix() for p in both.root.rglob("*") if p.is_file())
    assert names == [
        CONSTANTS,
        "executorch/toy_encoder.fp32.pte",
        "executorch/toy_head.fp32.pte",
        MANIFEST,
        "onnx/required_operators.config",
        "onnx/required_operators_and_types.config",
        "onnx/toy_encoder.fp32.onnx",
        "onnx/toy_encoder.fp32.ort",
        "onnx/toy_head.fp32.onnx",
        "onnx/toy_head.fp32.ort",
    ]
    assert seen[:2] == [("onnx", "toy_encoder", "fp32", True), ("onnx", "toy_encoder", "fp32", False)]
    assert len(seen) == 8
    m = json.loads((both.root / MANIFEST).read_text())
    assert m["format"] == "edgetam-export-bundle" and m["format_version"] == FORMAT_VERSION
    assert m["graphs"]["toy_head"] == MODULES["toy_head"].contract.as_dict()
    assert m["preprocessing"]["image_size"] == 1024 and m["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert m["preprocessing"]["std"] == [0.229, 0.224, 0.225] and "resize" in m["preprocessing"]
    assert m["constants"]["file"] == CONSTANTS
    assert m["constants"]["arrays"]["bias"] == {"shape": [1], "dtype": "float32"}
    assert m["options"] == OPTIONS and m["weights"] == WEIGHTS
    for tool in ("torch", "executorch", "coremltools", "onnx", "onnxruntime", "edgetam-export"):
        assert m["tools"][tool] not in ("", None)
    assert m["backends"]["onnx"]["options"]["opset"] >= 18
    assert set(m["files"]) == set(names) - {MANIFEST}
    for rel, digest in m["files"].items():
        assert sha256_file(both.root / rel) == digest
    arts = {(a["backend"], a["graph"], a["precision"]): a for a in m["artifacts"]}
    assert arts[("executorch", "toy_head", "fp32")]["path"] == "executorch/toy_head.fp32.pte"
    assert "coverage" in arts[("executorch", "toy_head", "fp32")]["notes"]
    assert all(a["io_dtype"] == "float32" and a["size_bytes"] > 0 for a in m["artifacts"])
    assert arts[("onnx", "toy_head", "fp32")]["companions"] == {"ort": "onnx/toy_head.fp32.ort"}
    assert "companions" not in arts[("executorch", "toy_head", "fp32")]
    assert m["backends"]["onnx"]["reduced_build"]["models"] == [
        "onnx/toy_encoder.fp32.ort",
        "onnx/toy_head.fp32.ort",
    ]
    assert sorted(onnx_b.manifest["files"]) == [
        CONSTANTS,
        "onnx/required_operators.config",
        "onnx/required_operators_and_types.config",
        *(
            f"onnx/{g}.{p}.{ext}"
            for g in ("toy_encoder", "toy_head")
            for p in ("fp16", "fp32")
            for ext in ("onnx", "ort")
        ),
    ]
    # no temporary folders left next to the bundles
    assert sorted(p.name for p in both.root.parent.iterdir()) == ["both", "onnx_only"]


def test_load_bundle_roundtrip(toy_bundle):
    _, both, _ = toy_bundle
    b = load_bundle(both.root)
    assert b.backends == ["executorch", "onnx"] and b.precisions("onnx") == ["fp32"]
    assert b.contracts["toy_encoder"] == MODULES["toy_encoder"].contract
    np.testing.assert_array_equal(b.constants["no_obj_ptr"], np.arange(4, dtype=np.float32))
    assert b.constants["bias"].dtype == np.float32
    assert b.select("onnx") == ("onnx", "fp32")
    # no choice given: the host default among what the bundle holds (issue 9: bundle.default_choice)
    assert b.select() == default_choice({"executorch": ["fp32"], "onnx": ["fp32"]})
    with pytest.raises(BundleError, match="no 'coreml' artifacts"):
        b.select("coreml")
    with pytest.raises(BundleError, match="no onnx artifacts at 'fp16'"):
        b.select("onnx", "fp16")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("modify_artifact", "file onnx/toy_head.fp32.onnx was modified"),
        ("modify_companion", "file onnx/toy_head.fp32.ort was modified"),
        ("delete_constants", f"file {CONSTANTS} listed in the manifest is missing"),
        ("delete_artifact", "file executorch/toy_encoder.fp32.pte listed in the manifest is missing"),
        ("extra_file", "file onnx/evil.onnx is not listed in the manifest"),
        ("future_version", "format_version 99 is not supported"),
        ("no_manifest", "manifest.json is missing"),
        ("bad_json", "not valid JSON"),
    ],
)
def test_tampered_bundles_are_refused(toy_bundle, tmp_path, damage, message):
    _, both, _ = toy_bundle
    root = _copy(both, tmp_path)
    if damage == "modify_artifact":
        with open(root / "onnx/toy_head.fp32.onnx", "ab") as f:
            f.write(b"\0")
    elif damage == "modify_companion":
        with open(root / "onnx/toy_head.fp32.ort", "ab") as f:
            f.write(b"\0")
    elif damage == "delete_constants":
        (root / CONSTANTS).unlink()
    elif damage == "delete_artifact":
        (root / "executorch/toy_encoder.fp32.pte").unlink()
    elif damage == "extra_file":
        (root / "onnx/evil.onnx").write_bytes(b"x")
    elif damage == "future_version":
        m = json.loads((root / MANIFEST).read_text())
        m["format_version"] = 99
        (root / MANIFEST).write_text(json.dumps(m))
    elif damage == "no_manifest":
        (root / MANIFEST).unlink()
    elif damage == "bad_json":
        (root / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match=message):
        load_bundle(root)
    if damage in ("modify_artifact", "modify_companion", "delete_constants", "delete_artifact", "extra_file"):
        with pytest.raises(BundleError, match=message):
            runtime_from_bundle(root, backend="onnx")


def test_missing_bundle_errors(tmp_path):
    with pytest.raises(BundleError, match="not a directory"):
        load_bundle(tmp_path / "nope")


def test_replace_existing_bundle_and_refuse_foreign_folder(toy_bundle, tmp_path):
    _, both, _ = toy_bundle
    target = _copy(both, tmp_path)
    old_created = json.loads((target / MANIFEST).read_text())
    b = write_bundle(
        target,
        {"toy_head": MODULES["toy_head"]},
        ["onnx"],
        constants=CONSTS,
        weights=WEIGHTS,
        options=OPTIONS,
    )
    assert b.backends == ["onnx"] and list(b.contracts) == ["toy_head"]
    assert not (target / "executorch").exists()
    assert json.loads((target / MANIFEST).read_text()) != old_created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]

    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(BundleError, match="refusing to replace"):
        write_bundle(foreign, MODULES, ["onnx"], constants=CONSTS, weights=WEIGHTS, options=OPTIONS)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_failed_bundle_leaves_nothing(toy_bundle, tmp_path):
    class Broken(ToyHead):
        def forward(self, y, flag):
            if flag.sum() > 0:
                return super().forward(y, flag)
            return super().forward(-y, flag)

    _, both, _ = toy_bundle
    target = _copy(both, tmp_path)
    before = (target / MANIFEST).read_text()
    with pytest.raises(Exception, match="toy_head"):
        write_bundle(
            target,
            {"toy_head": Broken().eval()},
            ["onnx"],
            constants=CONSTS,
            weights=WEIGHTS,
            options=OPTIONS,
        )
    assert (target / MANIFEST).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]
    load_bundle(target)


@pytest.mark.parametrize(
    ("backend", "precision", "rtol"),
    [("onnx", "fp32", 1e-5), ("onnx", "fp16", 1e-2), ("executorch", "fp32", 1e-5)],
)
def test_runtimes_from_bundle(toy_bundle, backend, precision, rtol):
    onnx_b, both, _ = toy_bundle
    root = onnx_b.root if precision == "fp16" else both.root
    rt = runtime_from_bundle(root, backend=backend, precision=precision)
    assert isinstance(rt, Runtime) and rt.backend == backend and rt.precision == precision
    assert rt.name == {"onnx": "onnxruntime", "executorch": "executorch"}[backend]
    assert rt.contracts["toy_head"] == MODULES["toy_head"].contract and rt.options == OPTIONS
    assert set(rt.constants) == {"no_obj_ptr", "bias"}
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 8, 8, generator=g)
    y = rt.run("toy_encoder", {"x": x.numpy()})["y"]
    with torch.no_grad():
        (ref_y,) = MODULES["toy_encoder"](x)
    np.testing.assert_allclose(y, ref_y.numpy(), atol=rtol * ref_y.abs().max().item())
    out = rt.run("toy_head", {"y": ref_y.numpy(), "flag": np.ones((1, 1), np.float32)})
    with torch.no_grad():
        ref = MODULES["toy_head"](ref_y, torch.ones(1, 1))
    for name, r in zip(("logits", "pooled"), ref, strict=True):
        assert out[name].dtype == np.float32
        np.testing.assert_allclose(out[name], r.numpy(), atol=rtol * r.abs().max().item())
    with pytest.raises(ValueError, match="missing inputs"):
        rt.run("toy_head", {"y": ref_y.numpy()})
    with pytest.raises(KeyError, match="unknown graph"):
        rt.run("image_encoder", {})


def test_runtime_selection_errors(toy_bundle):
    onnx_b, both, _ = toy_bundle
    # without a choice the runtime opens the host default (not an error since issue 9)
    default = default_choice({"executorch": ["fp32"], "onnx": ["fp32"]})
    assert runtime_from_bundle(both.root).backend == default[0]
    assert runtime_from_bundle(onnx_b.root).precision == default_choice({"onnx": ["fp16", "fp32"]})[1]
    assert runtime_from_bundle(onnx_b.root, precision="fp16").precision == "fp16"
    with pytest.raises(BundleError, match="no 'coreml' artifacts"):
        runtime_from_bundle(both.root, backend="coreml")


def test_coreml_runtime_missing_is_clear(toy_bundle, tmp_path, monkeypatch):
    """A Core ML bundle without a Core ML runtime module raises MissingBackendError."""
    import edgetam_export.runtime.loader as loader

    _, both, _ = toy_bundle
    root = _copy(both, tmp_path)
    m = json.loads((root / MANIFEST).read_text())
    for a in m["artifacts"]:
        a["backend"] = "coreml"
    (root / MANIFEST).write_text(json.dumps(m))
    monkeypatch.setitem(loader.RUNTIMES, "coreml", ("edgetam_export.runtime.no_such_coreml_runtime", "X"))
    with pytest.raises(MissingBackendError, match="no coreml runtime"):
        runtime_from_bundle(root, backend="coreml", precision="fp32")
