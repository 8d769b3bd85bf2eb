"""Core ML numerics without a Mac: the MIL evaluator on saved ``.mlpackage`` programs.

(a) toy torch modules (conv, conv-transpose, norms, attention, gelu, interpolate, shape ops)
    converted at fp32 and fp16, evaluated, compared with torch; fp16 storage between ops is
    checked directly (rounding, overflow to inf);
(b) an op without a kernel fails naming its type, name and location;
(c) the four real EdgeTAM submodules, exported with the project's Core ML exporter at fp32 and
    fp16, evaluated on realistic chained inputs and compared with the PyTorch wrappers under
    the ("coreml", precision) tolerances; plus CoreMLRuntime from a mapping and from a bundle.

Toy conversions are cached per session in one temporary folder; the real packages come from the
session's shared export (``exported_bundles`` in conftest.py), converted once per session.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgetam_export.verify.metrics import compare

ct = pytest.importorskip("coremltools")

from edgetam_export.coreml_mil.compression_ops import COMPRESSION_KERNELS  # noqa: E402
from edgetam_export.coreml_mil.evaluator import (  # noqa: E402
    MILEvaluator,
    UnsupportedMILOpError,
    load_mil_program,
)
from edgetam_export.coreml_mil.ops import KERNELS, VALUE_INFERENCE_OPS  # noqa: E402

PRECISIONS = ("fp32", "fp16")


def _quiet():
    """coremltools prints tqdm progress bars and warnings on stderr; keep test output readable."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def _convert(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, precision: str) -> Path:
    """torch.export -> coremltools ML Program (iOS17, float32 I/O) saved at ``path``."""
    ep = torch.export.export(module.eval(), example).run_decompositions({})
    with _quiet():
        ml = ct.convert(
            ep,
            inputs=[
                ct.TensorType(name=f"in{i}", shape=x.shape, dtype=np.float32) for i, x in enumerate(example)
            ],
            minimum_deployment_target=ct.target.iOS17,
            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
            convert_to="mlprogram",
            skip_model_load=True,
        )
        ml.save(str(path))
    return path


