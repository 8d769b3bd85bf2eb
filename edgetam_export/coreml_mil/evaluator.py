"""Evaluate a saved Core ML ML Program (``.mlpackage``) on any OS, op by op, with numpy/torch.

Core ML's ``predict`` only exists on macOS. This module loads the *saved* program back with
coremltools' own milproto frontend (the exact ops, constants and dtypes that ship in the
package, after every conversion pass) and interprets it in topological order:

* ``const`` ops yield their stored values (fp16 weights stay fp16); the ``constexpr_*`` ops
  of compressed programs (int8 / palettized weights) are decompressed on the first run and
  cached, rounded to their declared dtype (the fp16 weight a device materializes);
* ops listed in :data:`~edgetam_export.coreml_mil.ops.KERNELS` run our kernels (torch CPU for
  conv/matmul, fp32 compute inside);
* data-movement ops listed in :data:`~edgetam_export.coreml_mil.ops.VALUE_INFERENCE_OPS` run
  coremltools' own ``value_inference`` on the runtime values;
* every output is then rounded to the op's **declared output dtype** -- in an fp16 program
  every intermediate tensor is carried in fp16 between ops, as Core ML does; overflow beyond
  the fp16 range (65504) becomes +-inf exactly as on device and is recorded in the report.

Which ops compute in higher precision internally (fp32 accumulation, then one fp16 rounding)
is stated in :mod:`edgetam_export.coreml_mil.ops`; what this check cannot see (Apple's own
kernels, Neural Engine placement, fusion) is in docs/COREML_EVALUATOR.md.

An op without a kernel raises :class:`UnsupportedMILOpError` naming its type, name and program
location before anything is computed (at construction), never a silent pass-through.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .compression_ops import CONSTEXPR_PREFIX
from .ops import KERNELS, VALUE_INFERENCE_OPS, OpInputs

__all__ = [
    "FP16_MAX",
    "EvalReport",
    "MILEvalError",
    "MILEvaluator",
    "UnsupportedMILOpError",
    "load_mil_program",
    "program_from_mlmodel",
]

FP16_MAX = 65504.0
_FP16_INF_THRESHOLD = 65520.0  # fp32 values at or above this round to inf in fp16 (RNE)


class MILEvalError(RuntimeError):
    """A kernel failed; the message names the op type, name and program location."""


class UnsupportedMILOpError(MILEvalError):
    """The program contains an op the evaluator has no kernel for.

    Attributes: ``op_type``, ``op_name``, ``location`` (e.g. ``"function 'main', block 0, op #17"``).
    """

    def __init__(self, op_type: str, op_name: str, location: str, reason: str = "no kernel"):
        self.op_type, self.op_name, self.location = op_type, op_name, location
        super().__init__(
            f"MIL op type {op_type!r} (name {op_name!r}) at {location} is not supported by the "
            f"MIL evaluator ({reason})"
        )


def load_mil_program(path: str | Path):
    """Load a saved ``.mlpackage`` (or ``.mlmodel`` ML Program) as a coremltools PyMIL ``Program``.

    Uses ``coremltools.models.MLModel(path, skip_model_load=True)`` (no Core ML framework
    needed) and the milproto frontend with the package's weight directory. Returns
    ``(program, spec)``.
    """
    import coremltools as ct

    model = ct.models.MLModel(str(path), skip_model_load=True)
    return program_from_mlmodel(model, str(path))


def program_from_mlmodel(model, label: str = "model"):
    """An in-memory ML Program ``MLModel`` (e.g. fresh from ``ct.convert``) as ``(Program, spec)``."""
    from coremltools.converters.mil.frontend.milproto import load as milproto_load

    spec = model.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"{label}: not an ML Program (type {spec.WhichOneof('Type')!r})")
    prog = milproto_load.load(spec, spec.specificationVersion, file_weights_dir=model.weights_dir or "")
    return prog, spec


@dataclass
class EvalReport:
    """What one :meth:`MILEvaluator.run` saw.

    Attributes:
        seconds: wall time of the run.
        op_seconds: seconds per op type (kernels only).
        fp16_overflow: ``[(op index, op type, op name, max |fp32 value|)]`` of ops whose fp32
            result exceeded the fp16 range and was stored as +-inf.
        nonfinite: ``[(op index, op type, op name)]`` of ops whose stored output holds inf/NaN
            (fp16 overflow included; first 20), so the origin of a NaN/inf is located.
        max_abs: ``{var name: max |value|}`` of every float op output before rounding (only
            with ``track_ranges=True``).
        ranges: ``{var name: (min, max)}`` of the same outputs (``track_ranges=True``), e.g. the
            activation statistics of a W8A8 calibration.
    """

    seconds: float = 0.0
    op_seconds: dict[str, float] = field(default_factory=dict)
    fp16_overflow: list[tuple[int, str, str, float]] = field(default_factory=list)
    nonfinite: list[tuple[int, str, str]] = field(default_factory=list)
    max_abs: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def fp16_headroom(self) -> float:
        """``65504 / max |value|`` over all tracked float intermediates (inf if none tracked)."""
        m = max(self.max_abs.values(), default=0.0)
        return FP16_MAX / m if m > 0 else float("inf")


class _ValueVar:
    """Duck-typed stand-in for a coremltools ``Var`` carrying a runtime value (for value_inference)."""

    __slots__ = ("_var", "sym_val", "val")

    def __init__(self, var, value):
        self._var = var
        self.val = value
        self.sym_val = value

    @property
    def shape(self):
        return tuple(np.shape(self.val))

    @property
    def rank(self):
        return np.ndim(self.val)

    def __getattr__(self, name):  # dtype, sym_type, name, op, ...
        return getattr(self._var, name)


def _np_dtype(mil_dtype):
    from coremltools.converters.mil.mil import types

    return np.dtype(types.nptype_from_builtin(mil_dtype))


def _is_const(var) -> bool:
    return var.op is not None and var.op.op_type == "const"


class MILEvaluator:
    """Interprets one function of a PyMIL program (default ``"main"``) on numpy inputs.

    Args:
        program: a coremltools ``Program`` or a path to a ``.mlpackage``.
        function: function name inside the program.
        track_ranges: record ``max |value|`` of every float op output in the report (one extra
            reduction per op; also needed for the fp16 headroom figure).
        num_threads: torch intra-op threads during :meth:`run` (None: leave as is).
        track_moves: with ``track_ranges``, also record the ranges of data-movement outputs
            (reshape, transpose, concat, ...), so every float tensor of the program has one
            (what a W8A8 calibration needs; see :mod:`edgetam_export.coreml_mil.calibration`).

    Attributes:
        input_specs / output_specs: ``{name: (shape, numpy dtype)}`` as declared by the program
            (inputs are cast to these dtypes; outputs come back in them).
        op_counts: ``Counter`` of op types in the function (consts included).
        precision: ``"fp16"`` if any non-const float op output is fp16, else ``"fp32"``.
        last_report: :class:`EvalReport` of the latest run.

    Raises:
        UnsupportedMILOpError: at construction, for the first op without a kernel (or a
            control-flow op with nested blocks).
    """

    def __init__(
        self,
        program,
        function: str = "main",
        track_ranges: bool = True,
        num_threads=None,
        track_moves: bool = False,
    ):
        if isinstance(program, (str, Path)):
            self.source = str(program)
            program, _ = load_mil_program(program)
        else:
            self.source = "<program>"
        self.program = program
        if function not in program.functions:
            raise KeyError(f"function {function!r} not in program (has {sorted(program.functions)})")
        self.function_name = function
        self.func = program.functions[function]
        self.track_ranges = track_ranges
        self.track_moves = track_moves and track_ranges
        self.num_threads = num_threads
        self.ops = list(self.func.operations)
        self.op_counts = Counter(op.op_type for op in self.ops)
        self.input_specs = {
            name: (tuple(int(d) for d in v.shape), _np_dtype(v.dtype)) for name, v in self.func.inputs.items()
        }
        self.output_specs = {
            v.name: (tuple(int(d) for d in v.shape), _np_dtype(v.dtype)) for v in self.func.outputs
        }
        from coremltools.converters.mil.mil import types

        self.precision = (
            "fp16"
            if any(
                o.dtype == types.fp16 for op in self.ops if op.op_type != "const" for o in op.outputs or ()
            )
            else "fp32"
        )
        self.last_report = EvalReport()
        self._constexpr: dict[int, np.ndarray] = {}  # constexpr op outputs, computed on the first run
        self._check_supported()
        self._plan_lifetimes()

    # ------------------------------------------------------------------ setup
    def location(self, index: int) -> str:
        """Human-readable program location of op ``index`` of the main block."""
        return f"function {self.function_name!r}, block 0, op #{index}"

    def _check_supported(self) -> None:
        for i, op in enumerate(self.ops):
            if op.blocks:
                raise UnsupportedMILOpError(
                    op.op_type, op.name, self.location(i), "nested blocks / control flow"
                )
            if op.op_type != "const" and op.op_type not in KERNELS and op.op_type not in VALUE_INFERENCE_OPS:
                raise UnsupportedMILOpError(op.op_type, op.name, self.location(i))

    def _plan_lifetimes(self) -> None:
        """For each op index, the runtime vars whose last use it is (freed after the op)."""
        last: dict[int, int] = {}
        for i, op in enumerate(self.ops):
            for v in op.get_flattened_inputs():
                last[id(v)] = i
        keep = {id(v) for v in self.func.outputs}
        self._free_after: list[list[int]] = [[] for _ in self.ops]
        for vid, i in last.items():
            if vid not in keep:
                self._free_after[i].append(vid)
        # declared static output shapes, checked after every kernel
        self._static_shapes: dict[int, tuple[int, ...]] = {}
        for op in self.ops:
            for v in op.outputs or ():
                try:
                    shape = v.shape
                except Exception:  # list/state vars have no tensor shape
                    continue
                if all(isinstance(d, (int, np.integer)) for d in shape):
                    self._static_shapes[id(v)] = tuple(int(d) for d in shape)

    # ------------------------------------------------------------------ run
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Evaluate on ``feeds`` ``{input name: array of the declared shape}``.

        Each feed is cast to the program's declared input dtype (as Core ML converts an
        MLMultiArray). Returns ``{output name: array}`` in the declared output shapes/dtypes.
        """
        missing = [n for n in self.input_specs if n not in feeds]
        if missing:
            raise ValueError(f"missing inputs {missing}; program inputs are {list(self.input_specs)}")
        values: dict[int, object] = {}
        for name, var in self.func.inputs.items():
            shape, dtype = self.input_specs[name]
            arr = np.asarray(feeds[name])
            if tuple(arr.shape) != shape:
                raise ValueError(f"input {name!r}: expected shape {list(shape)}, got {list(arr.shape)}")
            values[id(var)] = np.ascontiguousarray(arr.astype(dtype, copy=False))

        report = EvalReport()
        old_threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        t_start = time.perf_counter()
        try:
            with torch.inference_mode():
                for i, op in enumerate(self.ops):
                    if op.op_type == "const" or id(op.outputs[0]) in self._constexpr:
                        continue
                    t0 = time.perf_counter()
                    outs = self._eval_op(i, op, values)
                    for var, out in zip(op.outputs, outs, strict=True):
                        value = self._finalize(i, op, var, out, report)
                        shape = self._static_shapes.get(id(var))
                        if shape is not None and value.shape != shape:
                            raise MILEvalError(
                                f"MIL op type {op.op_type!r} (name {op.name!r}) at {self.location(i)}: kernel "
                                f"returned shape {list(value.shape)}, the program declares {list(shape)}"
                            )
                        if op.op_type.startswith(CONSTEXPR_PREFIX):
                            self._constexpr[id(var)] = value  # constants: never freed, never recomputed
                        else:
                            values[id(var)] = value
                    report.op_seconds[op.op_type] = report.op_seconds.get(op.op_type, 0.0) + (
                        time.perf_counter() - t0
                    )
                    for vid in self._free_after[i]:
                        values.pop(vid, None)
        finally:
            if self.num_threads:
                torch.set_num_threads(old_threads)
        report.seconds = time.perf_counter() - t_start
        self.last_report = report
        result = {}
        for var in self.func.outputs:
            result[var.name] = var.val if _is_const(var) else self._value(var, values)
        return result

    def _value(self, var, values):
        vid = id(var)
        if vid in values:
            return values[vid]
        if vid in self._constexpr:
            return self._constexpr[vid]
        if _is_const(var):
            return var.val
        raise MILEvalError(f"value of var {var.name!r} is not available (evaluator bug)")

    def _eval_op(self, i: int, op, values) -> tuple:
        ins = OpInputs()
        for name, v in op.inputs.items():
            ins[name] = (
                tuple(self._value(x, values) for x in v)
                if isinstance(v, (list, tuple))
                else self._value(v, values)
            )
        try:
            if op.op_type in KERNELS:
                out = KERNELS[op.op_type](op, ins)
            else:
                out = self._value_inference(op, ins)
        except UnsupportedMILOpError:
            raise
        except NotImplementedError as e:
            raise UnsupportedMILOpError(op.op_type, op.name, self.location(i), str(e)) from e
        except Exception as e:
            raise MILEvalError(
                f"MIL op type {op.op_type!r} (name {op.name!r}) at {self.location(i)} failed: {e}"
            ) from e
        if len(op.outputs) == 1 and not (isinstance(out, (tuple, list)) and len(out) == 1):
            return (out,)
        return tuple(out)

    @staticmethod
    def _value_inference(op, ins: OpInputs):
        """Run coremltools' ``value_inference`` of ``op`` with runtime values substituted for its inputs."""
        view = object.__new__(type(op))
        view.__dict__.update(op.__dict__)
        input_vars = {}
        for name, var in op._input_vars.items():
            if var is None:
                input_vars[name] = None
            elif isinstance(var, (list, tuple)):
                input_vars[name] = tuple(_ValueVar(v, x) for v, x in zip(var, ins[name], strict=True))
            else:
                input_vars[name] = _ValueVar(var, ins[name])
        view.__dict__["_input_vars"] = input_vars
        view.__dict__.update(input_vars)
        return view.value_inference()

    def _finalize(self, i: int, op, var, out, report: EvalReport) -> np.ndarray:
        """Round ``out`` to ``var``'s declared dtype; record fp16 overflow, non-finite values, ranges."""
        dtype = _np_dtype(var.dtype)
        if isinstance(out, torch.Tensor):
            t = out
        else:
            a = np.asarray(out)
            if a.dtype == dtype or not np.issubdtype(dtype, np.floating):
                # data movement (value_inference) or exact int/bool results: values unchanged,
                # keep numpy views as they are (no copy, no range pass unless track_moves)
                if self.track_moves and a.size and np.issubdtype(dtype, np.floating):
                    report.ranges[var.name] = (float(a.min()), float(a.max()))
                return a.astype(dtype, copy=False)
            t = torch.from_numpy(np.ascontiguousarray(a))
        if not np.issubdtype(dtype, np.floating):
            return t.numpy().astype(dtype, copy=False)
        if t.numel() and (self.track_ranges or dtype == np.float16):
            lo, hi = torch.aminmax(t)  # one pass, no temporary (|x| would allocate one)
            lo, hi = float(lo), float(hi)
            m = math.nan if math.isnan(lo) or math.isnan(hi) else max(abs(lo), abs(hi))
            if self.track_ranges:
                report.max_abs[var.name] = m
                report.ranges[var.name] = (lo, hi)
            overflow = dtype == np.float16 and m >= _FP16_INF_THRESHOLD
            if overflow:
                report.fp16_overflow.append((i, op.op_type, op.name, m))
            if (overflow or not np.isfinite(m)) and len(report.nonfinite) < 20:
                report.nonfinite.append((i, op.op_type, op.name))
        tdtype = torch.float16 if dtype == np.float16 else torch.float32
        return t.to(tdtype).numpy()

    def __repr__(self) -> str:
        n = sum(c for t, c in self.op_counts.items() if t != "const")
        return f"MILEvaluator({self.source!r}, {self.precision}, {n} ops, inputs={list(self.input_specs)})"
