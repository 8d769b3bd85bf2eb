"""The MIL evaluator's compression kernels against coremltools' own semantics.

(a) each kernel (constexpr_affine_dequantize, constexpr_blockwise_shift_scale, both forms of
    constexpr_lut_to_dense, quantize, dequantize) against coremltools' ``decompress`` /
    numpy reference on random data, after the evaluator's rounding to the declared dtype;
(b) a toy conv + linear program compressed with each coremltools.optimize scheme runs through the
    evaluator and matches the same program with coremltools' ``decompress_weights`` (dense fp16
    weights) bit for bit, and the W8A8 program stays within int8 error of the fp16 one.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

ct = pytest.importorskip("coremltools")

from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops as ios16  # noqa: E402
from coremltools.converters.mil.mil.ops.defs.iOS18 import compression as ios18  # noqa: E402
from coremltools.optimize import _utils as cto_utils  # noqa: E402
from edgetam_export.exporters.coreml_quant import compress_mlmodel  # noqa: E402
from edgetam_export.exporters.quantization import GraphQuant  # noqa: E402

from edgetam_export.coreml_mil.compression_ops import COMPRESSION_KERNELS  # noqa: E402
from edgetam_export.coreml_mil.evaluator import MILEvaluator, program_from_mlmodel  # noqa: E402
from edgetam_export.coreml_mil.values import OpInputs  # noqa: E402
from edgetam_export.verify.metrics import compare  # noqa: E402

RNG = np.random.default_rng(0)


def _run(op_type: str, dtype, **inputs) -> np.ndarray:
    """Kernel output rounded to ``dtype`` as the evaluator stores it."""
    out = COMPRESSION_KERNELS[op_type](None, OpInputs(inputs))
    return np.asarray(out).astype(dtype)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("qdtype", [np.int8, np.uint8])
def test_affine_dequantize_matches_coremltools(axis, qdtype):
    info = np.iinfo(qdtype)
    q = RNG.integers(info.min, info.max + 1, size=(6, 5, 3), dtype=qdtype)
    scale = RNG.uniform(1e-3, 2e-2, size=q.shape[axis]).astype(np.float16)
    zp = RNG.integers(info.min, info.max + 1, size=q.shape[axis], dtype=qdtype)
    ref = ios16.constexpr_affine_dequantize.decompress(q, zp, scale, axis)
    got = _run(
        "constexpr_affine_dequantize", np.float16, quantized_data=q, zero_point=zp, scale=scale, axis=axis
    )
    assert ref.dtype == np.float16 and np.array_equal(got, ref)
    # scalar scale / zero point (per-tensor)
    ref = ios16.constexpr_affine_dequantize.decompress(q, zp[:1].reshape(()), scale[:1].reshape(()), axis)
    got = _run(
        "constexpr_affine_dequantize",
        np.float16,
        quantized_data=q,
        zero_point=zp[0],
        scale=scale[0],
        axis=axis,
    )
    assert np.array_equal(got, ref)


def test_blockwise_shift_scale_matches_coremltools():
    data = RNG.integers(-8, 8, size=(8, 12), dtype=np.int8)  # int4 codes stored in int8
    scale = RNG.uniform(0.01, 0.1, size=(8, 3)).astype(np.float16)  # blocks of 4 along axis 1
    offset = RNG.integers(-2, 3, size=(8, 3)).astype(np.int8)
    ref = ios18.constexpr_blockwise_shift_scale.decompress(data, scale, offset)
    got = _run("constexpr_blockwise_shift_scale", np.float16, data=data, scale=scale, offset=offset)
    assert np.array_equal(got, ref.astype(np.float16))
    ref = ios18.constexpr_blockwise_shift_scale.decompress(data, scale, None)
    got = _run("constexpr_blockwise_shift_scale", np.float16, data=data, scale=scale, offset=None)
    assert np.array_equal(got, ref.astype(np.float16))


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6, 8])
def test_lut_to_dense_ios16_unpacks_like_coremltools(nbits):
    shape = np.array([7, 3, 5], dtype=np.uint32)  # 105 elements: indices straddle byte boundaries
    idx = RNG.integers(0, 2**nbits, size=int(np.prod(shape)), dtype=np.uint8)
    packed = cto_utils.pack_elements_into_bits(idx, nbits)
    lut = RNG.normal(size=2**nbits).astype(np.float16)
    ref = ios16.constexpr_lut_to_dense.decompress(lut, packed, shape)
    got = _run("constexpr_lut_to_dense", np.float16, indices=packed, lut=lut, shape=shape)
    assert np.array_equal(got, ref)
    assert np.array_equal(got.reshape(-1), lut[idx])  # and against the plain definition


def test_lut_to_dense_ios18_per_block_palettes():
    idx = RNG.integers(0, 16, size=(6, 8), dtype=np.uint8)
    lut = RNG.normal(size=(3, 2, 16, 1)).astype(np.float16)  # 3 x 2 blocks of (2, 4) elements
    ref = ios18.constexpr_lut_to_dense.decompress(idx, lut, None)
    got = _run("constexpr_lut_to_dense", np.float16, indices=idx, lut=lut, vector_axis=None)
    assert np.array_equal(got, ref)
    with pytest.raises(NotImplementedError, match="vector"):
        _run(
            "constexpr_lut_to_dense",
            np.float16,
            indices=idx[:, :4],
            lut=np.zeros((3, 2, 16, 2)),
            vector_axis=1,
        )


@pytest.mark.parametrize("out_dtype", ["int8", "uint8"])
def test_quantize_dequantize_match_coremltools(out_dtype):
    dt = np.dtype(out_dtype)
    scale = np.float32(0.0625)  # a power of two: the ties below are exact
    zp = np.array(0 if dt == np.int8 else 128, dtype=dt)
    x = RNG.normal(scale=3.0, size=(2, 40)).astype(np.float32)
    x[0, :8] = scale * (np.arange(8) - 3.5)  # exact ties: round half to even
    x[0, 8:10] = [-0.1, 0.1]  # not ties
    x[1, :2] = [1e3, -1e3]  # clipped
    ref_q = cto_utils.quantize_by_scale_and_zp(x, scale, zp, out_dtype)
    got_q = _run("quantize", dt, input=x, scale=scale, zero_point=zp, output_dtype=out_dtype, axis=None)
    assert got_q.dtype == dt and np.array_equal(got_q, ref_q)
    ref_d = cto_utils.dequantize_by_scale_and_zp(ref_q, scale, zp)
    got_d = _run("dequantize", np.float32, input=got_q, scale=scale, zero_point=zp, axis=None)
    assert np.array_equal(got_d, ref_d)
    # per-channel along axis 0, no zero point (symmetric)
    s2 = np.array([0.05, 0.2], dtype=np.float32)
    ref_q = cto_utils.quantize_by_scale_and_zp(x, s2.reshape(2, 1), None, "int8")
    got_q = _run("quantize", np.int8, input=x, scale=s2, zero_point=None, output_dtype="int8", axis=0)
    assert np.array_equal(got_q, ref_q)


# --------------------------------------------------------------------------- (b) whole programs
class Toy(nn.Module):
    """(1, 8, 12, 12) -> conv 3x3 (8->32) -> GELU -> conv 1x1 (32->96) -> tokens (1, 144, 96) -> linear + skip.

    All three weights have >= 2048 elements, so every scheme compresses all three.
    """

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(8, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 96, 1)
        self.fc = nn.Linear(96, 96)

    def forward(self, x):
        t = self.c2(torch.nn.functional.gelu(self.c1(x))).flatten(2).transpose(1, 2)
        return self.fc(t) + t


@pytest.fixture(scope="module")
def toy_fp16():
    ep = torch.export.export(Toy().eval(), (torch.randn(1, 8, 12, 12),)).run_decompositions({})
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return ct.convert(
            ep,
            inputs=[ct.TensorType(name="x", shape=(1, 8, 12, 12), dtype=np.float32)],
            minimum_deployment_target=ct.target.iOS17,
            compute_precision=ct.precision.FLOAT16,
            convert_to="mlprogram",
            skip_model_load=True,
        )


def _evaluate(mlmodel, feeds):
    ev = MILEvaluator(program_from_mlmodel(mlmodel)[0])
    return ev, next(iter(ev.run(feeds).values())).astype(np.float32)


@pytest.mark.parametrize(
    ("scheme", "op"),
    [("int8_weights", "constexpr_affine_dequantize"), ("palettize4", "constexpr_lut_to_dense")],
)
def test_compressed_program_equals_coremltools_decompression(toy_fp16, scheme, op):
    """Evaluator(compressed program) == evaluator(coremltools.decompress_weights(program)), bit for bit."""
    from coremltools.optimize.coreml import decompress_weights

    feeds = {"x": RNG.normal(size=(1, 8, 12, 12)).astype(np.float32)}
    small, notes = compress_mlmodel(toy_fp16, GraphQuant(scheme))
    assert notes["quant_scheme"] == scheme
    ev, got = _evaluate(small, feeds)
    assert ev.op_counts[op] == 3  # both conv weights and the linear weight (>= 2048 elements each)
    with contextlib.redirect_stderr(io.StringIO()):
        dense = decompress_weights(small)
    _, ref = _evaluate(dense, feeds)
    assert np.array_equal(got, ref)
    _, fp16 = _evaluate(toy_fp16, feeds)
    assert not np.array_equal(got, fp16)  # the compression is really there


def test_w8a8_program_quantizes_activations(toy_fp16):
    from edgetam_export.coreml_mil.calibration import activation_ranges

    samples = [{"x": RNG.normal(size=(1, 8, 12, 12)).astype(np.float32)} for _ in range(3)]
    stats = activation_ranges(toy_fp16, samples)
    assert stats["x"]["rmin"] == min(float(s["x"].min()) for s in samples)  # min over *all* samples
    small, notes = compress_mlmodel(toy_fp16, GraphQuant("w8a8"), samples)
    assert notes["calibration_samples"] == 3
    ev, got = _evaluate(small, samples[0])
    assert ev.op_counts["quantize"] >= 3 and ev.op_counts["dequantize"] >= 3
    assert ev.op_counts["constexpr_affine_dequantize"] == 3
    _, fp16 = _evaluate(toy_fp16, samples[0])
    c = compare("toy", fp16, got)
    # int8 activations + weights on 3 layers: ~1% relative error expected (127 levels per tensor)
    assert c.cosine > 0.999 and 1e-4 < c.rel_max_abs < 0.05, c
    with pytest.raises(ValueError, match="calibration samples"):
        compress_mlmodel(toy_fp16, GraphQuant("w8a8"), [])