# --------------------------------------------------------------------------- (a) toy modules
class ConvToy(nn.Module):
    """(1,3,16,16) -> conv/BN/GELU, strided + depthwise conv, conv-transposes, resizes."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)  # depthwise, stride 2
        self.c3 = nn.Conv2d(8, 12, 1)
        self.bn2 = nn.BatchNorm2d(12)  # after a ReLU: not folded into a conv by the converter
        self.up_dw = nn.ConvTranspose2d(12, 12, 2, stride=2, groups=12)  # nearest-x2 style
        self.up = nn.ConvTranspose2d(12, 6, 3, stride=2, padding=1, output_padding=1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)
            self.bn2.running_mean.uniform_(0.0, 0.5)
            self.bn2.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        y = F.gelu(self.bn(self.c1(x)))  # (1,8,16,16)
        y = self.bn2(torch.relu(self.c3(self.c2(y))))  # (1,12,8,8)
        a = self.up_dw(y)  # (1,12,16,16)
        b = self.up(y)  # (1,6,16,16)
        c = F.interpolate(b, scale_factor=2.0, mode="bilinear", align_corners=False)  # (1,6,32,32)
        d = F.interpolate(y, size=(20, 20), mode="bilinear", align_corners=True)  # (1,12,20,20)
        e = F.interpolate(y, scale_factor=2.0, mode="nearest")  # (1,12,16,16)
        s = torch.sigmoid(a + e) * torch.mean(a, dim=(2, 3), keepdim=True)
        return s, c, d


class AttentionToy(nn.Module):
    """(1,24,32) tokens -> pre-LN attention block with masked softmax, GELU MLP, LayerNorm2d-style norm."""

    def __init__(self, d=32):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.scale = d**-0.5

    def forward(self, x, bias):
        h = self.ln(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        att = torch.softmax(q @ k.transpose(-1, -2) * self.scale + bias, dim=-1)  # bias (1,1,24)
        x = x + self.o(att @ v)
        x = x + self.fc2(F.gelu(self.fc1(x)))
        # LayerNorm2d as written in SAM (decomposed: mean, pow, sqrt, div)
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return (x - u) / torch.sqrt(s + 1e-6)


class ShapeToy(nn.Module):
    """Data movement and exact ops: cat/stack/reshape/permute/slice/pad/where/split/gather/flip/compare."""

    def forward(self, x, idx_src):
        # x (1,4,6,8)
        a = torch.cat([x, x[:, :2] * 2.0], dim=1)  # (1,6,6,8)
        b = a.permute(0, 2, 3, 1).reshape(1, 48, 6)  # (1,48,6)
        c = torch.stack([b[:, ::2], b[:, 1::2]], dim=1)  # (1,2,24,6)
        d = c.repeat(1, 2, 1, 1).squeeze(0)  # (4,24,6)
        e = F.pad(d, (1, 2), value=0.5)  # (4,24,9)
        p, q = torch.split(e, [4, 5], dim=-1)
        w = torch.where(p > 0.1, p, -p)
        g = torch.flip(q, dims=[1]).unsqueeze(0)  # (1,4,24,5)
        idx = (idx_src.abs() * 3).long().clamp(0, 23)  # (5,)
        h = torch.index_select(g, 2, idx)  # (1,4,5,5)
        m = (w.sum(-1) >= 0).float() + (w.amax(-1) < 1.0).float()
        am = torch.argmax(w, dim=-1).float()
        t = torch.cos(h) + torch.sin(h) * torch.clamp(h, -0.5, 0.5) + h.pow(2.0) / (1.0 + h.abs())
        return w, t, m, am


class MiscToy(nn.Module):
    """(1,4,10,10) x (odd multiples of 1/16), (1,4,10,10) positive y -> unary math, rounding ops, pools, instance norm,
    fractional bilinear resize, reductions, logic, gather, einsum, fill."""

    def __init__(self):
        super().__init__()
        self.inorm = nn.InstanceNorm2d(4, affine=True)
        with torch.no_grad():
            self.inorm.weight.uniform_(0.5, 1.5)
            self.inorm.bias.uniform_(-0.2, 0.2)

    def forward(self, x, y):
        a = torch.exp(-x.abs()) + torch.log(y) + torch.rsqrt(y) + torch.tanh(x) + F.silu(x) + torch.erf(x)
        # x holds odd multiples of 1/16 (exact in fp16), so no step below is ever hit or flipped by fp16
        b = torch.floor(x * 3) + torch.ceil(x * 2) + torch.sign(x) + torch.floor_divide(x * 7, 2.0)
        b = b + torch.remainder(x * 5, 3.0) + torch.round(x * 4)
        c = F.relu6(x * 8) + F.leaky_relu(x, 0.1) + torch.square(x) + x / y
        p = F.max_pool2d(x, 2, 2) + F.avg_pool2d(y, 2, 2)  # (1,4,5,5)
        n = self.inorm(x)
        r = F.interpolate(y, size=(15, 13), mode="bilinear", align_corners=False)
        m = torch.amin(x, dim=-1) + torch.logical_and(x > 0, y < 1).float().sum(-1)
        m = (
            m
            + (x != y).float().amax(-1)
            + (x <= 0.2).float().mean(-1)
            + torch.logical_not(x > 0).float().sum(-1)
        )
        m = m + torch.logical_or(x > 1, y > 1).float().sum(-1)
        g = torch.gather(x, 3, (y * 3).long().clamp(0, 9))
        e = torch.einsum("bchw,bcvw->bchv", x, y)
        o = torch.ones_like(x) * x.sum()
        return a, b, c, p, n, r, m, g, e, o, x.narrow(2, 3, 4)


def _toy_cases():
    torch.manual_seed(0)
    return {
        "conv": (ConvToy(), (torch.randn(1, 3, 16, 16),)),
        "attention": (
            AttentionToy(),
            (torch.randn(1, 24, 32), torch.cat([torch.zeros(1, 1, 20), torch.full((1, 1, 4), -1e4)], -1)),
        ),
        "shapes": (ShapeToy(), (torch.randn(1, 4, 6, 8), torch.tensor([0.3, 5.0, 2.2, 7.1, 0.0]))),
        "misc": (
            MiscToy(),
            (torch.round(torch.randn(1, 4, 10, 10) * 8) / 8 + 1 / 16, torch.rand(1, 4, 10, 10) * 2 + 0.1),
        ),
    }


@pytest.fixture(scope="session")
def toy_programs(tmp_path_factory):
    """{(case, precision): (torch outputs, feeds, MILEvaluator)} -- converted once per session."""
    root = tmp_path_factory.mktemp("mil_toys")
    out = {}
    for case, (module, example) in _toy_cases().items():
        module.eval()
        with torch.no_grad():
            ref = module(*example)
        ref = ref if isinstance(ref, tuple) else (ref,)
        feeds = {f"in{i}": x.numpy() for i, x in enumerate(example)}
        for precision in PRECISIONS:
            path = _convert(module, example, root / f"{case}_{precision}.mlpackage", precision)
            out[(case, precision)] = (ref, feeds, MILEvaluator(path))
    return out


# fp32: only summation order differs; fp16: a handful of fp16 roundings on values of scale ~1-5.
TOY_TOL = {"fp32": (2e-5, 0.9999999), "fp16": (1.5e-2, 0.9999)}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", ["conv", "attention", "shapes", "misc"])
def test_toy_matches_torch(toy_programs, case, precision):
    ref, feeds, ev = toy_programs[(case, precision)]
    outs = ev.run(feeds)
    assert len(outs) == len(ref)
    rel_tol, cos_tol = TOY_TOL[precision]
    for name, r in zip(ev.output_specs, ref, strict=True):
        got = outs[name]
        if precision == "fp16" and ev.output_specs[name][1] == np.float16:
            assert got.dtype == np.float16
        c = compare(f"{case}/{name}", r, got.astype(np.float32))
        assert c.rel_max_abs <= rel_tol and c.cosine >= cos_tol, c


def test_toy_programs_cover_the_kernels(toy_programs):
    """Every kernel is exercised by a toy (or a dedicated test), including the ops the real programs use."""
    seen = set()
    for _, _, ev in toy_programs.values():
        seen |= set(ev.op_counts)
    # real prompt decoder / test_resize_bilinear_modes... / test_reciprocal_converts_to_inverse...
    # / test_compression_ops.py (constexpr decompression, quantize/dequantize)
    tested_elsewhere = {"equal", "resize_bilinear", "inverse", *COMPRESSION_KERNELS}
    untested = (set(KERNELS) | VALUE_INFERENCE_OPS) - seen - tested_elsewhere
    assert not untested, f"kernels without a test: {sorted(untested)}"
    real_program_ops = {
        "add", "batch_norm", "cast", "concat", "conv", "conv_transpose", "cos", "equal", "expand_dims",
        "fill_like", "gelu", "greater", "layer_norm", "linear", "matmul", "mul", "pad", "pow", "real_div",
        "reduce_mean", "relu", "reshape", "select", "sigmoid", "sin", "slice_by_index", "softmax", "sqrt",
        "stack", "sub", "tile", "transpose", "upsample_bilinear",
    }  # fmt: skip
    assert real_program_ops <= set(KERNELS) | VALUE_INFERENCE_OPS
    missing = real_program_ops - seen - tested_elsewhere
    assert not missing, f"ops of the real programs not exercised by a toy: {sorted(missing)}"


def test_fp16_program_carries_fp16_between_ops(tmp_path):
    """x + 1e-4 - x is 0 in an fp16 program (1e-4 < half an ulp of 1); x * 1e3 overflows to inf."""

    class M(nn.Module):
        def forward(self, x):
            return (x + 1e-4) - x, x * 1000.0

    x = torch.tensor([[1.0, 100.0, 2.0]])
    evs = {p: MILEvaluator(_convert(M(), (x,), tmp_path / f"m_{p}.mlpackage", p)) for p in PRECISIONS}
    small32, big32 = (evs["fp32"].run({"in0": x.numpy()})[n] for n in evs["fp32"].output_specs)
    small16, big16 = (evs["fp16"].run({"in0": x.numpy()})[n] for n in evs["fp16"].output_specs)
    assert np.all(small32 > 0) and np.all(np.isfinite(big32))
    assert np.all(small16 == 0)
    assert np.isinf(big16[0, 1]) and big16[0, 0] == 1000.0
    rep = evs["fp16"].last_report
    assert [o[1] for o in rep.fp16_overflow] == ["mul"] and rep.fp16_overflow[0][3] == pytest.approx(1e5)
    assert rep.nonfinite and rep.nonfinite[0][1] == "mul"


def test_evaluator_exposes_silent_conversion_change(tmp_path):
    """coremltools 9.0 drops ``approximate="tanh"`` of ``F.gelu`` on the torch.export path (the
    kwarg is not read), so the program computes exact GELU. The evaluator follows the *program*,
    which is the point: it reports what the package computes, not what the source meant."""

    class M(nn.Module):
        def forward(self, x):
            return F.gelu(x, approximate="tanh")

    x = torch.linspace(-4, 4, 64).reshape(1, 64)
    ev = MILEvaluator(_convert(M(), (x,), tmp_path / "g.mlpackage", "fp32"))
    (mode,) = [op.mode.val for op in ev.ops if op.op_type == "gelu"]
    (got,) = ev.run({"in0": x.numpy()}).values()
    expected = F.gelu(x, approximate="tanh" if mode == "TANH_APPROXIMATION" else "none")
    assert np.abs(got - expected.numpy()).max() < 1e-6
    if mode == "EXACT":  # the upstream bug is present: torch and the package disagree by ~5e-4
        assert np.abs(got - M()(x).numpy()).max() > 1e-4


def test_resize_bilinear_modes_match_mil_documentation():
    """``resize_bilinear`` sample positions on input [0, 1] equal the grids in the MIL docs."""
    from coremltools.converters.mil.mil import Builder as mb

    documented = {  # (sampling mode, output width): grid points, from resize_bilinear's docstring
        ("UNALIGN_CORNERS", 5): [0.0, 0.1, 0.5, 0.9, 1.0],
        ("ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
        ("DEFAULT", 5): [0.0, 0.4, 0.8, 1.0, 1.0],
        ("OFFSET_CORNERS", 5): [0.1, 0.3, 0.5, 0.7, 0.9],
        ("UNALIGN_CORNERS", 6): [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0],
        ("STRICT_ALIGN_CORNERS", 6): [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        ("DEFAULT", 6): [0.0, 1 / 3, 2 / 3, 1.0, 1.0, 1.0],
        ("OFFSET_CORNERS", 6): [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12],
    }

    def program(mode: str, w: int):
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, 1, 2))], opset_version=ct.target.iOS17)
        def prog(x):
            return mb.resize_bilinear(x=x, target_size_height=1, target_size_width=w, sampling_mode=mode)

        return prog

    for (mode, w), grid in documented.items():
        ev = MILEvaluator(program(mode, w))
        (got,) = ev.run({"x": np.array([[[0.0, 1.0]]], dtype=np.float32)}).values()
        np.testing.assert_allclose(got.reshape(-1), grid, atol=1e-6, err_msg=mode)


def test_reciprocal_converts_to_inverse_with_epsilon(tmp_path):
    """``torch.reciprocal`` becomes MIL ``inverse(x, epsilon=1e-4)``, i.e. 1 / (x + 1e-4): the evaluator
    computes what the program says (0.1% off torch at x = 0.1)."""

    class M(nn.Module):
        def forward(self, x):
            return torch.reciprocal(x)

    x = torch.tensor([[0.1, 1.0, 3.0]])
    ev = MILEvaluator(_convert(M(), (x,), tmp_path / "r.mlpackage", "fp32"))
    (op,) = [op for op in ev.ops if op.op_type == "inverse"]
    eps = float(op.epsilon.val)
    (got,) = ev.run({"in0": x.numpy()}).values()
    np.testing.assert_allclose(got, 1.0 / (x.numpy() + eps), rtol=1e-6)


# --------------------------------------------------------------------------- (b) unknown op
def test_unknown_op_fails_with_type_name_and_location(tmp_path):
    from coremltools.converters.mil.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 8, 8))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.relu(x=x, name="first_relu")
        return mb.local_response_norm(x=y, size=3, name="my_lrn")

    with _quiet():
        ml = ct.convert(
            prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, skip_model_load=True
        )
        ml.save(str(tmp_path / "lrn.mlpackage"))
    for source in (prog, tmp_path / "lrn.mlpackage"):
        with pytest.raises(UnsupportedMILOpError) as info:
            MILEvaluator(source)
        e = info.value
        assert e.op_type == "local_response_norm" and "my_lrn" in e.op_name
        assert "local_response_norm" in str(e) and "my_lrn" in str(e) and "block 0, op #" in str(e)


def test_load_mil_program_rejects_non_program(tmp_path):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    b = NeuralNetworkBuilder([("x", datatypes.Array(2))], [("y", datatypes.Array(2))])
    b.add_activation("relu", "RELU", "x", "y")
    path = tmp_path / "nn.mlmodel"
    with _quiet():
        ct.models.MLModel(b.spec, skip_model_load=True).save(str(path))
    with pytest.raises(ValueError, match="not an ML Program"):
        load_mil_program(path)


# --------------------------------------------------------------------------- (c) real submodules
KINDS = {
    "image_encoder": {"feat_s0": "features", "feat_s1": "features", "vis": "features"},
    "prompt_decoder": {"masks": "logits", "iou": "scores", "obj_logit": "scores", "ptr_all": "features"},
    "memory_encoder": {"mem": "memory"},
    "memory_attention": {"pix": "features"},
}


@pytest.fixture(scope="session")
def edgetam_modules():
    from edgetam_export.models import build_edgetam, export_submodules

    return export_submodules(build_edgetam())


@pytest.fixture(scope="session")
def realistic_feeds(edgetam_modules, frame_tensor):
    """{graph: (inputs tuple, torch reference outputs)} on one chained track step of frame 0.

    image_encoder(procedural frame 0) -> prompt_decoder(one click, no memory) ->
    memory_encoder(vis, best mask logits, sigmoid path) -> memory_attention(vis, bank with that
    memory as the conditioning slot + 2 more slots, 3 object pointers from the decoder).
    """
    m = edgetam_modules
    out = {}
    with torch.no_grad():
        img = (frame_tensor(0),)
        feat_s0, feat_s1, vis = m["image_encoder"](*img)
        out["image_encoder"] = (img, (feat_s0, feat_s1, vis))

        pd = list(m["prompt_decoder"].example_inputs())
        pd[0], pd[1], pd[2], pd[3] = vis, torch.ones(1, 1), feat_s0, feat_s1
        pd = tuple(pd)
        masks, iou, obj, ptr_all = m["prompt_decoder"](*pd)
        out["prompt_decoder"] = (pd, (masks, iou, obj, ptr_all))

        best = int(torch.argmax(iou[0]))
        me = (vis, masks[:, best : best + 1].contiguous(), torch.zeros(1, 1))
        (mem,) = m["memory_encoder"](*me)
        out["memory_encoder"] = (me, (mem,))

        ma = list(m["memory_attention"].example_inputs())  # bank layout, tpos, validity flags
        s = ma[4].shape[1]
        bank = ma[1].reshape(1, s, 512, 64).clone()
        bank[:, 0] = mem[0]
        ptr = ma[3].clone()
        ptr[:, 0] = ptr_all[:, best]
        ma[0], ma[1], ma[3] = vis, bank.reshape(1, s * 512, 64), ptr
        ma = tuple(ma)
        out["memory_attention"] = (ma, m["memory_attention"](*ma))
    return out


@pytest.fixture(scope="session")
def coreml_packages(exported_bundles):
    """``get(graph, precision) -> .mlpackage path`` from the session's shared Core ML export
    (``exported_bundles["coreml"]``: the project's Core ML exporter, salt 0, fp32 and fp16)."""
    bundle = exported_bundles["coreml"]

    def get(graph: str, precision: str) -> Path:
        return bundle.root / bundle.artifact("coreml", graph, precision)["path"]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("graph", list(KINDS))
def test_real_submodule_matches_pytorch(
    graph, precision, coreml_packages, realistic_feeds, edgetam_modules, parity
):
    inputs, ref = realistic_feeds[graph]
    contract = edgetam_modules[graph].contract
    ev = MILEvaluator(coreml_packages(graph, precision), num_threads=2)
    assert ev.precision == precision
    assert list(ev.input_specs) == contract.input_names
    t0 = time.perf_counter()
    outs = ev.run({n: x.numpy() for n, x in zip(contract.input_names, inputs, strict=True)})
    seconds = time.perf_counter() - t0
    print(
        f"\n{graph} {precision}: evaluator {seconds:.2f}s, fp16 headroom {ev.last_report.fp16_headroom:.3g}"
    )
    assert not ev.last_report.fp16_overflow and not ev.last_report.nonfinite
    for name, r in zip(contract.output_names, ref, strict=True):
        parity.check(
            f"{graph}.{name}", r, outs[name].astype(np.float32), "coreml", precision, KINDS[graph][name]
        )


def test_coreml_runtime_from_mapping(coreml_packages, realistic_feeds, edgetam_modules):
    from edgetam_export.runtime.coreml_runtime import CoreMLRuntime

    graph = "memory_encoder"
    contract = edgetam_modules[graph].contract
    rt = CoreMLRuntime({graph: coreml_packages(graph, "fp32")}, contracts={graph: contract.as_dict()})
    assert rt.engine == "mil-evaluator" and rt.name == "coreml-mil-evaluator" and rt.backend == "coreml"
    inputs, ref = realistic_feeds[graph]
    outs = rt.run(graph, {n: x.numpy() for n, x in zip(contract.input_names, inputs, strict=True)})
    assert rt.precision == "fp32" and outs["mem"].dtype == np.float32
    assert compare("mem", ref[0], outs["mem"]).rel_max_abs < 1e-4
    assert rt.describe()["engine"] == "mil-evaluator"
    with pytest.raises(ValueError, match="contracts"):
        CoreMLRuntime({graph: coreml_packages(graph, "fp32")})
    with pytest.raises(ValueError, match="missing inputs"):
        rt.run(graph, {"vis": inputs[0].numpy()})


@pytest.mark.slow
def test_coreml_runtime_from_bundle(tmp_path, realistic_feeds, parity):
    """export_bundle(coreml, memory_encoder only) -> runtime_from_bundle picks CoreMLRuntime (fp16)."""
    from edgetam_export.bundle import export_bundle
    from edgetam_export.runtime.loader import runtime_from_bundle

    with _quiet():
        export_bundle(tmp_path / "b", ["coreml"], graphs=["memory_encoder"], precisions=["fp16"])
    rt = runtime_from_bundle(tmp_path / "b")
    assert type(rt).__name__ == "CoreMLRuntime" and rt.engine == "mil-evaluator" and rt.precision == "fp16"
    assert set(rt.constants) >= {"no_obj_ptr", "mask_downsample_weight"}
    inputs, ref = realistic_feeds["memory_encoder"]
    names = rt.contracts["memory_encoder"].input_names
    outs = rt.run("memory_encoder", {n: x.numpy() for n, x in zip(names, inputs, strict=True)})
    parity.check("bundle.memory_encoder.mem", ref[0], outs["mem"], "coreml", "fp16", "memory")
