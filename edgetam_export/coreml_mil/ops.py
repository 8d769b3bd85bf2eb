"""Numerical kernels of the MIL evaluator (see :mod:`edgetam_export.coreml_mil.evaluator`).

Every kernel takes the op (for its declared types) and an :class:`OpInputs` view of its input
values, and returns its output(s) in *compute precision*; the evaluator then rounds each output to
the op's declared output dtype (fp16 or fp32), which is where the fp16 storage of a Core ML fp16
program is modelled.

Precision model (what "compute precision" means here):

* Floating-point kernels compute in **fp32** whatever the declared dtype: fp16 inputs are upcast
  (exactly), the op is evaluated in fp32 (torch on the CPU), and the result is rounded once to
  the declared dtype (round-to-nearest-even, overflow to +-inf). For elementwise ops this is the
  correctly rounded fp16 result. For the *accumulating* ops -- ``conv``, ``conv_transpose``,
  ``matmul``, ``linear``, ``reduce_*``, ``softmax``, ``layer_norm``, ``batch_norm``,
  ``instance_norm`` and the bilinear resizes -- it means fp32 accumulation followed by a single
  fp16 rounding of the output. This is the standard mixed-precision contract of Apple's GPU and
  Neural Engine kernels (fp16 storage, wider accumulators); a device kernel that accumulates in
  fp16 would be *less* accurate than this model. See docs/COREML_EVALUATOR.md.
* Integer and boolean ops compute exactly in numpy.
* Compressed programs (``coremltools.optimize``): the constexpr weight-decompression ops and
  ``quantize``/``dequantize`` live in :mod:`edgetam_export.coreml_mil.compression_ops`.
* Data-movement ops (reshape, transpose, slicing, concat, tile, pad, select, ...) and exact
  comparisons reuse coremltools' own ``value_inference`` implementations (numpy), listed in
  :data:`VALUE_INFERENCE_OPS`; they cannot change values, only move them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .compression_ops import COMPRESSION_KERNELS
from .resize_ops import RESIZE_KERNELS
from .values import OpInputs

__all__ = ["KERNELS", "VALUE_INFERENCE_OPS", "OpInputs"]

# Ops whose coremltools ``value_inference`` (numpy) is used as the kernel. They move or select
# values (or compare them exactly), so precision is not at stake; each is exercised by
# tests/coreml_mil/test_evaluator.py against PyTorch.
VALUE_INFERENCE_OPS = frozenset(
    {
        "concat",
        "expand_dims",
        "fill_like",
        "gather",
        "gather_along_axis",
        "pad",
        "reshape",
        "reverse",
        "select",
        "slice_by_index",
        "split",
        "squeeze",
        "stack",
        "tile",
        "transpose",
        # exact comparisons / logic on already-rounded values -> bool
        "equal",
        "not_equal",
        "greater",
        "greater_equal",
        "less",
        "less_equal",
        "logical_and",
        "logical_not",
        "logical_or",
        "reduce_argmax",
    }
)


def _is_float_out(op) -> bool:
    from coremltools.converters.mil.mil import types

    return types.is_float(op.outputs[0].dtype)


# --------------------------------------------------------------------------- elementwise
def _binary(fn_float: Callable, fn_np: Callable) -> Callable:
    def kernel(op, a: OpInputs):
        if _is_float_out(op):
            return fn_float(a.t("x"), a.t("y"))
        return fn_np(np.asarray(a["x"]), np.asarray(a["y"]))

    return kernel


def _unary(fn: Callable) -> Callable:
    def kernel(op, a: OpInputs):
        return fn(a.t("x"))

    return kernel


def _with_eps(fn: Callable) -> Callable:
    """Unary ops with an ``epsilon`` input: ``fn(x + epsilon)`` (rsqrt, inverse, log)."""

    def kernel(op, a: OpInputs):
        eps = a.scalar("epsilon", 0.0)
        return fn(a.t("x") + eps)

    return kernel


def _gelu(op, a: OpInputs):
    x = a.t("x")
    mode = a.val("mode", "EXACT")
    if mode == "EXACT":
        return F.gelu(x)
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise NotImplementedError(f"gelu mode {mode!r}")


def _clip(op, a: OpInputs):
    return torch.clamp(a.t("x"), a.scalar("alpha"), a.scalar("beta"))


def _leaky_relu(op, a: OpInputs):
    return F.leaky_relu(a.t("x"), a.scalar("alpha", 0.01))


def _cast(op, a: OpInputs):
    """``cast``: the evaluator's output rounding does the conversion (fp32<->fp16 RNE, float->int truncation)."""
    x = np.asarray(a["x"])
    from coremltools.converters.mil.mil import types

    target = types.nptype_from_builtin(op.outputs[0].dtype)
    if np.issubdtype(target, np.integer) and np.issubdtype(x.dtype, np.floating):
        return np.trunc(x.astype(np.float64)).astype(target)
    if target == np.bool_:
        return x != 0
    return x


