"""The measurements behind docs/PERFORMANCE.md §2 "Attention form per backend": the explicit
attention form each exporter keeps against the fused alternatives, on ExecuTorch (XNNPACK) and on
ONNX Runtime (CPU EP).

Not a test (the full shapes take ~20 s on 2 cores and want a quiet machine): run it by hand, e.g.

    python benchmarks/attention_forms.py --iterations 10 --out /tmp/attention_forms.json

``--quick`` runs small shapes (a smoke run, as tests/bench/test_attention_forms.py does);
``--only executorch|onnx`` runs one part.

ExecuTorch: ``F.scaled_dot_product_attention(q, k, v, attn_mask=bias)`` against the explicit
``bmm_attention`` (models/xnnpack_forms.py, what the exporter ships), q (1, Nq, d), k/v (1, Nk, d)
and a 2-D additive mask (Nq, Nk); both lowered with ``to_edge_transform_and_lower`` and the
``XnnpackPartitioner``. Reports the ops inside / outside the delegate (the exporter's
``delegate_coverage``), the max-abs difference of the two programs' outputs and their latency in
the ExecuTorch Python runtime, interleaved (medians).

ONNX: graphs built with ``onnx.helper``, run with the bundle runtime's ``cpu_session`` (CPU EP,
default graph optimizations, ``--threads`` intra-op threads): the explicit
Transpose + MatMul + Mul(scale) [+ Add(bias)] + Softmax + MatMul (the shipped graphs' pattern, which
ONNX Runtime 1.32 rewrites to FusedMatMul(transB, alpha) [+ Add] + Softmax + MatMul),
``com.microsoft.MultiHeadAttention``
(num_heads=1) and, when the installed onnx / onnxruntime have it, the opset-23 ``Attention``. Two
cases: the unmasked self-attention (4096 × 4096 × 256) and the memory attention's masked
cross-attention (4096 × 3648 × 256) whose bias is a key bias (1, 1, Nk) (0 valid, −1e4 invalid
slots), broadcast by the explicit Add. MultiHeadAttention only takes an attention bias of shape
(1 or B, 1 or H, Nq, Nk), and ONNX Runtime's Attention rejects a mask not of Nq rows, so both fused
graphs expand the key bias to (1, 1, Nq, Nk) (Unsqueeze + Expand, on the clock). Each fused output
is compared with the explicit one (max abs diff) and the forms are timed interleaved (medians).

Speed-ups are ``explicit ms / fused ms``: above 1 the fused form is faster. Prints a table and,
with ``--out``, writes the results (the dict ``run`` returns) as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from edgetam_export.models.memory_attention import KEY_MASK_BIAS  # the bias of an invalid key

# (Nq, Nk, d) of each measured attention; --quick shrinks the token counts (d is kept)
ET_SHAPE = {"full": (4096, 1024, 64), "quick": (256, 64, 64)}
ONNX_CASES = {
    "full": [("self_unmasked", 4096, 4096, 256, False), ("cross_masked", 4096, 3648, 256, True)],
    "quick": [("self_unmasked", 256, 256, 256, False), ("cross_masked", 256, 228, 256, True)],
}
FUSED_ONNX = ("mha", "attention23")


def _inputs(nq: int, nk: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, nq, d), dtype=np.float32)
    k = rng.standard_normal((1, nk, d), dtype=np.float32)
    v = rng.standard_normal((1, nk, d), dtype=np.float32)
    return q, k, v


def _key_bias(nk: int) -> np.ndarray:
    """(1, 1, Nk): 0 for valid keys, −1e4 for the last eighth (invalid slots)."""
    bias = np.zeros((1, 1, nk), np.float32)
    bias[..., nk - nk // 8 :] = KEY_MASK_BIAS
    return bias


def _interleaved(runners: dict, iterations: int) -> dict[str, float]:
    """Median wall ms per runner, the runners called alternately (one warm-up each)."""
    for f in runners.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(iterations):
        for k, f in runners.items():
            t0 = time.perf_counter()
            f()
            times[k].append(1e3 * (time.perf_counter() - t0))
    return {k: round(statistics.median(v), 2) for k, v in times.items()}


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"output shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# ----------------------------------------------------------------------------- ExecuTorch


def _et_modules():
    import torch
    import torch.nn.functional as F
    from edgetam_export.models.xnnpack_forms import bmm_attention

    class Sdpa(torch.nn.Module):
        def forward(self, q, k, v, bias):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)

    class Bmm(torch.nn.Module):
        def forward(self, q, k, v, bias):
            return bmm_attention(q, k, v, 1.0 / math.sqrt(q.shape[-1]), bias)

    return {"sdpa": Sdpa(), "bmm": Bmm()}


def run_executorch(quick: bool = False, iterations: int = 10) -> dict:
    """Lower sdpa and bmm attention with XNNPACK; coverage, parity and interleaved medians."""
    from importlib.metadata import version

    import torch
    from edgetam_export.exporters.executorch_exporter import delegate_coverage
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    nq, nk, d = ET_SHAPE["quick" if quick else "full"]
    q, k, v = (torch.from_numpy(a) for a in _inputs(nq, nk, d))
    bias = torch.from_numpy(np.random.default_rng(1).standard_normal((nq, nk), dtype=np.float32))
    inputs = [q, k, v, bias]
    out: dict = {
        "executorch_version": version("executorch"),
        "shape": {"nq": nq, "nk": nk, "d": d, "mask": [nq, nk]},
        "forms": {},
    }
    rt = Runtime.get()
    methods, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in _et_modules().items():
            t0 = time.perf_counter()
            with torch.no_grad():
                exported = torch.export.export(module, tuple(inputs), strict=False)
            edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
            cov = delegate_coverage(edge.exported_program())
            path = Path(tmp) / f"{name}.pte"
            with open(path, "wb") as f:
                edge.to_executorch().write_to_file(f)
            methods[name] = rt.load_program(path).load_method("forward")
            (outputs[name],) = methods[name].execute(inputs)
            out["forms"][name] = {
                "coverage": cov["coverage"],
                "delegate_calls": cov["delegate_calls"],
                "delegated_ops": cov["delegated_ops"],
                "non_delegated_ops": cov["non_delegated_ops"],
                "non_delegated": cov["non_delegated"],
                "lower_s": round(time.perf_counter() - t0, 1),
            }
        with torch.no_grad():
            want = _et_modules()["bmm"](*inputs).numpy()
        for name, got in outputs.items():
            out["forms"][name]["max_abs_diff_vs_eager_bmm"] = _max_abs(got.numpy(), want)
        ms = _interleaved({n: (lambda m=m: m.execute(inputs)) for n, m in methods.items()}, iterations)
    for name, t in ms.items():
        out["forms"][name]["median_ms"] = t
    # the explicit form is bmm; the "fused" alternative is sdpa
    out["speedup_sdpa"] = round(ms["bmm"] / ms["sdpa"], 3)
    return out


# ----------------------------------------------------------------------------- ONNX


def onnx_graph(form: str, nq: int, nk: int, d: int, masked: bool, scale: float | None = None):
    """The ``onnx.ModelProto`` of one attention form: inputs q (1, Nq, d), k/v (1, Nk, d) and, if
    ``masked``, bias (1, 1, Nk); output out (1, Nq, d). ``scale`` defaults to 1/√d."""
    import onnx
    from onnx import TensorProto, helper

    scale = 1.0 / math.sqrt(d) if scale is None else scale
    f32 = TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("q", f32, [1, nq, d]),
        helper.make_tensor_value_info("k", f32, [1, nk, d]),
        helper.make_tensor_value_info("v", f32, [1, nk, d]),
    ]
    if masked:
        inputs.append(helper.make_tensor_value_info("bias", f32, [1, 1, nk]))
    output = helper.make_tensor_value_info("out", f32, [1, nq, d])
    inits, opsets = [], [helper.make_opsetid("", 17)]
    if form == "explicit":
        inits.append(helper.make_tensor("scale", f32, [], [scale]))
        nodes = [
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
            helper.make_node("MatMul", ["q", "kt"], ["qk"]),
            helper.make_node("Mul", ["qk", "scale"], ["scores"]),
        ]
        if masked:
            nodes.append(helper.make_node("Add", ["scores", "bias"], ["scores_b"]))
        nodes += [
            helper.make_node("Softmax", ["scores_b" if masked else "scores"], ["p"], axis=-1),
            helper.make_node("MatMul", ["p", "v"], ["out"]),
        ]
    elif form in FUSED_ONNX:
        nodes, bias_in = [], []
        if masked:
            # a (1, 1, Nk) key bias expanded to the (1, 1, Nq, Nk) attention bias
            inits.append(helper.make_tensor("bias_shape", TensorProto.INT64, [4], [1, 1, nq, nk]))
            nodes += [
                helper.make_node("Unsqueeze", ["bias", "axis0"], ["bias4"]),
                helper.make_node("Expand", ["bias4", "bias_shape"], ["bias_full"]),
            ]
            inits.append(helper.make_tensor("axis0", TensorProto.INT64, [1], [0]))
            bias_in = ["bias_full"]
        if form == "mha":
            # query, key, value, bias (projection), key_padding_mask, attention_bias
            ins = ["q", "k", "v", "", "", *bias_in]
            nodes.append(
                helper.make_node(
                    "MultiHeadAttention", ins, ["out"], domain="com.microsoft", num_heads=1, scale=scale
                )
            )
            opsets.append(helper.make_opsetid("com.microsoft", 1))
        else:
            # opset-23 Attention: Q, K, V, attn_mask (3-D inputs with the head counts as attributes)
            opsets = [helper.make_opsetid("", 23)]
            nodes.append(
                helper.make_node(
                    "Attention",
                    ["q", "k", "v", *bias_in],
                    ["out"],
                    q_num_heads=1,
                    kv_num_heads=1,
                    scale=scale,
                )
            )
    else:
        raise ValueError(f"unknown attention form {form!r}")
    graph = helper.make_graph(nodes, f"attention_{form}", inputs, [output], initializer=inits)
    model = helper.make_model(graph, opset_imports=opsets, producer_name="attention_forms")
    model.ir_version = min(model.ir_version, 10 if form != "attention23" else 11)
    if form != "mha":
        onnx.checker.check_model(model, full_check=True)
    return model


def _session(model, tmp: Path, name: str, threads: int):
    import onnx

    from edgetam_export.runtime.onnx_runtime import cpu_session

    path = tmp / f"{name}.onnx"
    onnx.save(model, str(path))
    return cpu_session(path, num_threads=threads)


def _attention23_unsupported() -> str | None:
    """Why the opset-23 ``Attention`` cannot be built here, or None."""
    import onnx

    if not onnx.defs.has("Attention") or onnx.defs.onnx_opset_version() < 23:
        return f"onnx {onnx.__version__} has no opset-23 Attention"
    return None


def run_onnx(quick: bool = False, iterations: int = 10, threads: int = 2) -> dict:
    """Per case: each fused form's max abs diff to the explicit form and interleaved medians."""
    import onnx
    import onnxruntime as ort

    out: dict = {
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "threads": threads,
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for case, nq, nk, d, masked in ONNX_CASES["quick" if quick else "full"]:
            q, k, v = _inputs(nq, nk, d)
            feeds = {"q": q, "k": k, "v": v}
            if masked:
                feeds["bias"] = _key_bias(nk)
            row: dict = {"case": case, "nq": nq, "nk": nk, "d": d, "masked": masked, "forms": {}}
            sessions = {}
            for form in ("explicit", *FUSED_ONNX):
                reason = _attention23_unsupported() if form == "attention23" else None
                if reason is None:
                    try:
                        model = onnx_graph(form, nq, nk, d, masked)
                        sessions[form] = _session(model, Path(tmp), f"{case}.{form}", threads)
                        sessions[form].run(None, feeds)
                    except Exception as e:  # an EP / version without the op
                        sessions.pop(form, None)
                        reason = f"onnxruntime {ort.__version__}: {type(e).__name__}: {str(e)[:200]}"
                if reason is not None:
                    if form == "explicit":
                        raise RuntimeError(reason)
                    row["forms"][form] = {"skipped": reason}
                    print(f"{case}: {form} skipped ({reason})", flush=True)
            (want,) = sessions["explicit"].run(None, feeds)
            row["explicit_vs_numpy_max_abs_diff"] = _max_abs(want, numpy_attention(**feeds))
            for form, s in sessions.items():
                row["forms"].setdefault(form, {})
                if form != "explicit":
                    (got,) = s.run(None, feeds)
                    row["forms"][form]["max_abs_diff"] = _max_abs(got, want)
            ms = _interleaved(
                {f: (lambda s=s, feeds=feeds: s.run(None, feeds)) for f, s in sessions.items()}, iterations
            )
            for form, t in ms.items():
                row["forms"][form]["median_ms"] = t
                if form != "explicit":
                    row["forms"][form]["speedup"] = round(ms["explicit"] / t, 3)
            out["cases"].append(row)
    return out


def numpy_attention(q, k, v, bias=None) -> np.ndarray:
    """float64 reference ``softmax(q·kᵀ/√d + bias)·v``."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    s = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias[0]
    s = np.exp(s - s.max(-1, keepdims=True))
    return (s / s.sum(-1, keepdims=True)) @ v


# ----------------------------------------------------------------------------- driver


def run(only: str | None = None, quick: bool = False, iterations: int = 10, threads: int = 2) -> dict:
    """``{"executorch": ..., "onnx": ...}`` (the parts ``only`` selects)."""
    results: dict = {"quick": quick, "iterations": iterations}
    if only in (None, "executorch"):
        results["executorch"] = run_executorch(quick, iterations)
    if only in (None, "onnx"):
        results["onnx"] = run_onnx(quick, iterations, threads)
    return results


def print_table(results: dict) -> None:
    et = results.get("executorch")
    if et:
        s = et["shape"]
        print(
            f"\nExecuTorch {et['executorch_version']} XNNPACK, Nq={s['nq']} Nk={s['nk']} d={s['d']}, "
            f"2-D mask, median of {results['iterations']}"
        )
        print(f"{'form':6s} {'median ms':>10s} {'in':>4s} {'out':>4s}  outside the delegate / max abs diff")
        for name, r in et["forms"].items():
            print(
                f"{name:6s} {r['median_ms']:10.2f} {r['delegated_ops']:4d} {r['non_delegated_ops']:4d}  "
                f"{json.dumps(r['non_delegated'])} / {r['max_abs_diff_vs_eager_bmm']:.1e}"
            )
        print(f"sdpa speed-up over bmm (bmm ms / sdpa ms): {et['speedup_sdpa']:.2f}x")
    on = results.get("onnx")
    if on:
        print(
            f"\nONNX Runtime {on['onnxruntime_version']} CPU EP, {on['threads']} threads, "
            f"median of {results['iterations']}; speed-up = explicit ms / fused ms"
        )
        print(
            f"{'case':14s} {'Nq×Nk×d':16s} {'form':12s} {'median ms':>10s} {'speed-up':>9s} {'max abs diff':>13s}"
        )
        for row in on["cases"]:
            shape = f"{row['nq']}×{row['nk']}×{row['d']}"
            for form, r in row["forms"].items():
                if "skipped" in r:
                    print(f"{row['case']:14s} {shape:16s} {form:12s} skipped: {r['skipped']}")
                    continue
                sp = f"{r['speedup']:8.2f}x" if "speedup" in r else f"{'':9s}"
                diff = f"{r['max_abs_diff']:13.1e}" if "max_abs_diff" in r else f"{'':13s}"
                print(f"{row['case']:14s} {shape:16s} {form:12s} {r['median_ms']:10.2f} {sp} {diff}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="small shapes (smoke run)")
    ap.add_argument("--only", choices=("executorch", "onnx"))
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args()

    results = run(args.only, args.quick, args.iterations, args.threads)
    print_table(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
