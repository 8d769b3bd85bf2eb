"""Static ANE-readiness report of saved Core ML ML Programs: what is likely to keep work off the
Apple Neural Engine, found by reading the program (no device, no Core ML framework).

This is a *static* screen. Only Core ML decides placement, per device and OS; the ground truth
is ``MLComputePlan`` on the device (the Swift runner in ``ios_harness/`` records it as
``placement`` in the result JSON). Each rule below cites where it comes from:

* **rank > 4** (:data:`RANK_RULE`): an op with an input or output tensor of rank 5 or more.
  Apple, "Deploying Transformers on the Apple Neural Engine" (2022), Principle 1, *Picking the
  Right Data Format*: "the most conducive data format for the ANE (hardware and software stack)
  is 4D and channels-first" (https://machinelearning.apple.com/research/neural-engine-transformers);
  apple/ml-ane-transformers keeps every attention tensor 4-D, (B, C, 1, S)
  (``ane_transformers/reference/multihead_attention.py`` asserts ``len(q.size()) == 4``).
  Core ML itself stops at rank 5 ("Core ML does not support tensors with a rank greater than
  five", apple/coremltools#1723), so rank 5 is legal but outside the layout the ANE is built for.
  A heuristic: confirm with MLComputePlan.
* **fp32 islands in an fp16 program** (:data:`FP32_RULE`): non-``const`` ops that produce fp32
  (including ``cast`` to fp32) in a program that computes in fp16. coremltools, "Typed Execution
  Workflow Example": a float 16 typed model "is eligible to execute on a combination of the Neural
  Engine (NE), GPU and CPU"; a float 32 typed model "will execute on a combination of the GPU and
  CPU" (https://apple.github.io/coremltools/docs-guides/source/typed-execution-example.html).
  Casts at the program boundary (inputs cast to fp16, outputs cast back to fp32, because the
  bundle's io_dtype is float32) are listed separately as boundary casts.
* **ops known not to run on the ANE** (:data:`NON_ANE_OPS`), each with its source below.
  Apple publishes no list ("There is no static documentation, as it changes based on device
  generation, operating system version, tensor sizes etc.", apple/coremltools#1780).

:func:`ane_report` analyses one ``.mlpackage``; :func:`ane_report_for_bundle` every Core ML
artifact of a bundle; :func:`format_ane_report` renders the text that ``edgetam-export inspect
--ane`` prints, with the rewrites each finding suggests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FP32_RULE",
    "NON_ANE_OPS",
    "RANK_RULE",
    "ANEFinding",
    "GraphANEReport",
    "ane_report",
    "ane_report_for_bundle",
    "format_ane_report",
]

RANK_RULE = "rank>4"
FP32_RULE = "fp32-island"

#: op type -> (why, source). Only ops with a public statement; none is an official Apple list.
NON_ANE_OPS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        ("lstm", "gru", "rnn"),
        (
            "recurrent layers are not supported on the Neural Engine",
            'apple/coremltools#1780 (maintainer: "RNN or LSTM are not supported on the neural engine")',
        ),
    ),
    **dict.fromkeys(
        ("gather", "gather_nd", "gather_along_axis"),
        (
            "gathers (embedding lookups) run on the CPU",
            "apple/ml-ane-transformers README (the optimized distilbert's 4 CPU ops are the embedding "
            "lookup ops); hollance/neural-engine docs/unsupported-layers.md lists gather",
        ),
    ),
}
#: conv/conv_transpose with any dilation > 1 (reported by the community, marked unconfirmed there).
DILATED_CONV_SOURCE = "hollance/neural-engine docs/unsupported-layers.md ('dilated convolutions'; the page notes some entries are guesses)"

REWRITES = {
    RANK_RULE: (
        "keep every tensor at rank <= 4 (Principle 1): fold the extra axis into batch or channels. "
        "A window partition reshape(B*nh, ws, nw, ws, C) -> permute -> reshape is "
        "pixel_unshuffle(x, ws) -> reshape(B, C, ws*ws, nh*nw) -> permute(0, 3, 2, 1) -> "
        "reshape(B*nh*nw, ws*ws, C), all rank <= 4 and bit-identical."
    ),
    FP32_RULE: (
        "compute in fp16 (the converter keeps fp32 only where asked: check compute_precision / "
        "op_selector and explicit .float() in the wrapper), or move the op to the host."
    ),
    "boundary": (
        "optional: declare fp16 inputs/outputs (ct.TensorType(dtype=np.float16), iOS 16+) to drop the "
        "boundary casts; this changes the bundle's io_dtype contract, so every runtime must follow."
    ),
    "non-ane-op": "replace with an ANE-friendly equivalent (one-hot matmul for small gathers, conv for "
    "recurrences unrolled over a fixed length) or run it on the host.",
}


@dataclass
class ANEFinding:
    """One op that a rule flags: ``rule``, op ``op_type`` and ``op_name``, and a ``detail``."""

    rule: str
    op_type: str
    op_name: str
    detail: str
    source: str = ""


@dataclass
class GraphANEReport:
    """The static report of one ML Program (one graph at one precision)."""

    graph: str
    path: str
    precision: str  # "fp16" if any non-const op computes in fp16, else "fp32"
    op_counts: Counter = field(default_factory=Counter)
    findings: list[ANEFinding] = field(default_factory=list)
    boundary_casts: list[str] = field(default_factory=list)

    @property
    def n_ops(self) -> int:
        return sum(n for t, n in self.op_counts.items() if t != "const")

    def by_rule(self, rule: str) -> list[ANEFinding]:
        return [f for f in self.findings if f.rule == rule]

    @property
    def clean(self) -> bool:
        return not self.findings


def _walk(block):
    for op in block.operations:
        yield op
        for inner in getattr(op, "blocks", ()):
            yield from _walk(inner)


def _tensor_vars(op):
    for v in op.inputs.values():
        for x in v if isinstance(v, (list, tuple)) else (v,):
            if hasattr(x, "rank"):
                yield x
    yield from op.outputs


def ane_report(path: str | Path, graph: str | None = None) -> GraphANEReport:
    """Analyse one saved ``.mlpackage`` (every function, nested blocks included)."""
    from coremltools.converters.mil.mil import types

    from .evaluator import load_mil_program  # the one import site of the MIL loader

    prog, _spec = load_mil_program(path)
    ops = [(fname, op) for fname, f in prog.functions.items() for op in _walk(f)]
    fp16 = any(
        op.op_type != "const" and any(getattr(v, "dtype", None) == types.fp16 for v in op.outputs)
        for _, op in ops
    )
    report = GraphANEReport(
        graph=graph or Path(path).name.split(".")[0], path=str(path), precision="fp16" if fp16 else "fp32"
    )
    func_inputs = {v.name for f in prog.functions.values() for v in f.inputs.values()}
    func_outputs = {v.name for f in prog.functions.values() for v in f.outputs}
    for _fname, op in ops:
        report.op_counts[op.op_type] += 1
        if op.op_type == "const":
            continue
        ranks = [
            (v.name, v.rank, tuple(v.shape))
            for v in _tensor_vars(op)
            if isinstance(v.rank, int) and v.rank > 4
        ]
        if ranks:
            detail = ", ".join(f"{n} rank {r} {list(s)}" for n, r, s in ranks)
            report.findings.append(
                ANEFinding(RANK_RULE, op.op_type, op.name, detail, "Principle 1; coremltools#1723")
            )
        if fp16 and any(getattr(v, "dtype", None) == types.fp32 for v in op.outputs):
            boundary = op.op_type == "cast" and (
                op.outputs[0].name in func_outputs or (op.x.name in func_inputs)
            )
            if boundary:
                report.boundary_casts.append(f"{op.name}: {op.x.name} -> {op.outputs[0].name}")
            else:
                out = op.outputs[0]
                report.findings.append(
                    ANEFinding(
                        FP32_RULE,
                        op.op_type,
                        op.name,
                        f"{out.name} fp32 {list(out.shape)}",
                        "Typed Execution",
                    )
                )
        elif op.op_type == "cast" and op.x.name in func_inputs:
            report.boundary_casts.append(f"{op.name}: {op.x.name} -> {op.outputs[0].name}")
        if op.op_type in NON_ANE_OPS:
            why, source = NON_ANE_OPS[op.op_type]
            report.findings.append(ANEFinding("non-ane-op", op.op_type, op.name, why, source))
        if op.op_type in ("conv", "conv_transpose") and getattr(op, "dilations", None) is not None:
            dil = op.dilations.val
            if dil is not None and any(int(d) != 1 for d in dil):
                report.findings.append(
                    ANEFinding(
                        "non-ane-op", op.op_type, op.name, f"dilations {list(dil)}", DILATED_CONV_SOURCE
                    )
                )
    return report


def ane_report_for_bundle(bundle, precision: str | None = None) -> list[GraphANEReport]:
    """Reports for every Core ML artifact of a loaded bundle (optionally one precision)."""
    reports = []
    for art in bundle.artifacts:
        if art["backend"] == "coreml" and (precision is None or art["precision"] == precision):
            r = ane_report(bundle.root / art["path"], art["graph"])
            r.precision = art["precision"]
            reports.append(r)
    return reports


def format_ane_report(reports: list[GraphANEReport], max_listed: int = 6) -> str:
    """Human-readable report: per graph the op counts and findings, then the suggested rewrites."""
    if not reports:
        return "ANE readiness: no Core ML artifacts in this bundle."
    lines = [
        "ANE readiness (static screen of the saved ML Programs; placement on a device is decided by "
        "Core ML - confirm with MLComputePlan, e.g. the ios_harness result's `placement`)",
    ]
    seen: set[str] = set()
    for r in reports:
        top = ", ".join(f"{t} {n}" for t, n in r.op_counts.most_common() if t != "const")
        lines.append(f"\n{r.graph} [{r.precision}]: {r.n_ops} ops (+{r.op_counts['const']} const): {top}")
        if r.boundary_casts:
            lines.append(f"  boundary casts (float32 I/O contract): {len(r.boundary_casts)}")
        if r.clean:
            lines.append(
                "  no findings: rank <= 4 throughout, no fp32 islands, no op known to stay off the ANE"
            )
        for rule, title in (
            (RANK_RULE, "ops on tensors of rank > 4"),
            (FP32_RULE, "fp32 islands"),
            ("non-ane-op", "ops known not to run on the ANE"),
        ):
            found = r.by_rule(rule)
            if not found:
                continue
            seen.add(rule)
            lines.append(f"  {title}: {len(found)}")
            for f in found[:max_listed]:
                src = f"  [{f.source}]" if f.source and rule == "non-ane-op" else ""
                lines.append(f"    - {f.op_type} {f.op_name}: {f.detail}{src}")
            if len(found) > max_listed:
                lines.append(f"    … and {len(found) - max_listed} more")
        if r.boundary_casts:
            seen.add("boundary")
    lines.append("\nSuggested rewrites:" if seen else "\nSuggested rewrites: none.")
    for rule in (RANK_RULE, FP32_RULE, "non-ane-op", "boundary"):
        if rule in seen:
            lines.append(f"  - {rule}: {REWRITES[rule]}")
    return "\n".join(lines)
