"""Kernels of the MIL evaluator for compressed programs: the constexpr weight-decompression ops and activation quantize/dequantize.

These are the ops ``coremltools.optimize.coreml`` writes into a program:

* ``linear_quantize_weights``: ``constexpr_affine_dequantize`` (iOS16/17 targets) or
  ``constexpr_blockwise_shift_scale`` (iOS18) -- ``w = scale * (q - zero_point)``;
* ``palettize_weights``: ``constexpr_lut_to_dense`` -- ``w = lut[index]`` (iOS16/17: one LUT per
  tensor, indices bit-packed LSB first; iOS18: one LUT per block, unpacked indices);
* ``linear_quantize_activations`` (W8A8, iOS17+): ``quantize`` / ``dequantize`` pairs around
  conv/linear/add inputs.

Precision: each kernel computes in fp32 (int8 codes and fp16 scales/LUT entries are exact in
fp32) and the evaluator rounds the result once to the op's declared dtype, i.e. the fp16 weight
a device materializes. ``quantize`` divides in fp32 and rounds half to even (``np.around``, as
coremltools' reference), then clips to the integer range. Each kernel is checked against
coremltools' own ``decompress`` / ``value_inference`` in tests/coreml_mil/test_compression_ops.py.

The constexpr ops depend only on constants; the evaluator computes them on the first run and
caches their outputs (see :class:`~edgetam_export.coreml_mil.evaluator.MILEvaluator`).
"""

from __future__ import annotations

import numpy as np

from .values import OpInputs

__all__ = ["COMPRESSION_KERNELS", "CONSTEXPR_PREFIX"]

CONSTEXPR_PREFIX = "constexpr_"

_INT_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


def _along(param, rank: int, axis) -> np.ndarray:
    """Scalar or vector ``param`` (fp32) shaped to broadcast against a rank-``rank`` tensor along ``axis``."""
    p = np.asarray(param, dtype=np.float32)
    if p.ndim == 0 or p.ndim == rank:
        return p
    if p.ndim != 1 or axis is None:
        raise NotImplementedError(f"scale/zero_point of rank {p.ndim} for data of rank {rank}")
    shape = [1] * rank
    shape[int(axis) % rank] = -1
    return p.reshape(shape)


def _affine_dequantize(op, a: OpInputs):
    """``constexpr_affine_dequantize(quantized_data (int8|uint8), zero_point, scale, axis)`` -> ``scale * (q - zp)``."""
    q = np.asarray(a["quantized_data"])
    axis = a.scalar("axis")
    zp = _along(a["zero_point"], q.ndim, axis)
    return _along(a["scale"], q.ndim, axis) * (q.astype(np.float32) - zp)


def _blockwise_repeat(param, shape) -> np.ndarray:
    """Repeat each entry of a per-block ``param`` (same rank as the data) over its block."""
    p = np.asarray(param, dtype=np.float32)
    for axis, (n, b) in enumerate(zip(shape, p.shape, strict=True)):
        if b != n:
            p = np.repeat(p, n // b, axis=axis)
    return p


def _blockwise_shift_scale(op, a: OpInputs):
    """``constexpr_blockwise_shift_scale(data (int4/8|uint4/8), scale, offset)`` (iOS18) -> ``scale * (data - offset)`` per block."""
    data = np.asarray(a["data"]).astype(np.float32)
    if a.get("offset") is not None:
        data = data - _blockwise_repeat(a["offset"], data.shape)
    return _blockwise_repeat(a["scale"], data.shape) * data


def _unpack_lsb_first(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """``count`` ``nbits``-bit unsigned indices packed LSB first into bytes (MIL's bit order)."""
    bits = np.unpackbits(np.asarray(packed).astype(np.uint8), bitorder="little")[: count * nbits]
    weights = (1 << np.arange(nbits, dtype=np.int64)).astype(np.int64)
    return bits.reshape(count, nbits).astype(np.int64) @ weights


def _lut_to_dense(op, a: OpInputs):
    """``constexpr_lut_to_dense``.

    iOS16/17 form ``(indices uint8[M] packed, lut [2**n], shape)``: one palette per tensor.
    iOS18 form ``(indices uintN[shape], lut [*blocks, 2**n, V], vector_axis)``: one palette per
    block; vector palettes (``V > 1``) are not used by this project and raise NotImplementedError.
    """
    lut = np.asarray(a["lut"]).astype(np.float32)
    if a.get("shape") is not None:  # iOS16 signature
        shape = [int(s) for s in np.asarray(a["shape"]).reshape(-1)]
        nbits = int(np.log2(lut.size))
        idx = _unpack_lsb_first(a["indices"], nbits, int(np.prod(shape)))
        return lut.reshape(-1)[idx].reshape(shape)
    if lut.shape[-1] != 1:
        raise NotImplementedError(f"vector palettization (vector size {lut.shape[-1]})")
    idx = np.asarray(a["indices"]).astype(np.int64)
    palettes = lut[..., 0]  # (*blocks, P)
    blocks = palettes.shape[:-1]
    block_id = np.zeros((1,) * idx.ndim, dtype=np.int64)
    for axis, (n, b) in enumerate(zip(idx.shape, blocks, strict=True)):
        coord = np.arange(n) // (n // b)
        shape = [1] * idx.ndim
        shape[axis] = n
        block_id = block_id * b + coord.reshape(shape)
    return palettes.reshape(-1, palettes.shape[-1])[block_id, idx]


def _quantize(op, a: OpInputs):
    """``quantize(input, zero_point?, scale, output_dtype, axis?)`` -> ``clip(round(x / scale) + zp)`` (ties to even)."""
    x = np.asarray(a["input"], dtype=np.float32)
    axis = a.scalar("axis")
    out = np.dtype(str(a.val("output_dtype")))
    lo, hi = _INT_RANGES[out]
    q = np.around(x / _along(a["scale"], x.ndim, axis))
    if a.get("zero_point") is not None:
        q = q + _along(a["zero_point"], x.ndim, axis)
    return np.clip(q, lo, hi).astype(out)


def _dequantize(op, a: OpInputs):
    """``dequantize(input (int8|uint8), zero_point?, scale, axis?)`` -> ``scale * (q - zp)``."""
    q = np.asarray(a["input"]).astype(np.float32)
    axis = a.scalar("axis")
    if a.get("zero_point") is not None:
        q = q - _along(a["zero_point"], q.ndim, axis)
    return _along(a["scale"], q.ndim, axis) * q


COMPRESSION_KERNELS = {
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale,
    "constexpr_lut_to_dense": _lut_to_dense,
    "quantize": _quantize,
    "dequantize": _dequantize,
}
