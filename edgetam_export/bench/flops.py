"""Arithmetic: GFLOP per graph (``torch.utils.flop_counter`` on the reference wrappers) and this
machine's measured fp32 GEMM peak (the fastest of torch.matmul, ONNX Runtime MatMul and an
XNNPACK-delegated ExecuTorch linear), so every latency can be stated as a roofline fraction.
An artifact whose exporter recorded the GFLOP of the form it lowered (``gflop`` in the pack
index) is measured against that count instead (runner.py).
"""

from __future__ import annotations

import time

import numpy as np

GEMM_N = 1024  # square fp32 GEMM size: 2.1 GFLOP per call, big enough to reach the kernels' peak


def graph_gflop(pack, reference=None) -> dict[str, float]:
    """``{graph: GFLOP}`` of one call of each graph benchmark (counted once on the reference wrappers)."""
    import torch

    from ..models.flop_count import forward_gflop
    from ._deps import reference_runtime

    ref = reference or reference_runtime(pack.as_bundle())
    out = {}
    for graph, key in pack.plan["graph_benchmarks"].items():
        module = ref.modules[graph]
        feeds = pack.feeds(key)
        args = [
            torch.from_numpy(np.ascontiguousarray(feeds[n], np.float32)) for n in module.contract.input_names
        ]
        out[graph] = forward_gflop(module, args)
    return out


def _best_gflops(fn, flop: float, seconds: float = 0.5) -> float:
    fn()
    best = float("inf")
    t_end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < t_end or n < 3:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        n += 1
    return flop / best / 1e9


def _torch_matmul(threads):
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    a = torch.randn(GEMM_N, GEMM_N)
    b = torch.randn(GEMM_N, GEMM_N)
    return lambda: torch.matmul(a, b)


def _ort_matmul(threads):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    n = GEMM_N
    g = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"a": np.random.randn(n, n).astype(np.float32), "b": np.random.randn(n, n).astype(np.float32)}
    return lambda: sess.run(None, feeds)


def _xnnpack_linear(threads):
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    n = GEMM_N
    lin = torch.nn.Linear(n, n, bias=False).eval()
    x = torch.randn(n, n)
    ep = torch.export.export(lin, (x,))
    prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    program = Runtime.get().load_program(prog.buffer)
    method = program.load_method("forward")

    def run():
        # the closure keeps ``program`` alive: a method outliving its program segfaults
        return program and method.execute([x])

    return run


METHODS = {
    "torch.matmul": _torch_matmul,
    "onnxruntime MatMul": _ort_matmul,
    "executorch XNNPACK linear": _xnnpack_linear,
}


def measure_peak_gflops(threads: int | None = None) -> dict:
    """The result schema's ``arithmetic``: best fp32 GFLOP/s of a 1024^3 GEMM over the available kernels."""
    flop = 2.0 * GEMM_N**3
    rates = {}
    for name, make in METHODS.items():
        try:
            rates[name] = _best_gflops(make(threads), flop)
        except Exception:  # a kernel that is not installed does not count
            continue
    if not rates:
        return {"peak_gflops_fp32": None, "peak_method": None}
    best = max(rates, key=rates.get)
    detail = ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
    return {
        "peak_gflops_fp32": rates[best],
        "peak_method": f"best-of fp32 {GEMM_N}^3 GEMM: {best} (GFLOP/s: {detail})",
    }
