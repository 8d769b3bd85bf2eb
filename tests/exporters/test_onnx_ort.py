"""ONNX artifacts carry their ORT-format ``.ort`` companion and the bundle its reduced-build operator
configs (onnxruntime's own tools); a failing conversion leaves nothing half-written."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from edgetam_export.exporters.base import ExportError, get_exporter
from edgetam_export.models.contracts import Contract

from edgetam_export.bundle import MANIFEST, export_bundle, load_bundle, write_bundle
from edgetam_export.cli.export import artifacts_table
from edgetam_export.fileio import file_sha256
from edgetam_export.runtime.onnx_runtime import OnnxRuntime
from tests.tiny_module import Tiny

GRAPH = "prompt_decoder"


@pytest.fixture(scope="module")
def decoder_bundle(tmp_path_factory):
    """The real prompt decoder (synthetic salt-0 weights) alone in an ONNX fp32 bundle (~10 s)."""
    return export_bundle(tmp_path_factory.mktemp("ort") / "bundle", ["onnx"], graphs=[GRAPH], salt=0)


def test_ort_companion_and_operator_configs_are_in_the_manifest(decoder_bundle):
    b = decoder_bundle
    art = b.artifact("onnx", GRAPH, "fp32")
    assert art["path"] == f"onnx/{GRAPH}.fp32.onnx"  # the artifact of record
    assert art["companions"] == {"ort": f"onnx/{GRAPH}.fp32.ort"}
    ort_path = b.companion_path("onnx", GRAPH, "fp32", "ort")
    assert ort_path.read_bytes()[4:8] == b"ORTM"  # the ORT format's flatbuffer file identifier
    assert b.manifest["files"][art["companions"]["ort"]] == file_sha256(ort_path)
    notes = art["notes"]["ort"]
    assert notes["bytes"] == ort_path.stat().st_size
    assert (notes["optimization_style"], notes["optimization_level"]) == ("Fixed", "all")
    assert notes["fp32_casts_inserted"] == 0 and "fp32_casts_note" not in notes  # fp32: nothing to cast
    assert set(notes["compute_dtypes"]) == {"float32"} and notes["compute_dtypes"]["float32"] > 100
    assert art["size_bytes"] == (b.root / art["path"]).stat().st_size  # sizes stay the .onnx's

    rb = b.manifest["backends"]["onnx"]["reduced_build"]
    assert rb == {
        "required_operators": "onnx/required_operators.config",
        "required_operators_and_types": "onnx/required_operators_and_types.config",
        "models": [f"onnx/{GRAPH}.fp32.ort"],
    }
    for rel in (rb["required_operators"], rb["required_operators_and_types"]):
        assert b.manifest["files"][rel] == file_sha256(b.root / rel)
    lines = (b.root / rb["required_operators"]).read_text().splitlines()
    assert f"# - onnx/{GRAPH}.fp32.ort" in lines  # bundle paths, not the staging folder's
    ops = {}
    for line in lines:
        if not line.startswith("#"):
            domain, opset, names = line.split(";")
            ops.setdefault(domain, set()).update(names.split(","))
            assert int(opset) >= 1
    # the decoder's attention and MLPs: MatMul (some fused by ORT), Softmax, LayerNormalization
    assert {"MatMul", "Softmax", "Gemm", "ConvTranspose"} <= ops["ai.onnx"], ops
    assert ops.keys() <= {"ai.onnx", "com.microsoft"}
    typed = (b.root / rb["required_operators_and_types"]).read_text()
    assert 'MatMul{"inputs": {"0": ["float"]}}' in typed

    table = artifacts_table(b.artifacts)
    assert any(re.search(r", \.ort \d+\.\d MB;", str(cell)) for col in table.columns for cell in col._cells)


def test_fp16_ort_files_record_what_computes_in_float32(exported_bundles):
    """On this x86 host the CPU EP has no fp16 kernels for most ops, so the converter wraps them in
    Casts to float32 and folds their fp16 weights to float32: each fp16 .ort records, as read from
    the file, the casts and how many nodes compute in which dtype (e.g. the whole image encoder in
    float32), and the export table shows it; fp32 .ort files have no casts and no fp16 node."""
    from edgetam_export.exporters.onnx_ort import ort_graph_facts

    b = exported_bundles["main"]
    for art in (a for a in b.artifacts if a["backend"] == "onnx"):
        notes, facts = art["notes"]["ort"], ort_graph_facts(b.root / art["companions"]["ort"])
        assert {k: notes[k] for k in facts} == facts, art["path"]
        if art["precision"] == "fp32":
            assert facts["fp32_casts_inserted"] == 0 and set(facts["compute_dtypes"]) == {"float32"}
            assert "fp32_casts_note" not in notes
        else:
            assert facts["fp32_casts_inserted"] > 0 and facts["compute_dtypes"]["float32"] > 0, art["path"]
            assert "compute in float32 on any device" in notes["fp32_casts_note"]
    enc = b.artifact("onnx", "image_encoder", "fp16")["notes"]["ort"]["compute_dtypes"]
    assert "float16" not in enc  # every Conv of the fp16 image encoder runs in float32 here
    table = artifacts_table([b.artifact("onnx", "image_encoder", "fp16")])
    want = f"({enc['float32']}/{enc['float32']} nodes in fp32)"
    assert any(want in str(cell) for col in table.columns for cell in col._cells)


def test_ort_runtime_runs_the_same_graph(decoder_bundle):
    """``model_format="ort"`` runs the .ort files: outputs equal those of the .onnx file.

    Against an .onnx session without ORT's x86-only NCHWc layout transformer (which the converter
    leaves out so the .ort runs on ARM too) the graphs and kernels are the same: bit-identical.
    The default .onnx session uses NCHWc convolutions on x86 and moves the decoder's upscaling
    convs by at most 6.5e-7 of max|masks| (measured 8.1e-6 absolute on 12.4): atol 1e-5 x max|ref|.
    """
    b = decoder_bundle
    onnx_rt, ort_rt = OnnxRuntime(b), OnnxRuntime(b, model_format="ort")
    assert ort_rt.paths[GRAPH] == b.root / f"onnx/{GRAPH}.fp32.ort" and "model_format='ort'" in repr(ort_rt)
    contract = b.contracts[GRAPH]
    g = torch.Generator().manual_seed(0)
    feeds = {s.name: torch.randn(s.shape, generator=g).numpy() for s in contract.inputs}
    got, ref = ort_rt.run(GRAPH, feeds), onnx_rt.run(GRAPH, feeds)
    for name in contract.output_names:
        np.testing.assert_allclose(got[name], ref[name], rtol=0, atol=1e-5 * np.abs(ref[name]).max())

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    no_nchwc = ort.InferenceSession(
        str(b.artifact_path("onnx", GRAPH, "fp32")),
        so,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["NchwcTransformer"],
    )
    same = dict(zip(contract.output_names, no_nchwc.run(contract.output_names, feeds), strict=True))
    for name in contract.output_names:
        np.testing.assert_array_equal(got[name], same[name])


def _write(out, modules=None, keep=None):
    return write_bundle(
        out,
        modules or {"tiny": Tiny().eval()},
        ["onnx"],
        constants={},
        weights={"source": "synthetic", "salt": 0},
        options={},
        keep=keep,
    )


def _snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_failing_conversion_leaves_nothing_half_written(tmp_path, monkeypatch):
    from onnxruntime.tools import convert_onnx_models_to_ort as tool

    def broken(model_path, output_dir=None, **kwargs):
        (output_dir / (model_path.stem + ".ort")).write_bytes(b"half an ORT file")
        raise RuntimeError("converter exploded\n  with a second line")

    target = tmp_path / "bundle"
    _write(target)
    before = _snapshot(target)
    monkeypatch.setattr(tool, "convert_onnx_models_to_ort", broken)
    with pytest.raises(ExportError) as err:
        _write(target)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (
        "onnx export of 'tiny' at fp32 failed: ORT-format (.ort) conversion failed: "
        "converter exploded with a second line"
    )
    assert _snapshot(target) == before  # the bundle is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging folder left
    load_bundle(target)

    # the plugin alone: neither the .onnx nor a partial .ort appears, no temporaries stay
    alone = tmp_path / "alone"
    with pytest.raises(ExportError, match="ORT-format"):
        get_exporter("onnx").export(Tiny().eval(), alone / "tiny.fp32.onnx", "fp32")
    assert list(alone.iterdir()) == []


def test_failing_operator_config_leaves_the_bundle_as_before(tmp_path, monkeypatch):
    import onnxruntime.tools.ort_format_model as ofm

    target = tmp_path / "bundle"
    _write(target)
    before = _snapshot(target)

    def broken(*args, **kwargs):
        raise ValueError("no flatbuffers")

    monkeypatch.setattr(ofm, "create_config_from_models", broken)
    with pytest.raises(
        ExportError, match=r"^onnx: finishing the bundle's onnx files failed: no flatbuffers$"
    ):
        _write(target)
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_merge_copies_companions_and_upgrades_an_older_bundle(tmp_path):
    """keep=: the kept artifact's .ort comes along; a kept artifact without one (a bundle written
    before .ort companions) gets it, and the operator config covers every model."""
    out = tmp_path / "bundle"
    _write(out)
    m = json.loads((out / MANIFEST).read_text())  # make it an older bundle: no .ort, no configs
    for a in m["artifacts"]:
        del a["companions"], a["notes"]["ort"]
    del m["backends"]["onnx"]["reduced_build"]
    for rel in [r for r in m["files"] if not r.endswith((".onnx", ".npz"))]:
        (out / rel).unlink()
        del m["files"][rel]
    (out / MANIFEST).write_text(json.dumps(m))
    old = load_bundle(out)
    assert old.companion_path("onnx", "tiny", "fp32", "ort") is None

    class Tiny2(Tiny):
        def __init__(self):
            super().__init__()
            self.contract = Contract("tiny2", self.contract.inputs, self.contract.outputs)

    merged = _write(out, {"tiny2": Tiny2().eval()}, keep=old)
    for g in ("tiny", "tiny2"):
        art = merged.artifact("onnx", g, "fp32")
        assert art["companions"] == {"ort": f"onnx/{g}.fp32.ort"} and art["notes"]["ort"]["bytes"] > 0
        assert f"onnx/{g}.fp32.ort" in merged.manifest["files"]
    assert merged.manifest["backends"]["onnx"]["reduced_build"]["models"] == [
        "onnx/tiny.fp32.ort",
        "onnx/tiny2.fp32.ort",
    ]
    # merging again copies the kept .ort as it is
    kept_ort = (out / "onnx/tiny2.fp32.ort").read_bytes()
    again = _write(out, {"tiny": Tiny().eval()}, keep=load_bundle(out))
    assert (again.root / "onnx/tiny2.fp32.ort").read_bytes() == kept_ort