# --------------------------------------------------------------------------- linear algebra
def _matmul(op, a: OpInputs):
    """``matmul(x, y, transpose_x, transpose_y)``: numpy broadcasting semantics; fp32 accumulation."""
    x, y = a.t("x"), a.t("y")
    if a.val("transpose_x", False) and x.dim() >= 2:
        x = x.transpose(-1, -2)
    if a.val("transpose_y", False) and y.dim() >= 2:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


def _linear(op, a: OpInputs):
    """``linear(x (*, D_in), weight (D_out, D_in), bias (D_out,))`` -> (*, D_out); fp32 accumulation."""
    return F.linear(a.t("x"), a.t("weight"), a.t("bias"))


# --------------------------------------------------------------------------- convolutions
def _same_pads(in_sizes, kernel, strides, dilations, lower: bool) -> list[int]:
    pads = []
    for n, k, s, d in zip(in_sizes, kernel, strides, dilations, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        before = -(-total // 2) if lower else total // 2
        pads += [before, total - before]
    return pads


def _conv(op, a: OpInputs):
    """``conv(x (N, C_in, *D), weight (C_out, C_in/groups, *K), bias (C_out,))``; fp32 accumulation."""
    x, w, b = a.t("x"), a.t("weight"), a.t("bias")
    nd = x.dim() - 2
    strides = a.ints("strides", [1] * nd)
    dil = a.ints("dilations", [1] * nd)
    groups = int(a.scalar("groups", 1))
    pad_type = a.val("pad_type", "valid")
    if pad_type == "valid":
        pads = [0] * (2 * nd)
    elif pad_type == "custom":
        pads = a.ints("pad", [0] * (2 * nd))
    elif pad_type in ("same", "same_lower"):
        pads = _same_pads(x.shape[2:], w.shape[2:], strides, dil, pad_type == "same_lower")
    else:
        raise NotImplementedError(f"conv pad_type {pad_type!r}")
    if all(pads[2 * i] == pads[2 * i + 1] for i in range(nd)):
        padding = [pads[2 * i] for i in range(nd)]
    else:  # asymmetric: pad explicitly (F.pad takes the last dimension first)
        x = F.pad(x, [p for i in reversed(range(nd)) for p in (pads[2 * i], pads[2 * i + 1])])
        padding = [0] * nd
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(x, w, b, stride=strides, padding=padding, dilation=dil, groups=groups)


def _conv_transpose(op, a: OpInputs):
    """``conv_transpose(x (N, C_in, *D), weight (C_in, C_out/groups, *K), bias)``; fp32 accumulation.

    Computes the full ('valid') transposed convolution, then crops ``pad`` (or the 'same'
    split) and zero-extends to ``output_shape`` if given, then adds the bias.
    """
    x, w, b = a.t("x"), a.t("weight"), a.t("bias")
    nd = x.dim() - 2
    strides = a.ints("strides", [1] * nd)
    dil = a.ints("dilations", [1] * nd)
    groups = int(a.scalar("groups", 1))
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    full = fn(x, w, None, stride=strides, dilation=dil, groups=groups)
    pad_type = a.val("pad_type", "valid")
    in_sizes = x.shape[2:]
    full_sizes = full.shape[2:]
    if pad_type == "custom":
        pads = a.ints("pad", [0] * (2 * nd))
    elif pad_type == "valid":
        pads = [0] * (2 * nd)
    elif pad_type == "same":
        pads = []
        for n, f, s in zip(in_sizes, full_sizes, strides, strict=True):
            total = f - n * s
            pads += [total // 2, total - total // 2]
    else:
        raise NotImplementedError(f"conv_transpose pad_type {pad_type!r}")
    target = [f - pads[2 * i] - pads[2 * i + 1] for i, f in enumerate(full_sizes)]
    out_shape = a.ints("output_shape")
    if out_shape is not None:
        target = list(out_shape[2:])
    idx = [slice(None), slice(None)]
    extend = []
    for i in range(nd):
        start = pads[2 * i]
        stop = min(start + target[i], full_sizes[i])
        idx.append(slice(start, stop))
        extend.append(start + target[i] - stop)
    out = full[tuple(idx)]
    if any(extend):
        out = F.pad(out, [p for e in reversed(extend) for p in (0, e)])
    if b is not None:
        out = out + b.reshape([1, -1] + [1] * nd)
    return out


# --------------------------------------------------------------------------- normalization / reductions
def _axes(a: OpInputs, rank: int) -> list[int]:
    axes = a.ints("axes")
    if axes is None:
        return list(range(rank))
    return sorted(ax % rank for ax in axes)


def _reduce(fn: Callable) -> Callable:
    def kernel(op, a: OpInputs):
        x = a.t("x")
        axes = _axes(a, x.dim())
        keep = bool(a.val("keep_dims", False))
        if not axes:
            return x
        return fn(x, axes, keep)

    return kernel


def _reduce_max(x, axes, keep):
    return torch.amax(x, dim=axes, keepdim=keep)


def _reduce_min(x, axes, keep):
    return torch.amin(x, dim=axes, keepdim=keep)


def _softmax(op, a: OpInputs):
    """``softmax(x, axis)``: max-subtracted exp, fp32 sum, one fp16 rounding of the result."""
    return torch.softmax(a.t("x"), dim=int(a.scalar("axis", -1)))


def _layer_norm(op, a: OpInputs):
    """``layer_norm(x, axes, gamma (x.shape[axes]), beta, epsilon)``; fp32 mean/variance (biased)."""
    x = a.t("x")
    axes = _axes(a, x.dim())
    eps = a.scalar("epsilon", 1e-5)
    g, b = a.t("gamma"), a.t("beta")
    if axes == list(range(x.dim() - len(axes), x.dim())):  # trailing axes: ATen's fused kernel
        norm_shape = list(x.shape[x.dim() - len(axes) :])
        g = None if g is None else g.reshape(norm_shape)
        b = None if b is None else b.reshape(norm_shape)
        return F.layer_norm(x, norm_shape, g, b, eps)
    mean = x.mean(dim=axes, keepdim=True)
    d = x - mean
    var = (d * d).mean(dim=axes, keepdim=True)
    y = d / torch.sqrt(var + eps)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.dim())]
    if g is not None:
        y = y * g.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    return y


def _batch_norm(op, a: OpInputs):
    """``batch_norm(x (N, C, *D), mean (C,), variance (C,), gamma, beta, epsilon)``; fp32."""
    x = a.t("x")
    shape = [1, -1] + [1] * (x.dim() - 2)
    eps = a.scalar("epsilon", 1e-5)
    y = (x - a.t("mean").reshape(shape)) / torch.sqrt(a.t("variance").reshape(shape) + eps)
    if a.get("gamma") is not None:
        y = y * a.t("gamma").reshape(shape)
    if a.get("beta") is not None:
        y = y + a.t("beta").reshape(shape)
    return y


def _instance_norm(op, a: OpInputs):
    """``instance_norm(x (N, C, *D), gamma (C,), beta (C,), epsilon)``: per-(n, c) over D; fp32."""
    x = a.t("x")
    axes = list(range(2, x.dim()))
    eps = a.scalar("epsilon", 1e-5)
    mean = x.mean(dim=axes, keepdim=True)
    d = x - mean
    y = d / torch.sqrt((d * d).mean(dim=axes, keepdim=True) + eps)
    shape = [1, -1] + [1] * (x.dim() - 2)
    if a.get("gamma") is not None:
        y = y * a.t("gamma").reshape(shape)
    if a.get("beta") is not None:
        y = y + a.t("beta").reshape(shape)
    return y


def _relu6(x):
    return torch.clamp(x, 0.0, 6.0)


KERNELS: dict[str, Callable] = {
    # elementwise binary (fp32 compute for floats, exact numpy for ints)
    "add": _binary(torch.add, np.add),
    "sub": _binary(torch.sub, np.subtract),
    "mul": _binary(torch.mul, np.multiply),
    "real_div": _binary(torch.div, np.true_divide),
    "pow": _binary(torch.pow, np.power),
    "maximum": _binary(torch.maximum, np.maximum),
    "minimum": _binary(torch.minimum, np.minimum),
    "floor_div": _binary(lambda x, y: torch.floor(x / y), np.floor_divide),
    # elementwise unary
    "abs": _unary(torch.abs),
    "ceil": _unary(torch.ceil),
    "cos": _unary(torch.cos),
    "erf": _unary(torch.erf),
    "exp": _unary(torch.exp),
    "floor": _unary(torch.floor),
    "relu": _unary(torch.relu),
    "round": _unary(torch.round),  # MIL: ties to even (0.5 -> 0), as torch.round
    "relu6": _unary(_relu6),
    "sigmoid": _unary(torch.sigmoid),
    "sign": _unary(torch.sign),
    "silu": _unary(F.silu),
    "sin": _unary(torch.sin),
    "sqrt": _unary(torch.sqrt),
    "tanh": _unary(torch.tanh),
    "rsqrt": _with_eps(torch.rsqrt),
    "inverse": _with_eps(torch.reciprocal),
    "log": _with_eps(torch.log),
    "gelu": _gelu,
    "clip": _clip,
    "leaky_relu": _leaky_relu,
    "cast": _cast,
    # linear algebra / convolution
    "matmul": _matmul,
    "linear": _linear,
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    # normalization / reductions
    "softmax": _softmax,
    "layer_norm": _layer_norm,
    "batch_norm": _batch_norm,
    "instance_norm": _instance_norm,
    "reduce_mean": _reduce(lambda x, ax, k: torch.mean(x, dim=ax, keepdim=k)),
    "reduce_sum": _reduce(lambda x, ax, k: torch.sum(x, dim=ax, keepdim=k)),
    "reduce_max": _reduce(_reduce_max),
    "reduce_min": _reduce(_reduce_min),
    # resizing / pooling
    **RESIZE_KERNELS,
    # compressed programs (coremltools.optimize): weight decompression, activation quantization
    **COMPRESSION_KERNELS,
}
