"""``OnnxRuntime(model_format="ort")`` runs the ``.ort`` companions; a bundle without them is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgetam_export.bundle import MANIFEST, BundleError, load_bundle, write_bundle
from edgetam_export.runtime.loader import runtime_from_bundle
from edgetam_export.runtime.onnx_runtime import OnnxRuntime
from tests.tiny_module import Tiny


@pytest.fixture(scope="module")
def older_bundle(tmp_path_factory):
    """A one-graph ONNX bundle made to look like one written before .ort companions existed."""
    out = tmp_path_factory.mktemp("older") / "bundle"
    write_bundle(
        out, {"tiny": Tiny().eval()}, ["onnx"], constants={}, weights={"source": "synthetic"}, options={}
    )
    m = json.loads((out / MANIFEST).read_text())
    for a in m["artifacts"]:
        del a["companions"], a["notes"]["ort"]
    del m["backends"]["onnx"]["reduced_build"]
    for rel in [r for r in m["files"] if r.startswith("onnx/") and not r.endswith(".onnx")]:
        (out / rel).unlink()
        del m["files"][rel]
    (out / MANIFEST).write_text(json.dumps(m))
    return load_bundle(out)


def test_a_bundle_without_ort_files_is_refused_in_one_line(older_bundle):
    x = {"x": np.ones((1, 4), np.float32)}
    assert OnnxRuntime(older_bundle).run("tiny", x)["y"].shape == (1, 3)  # its .onnx files still run
    with pytest.raises(BundleError) as e:
        OnnxRuntime(older_bundle, model_format="ort")
    msg = str(e.value)
    assert "\n" not in msg
    for needle in (
        "graph(s) ['tiny'] have no ORT-format (.ort) file",
        "re-export it with the current edgetam-export",
        "model_format='onnx'",
    ):
        assert needle in msg, msg
    with pytest.raises(BundleError, match="no ORT-format"):
        runtime_from_bundle(older_bundle.root, backend="onnx", model_format="ort")
    with pytest.raises(ValueError, match="model_format must be one of"):
        OnnxRuntime(older_bundle, model_format="tflite")


def test_session_bundle_ort_files_run_like_the_onnx_files(exported_bundles):
    """The session's fp32 and fp16 memory encoders: the .ort run is bit-identical to the .onnx graph
    run without ORT's x86-only NCHWc transformer (which the converter leaves out).

    The default .onnx session uses NCHWc convolutions on x86: measured on all eight session graphs,
    fp32 outputs move by at most 1.1e-6 of max|output| (atol 1e-5 x max), and fp16 ones, rounded to
    fp16 inside the graph, by at most one fp16 ulp at max|output| (atol that ulp).
    """
    import onnxruntime as ort

    b = exported_bundles["main"]
    contract = b.contracts["memory_encoder"]
    g = torch.Generator().manual_seed(0)
    feeds = {s.name: torch.randn(s.shape, generator=g).numpy() for s in contract.inputs}
    so = ort.SessionOptions()
    so.log_severity_level = 3
    for precision in ("fp32", "fp16"):
        got = OnnxRuntime(b, precision, model_format="ort").run("memory_encoder", feeds)
        no_nchwc = ort.InferenceSession(
            str(b.artifact_path("onnx", "memory_encoder", precision)),
            so,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=["NchwcTransformer"],
        )
        same = no_nchwc.run(contract.output_names, feeds)
        ref = OnnxRuntime(b, precision).run("memory_encoder", feeds)
        for name, s in zip(contract.output_names, same, strict=True):
            np.testing.assert_array_equal(got[name], s, err_msg=precision)
            top = np.abs(ref[name]).max()
            atol = 1e-5 * top if precision == "fp32" else float(np.spacing(np.float16(top)))
            np.testing.assert_allclose(got[name], ref[name], rtol=0, atol=atol, err_msg=precision)
