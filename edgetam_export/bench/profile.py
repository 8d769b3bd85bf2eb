"""Per-op profiles of one graph call: ONNX Runtime's profiler and ExecuTorch ETDump read with
``executorch.devtools.Inspector`` (marking ops that ran outside the XNNPACK delegate); the top
ops by time go into each graph's ``top_ops`` in the result.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

TOP = 10
# ETDump events that are runtime bookkeeping, not operators
_NOT_OPS = {"Method::execute", "Method::init", "Program::load_method"}


def _top(acc: dict, delegated: dict | None = None) -> list[dict]:
    rows = sorted(acc.items(), key=lambda kv: -kv[1][0])[:TOP]
    return [
        {"name": name, "ms": ms, "count": n, "delegated": (delegated or {}).get(name), "compute_unit": None}
        for name, (ms, n) in rows
    ]


def onnx_top_ops(path: str | Path, feeds: dict[str, np.ndarray], threads: int | None = None) -> list[dict]:
    """Top ops (by summed kernel time, ms) of one run of the ONNX model at ``path`` (ORT profiler)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    acc: dict = defaultdict(lambda: [0.0, 0])
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            acc[op][0] += e.get("dur", 0) / 1e3
            acc[op][1] += 1
    return _top(acc)


def executorch_top_ops(path: str | Path, inputs: list) -> list[dict]:
    """Top ops (ms) of one run of the ``.pte`` at ``path`` from its ETDump (Inspector, no ETRecord).

    Delegated work appears as XNNPACK delegate events (``delegated`` true); everything else
    ran on ExecuTorch's portable/optimized kernels outside the delegate.
    """
    acc, delegated = executorch_op_costs(path, inputs)
    return _top({k: (ms, n) for k, (ms, n, _) in acc.items()}, delegated)


def executorch_op_costs(path: str | Path, inputs: list, runs: int = 1) -> tuple[dict, dict]:
    """Per-event ETDump costs of ``runs`` executions of the ``.pte`` at ``path``.

    Returns ``({event name: (ms summed over the runs, event count, runs)}, {event name: delegated})``; names
    of delegated ops carry the backend prefix (``XnnpackBackend:...``), ``DELEGATE_CALL`` is the
    whole delegate call, and every other name is an op that ran outside the delegate.
    """
    from executorch.devtools import Inspector
    from executorch.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        program = Runtime.get().load_program(Path(path), enable_etdump=True)
        method = program.load_method("forward")
        for _ in range(runs):
            method.execute(inputs)
        etdump = Path(tmp) / "run.etdp"
        program.write_etdump_result_to_file(str(etdump), str(Path(tmp) / "debug.bin"))
        inspector = Inspector(etdump_path=str(etdump))
        acc: dict = defaultdict(lambda: [0.0, 0])
        delegated: dict = {}
        for block in inspector.event_blocks:
            for ev in block.events:
                if ev.perf_data is None or ev.name in _NOT_OPS:
                    continue
                name = ev.name
                if ev.is_delegated_op and ev.delegate_backend_name:
                    name = f"{ev.delegate_backend_name}:{ev.name}"
                acc[name][0] += float(np.sum(ev.perf_data.raw))
                acc[name][1] += 1
                # DELEGATE_CALL is the whole XNNPACK delegate (it contains the delegated ops' time)
                delegated[name] = bool(ev.is_delegated_op) or ev.name == "DELEGATE_CALL"
    return {k: (ms, n, runs) for k, (ms, n) in acc.items()}, delegated


def profile_setting(setting) -> dict[str, list[dict]]:
    """``{graph: top ops}`` for every graph benchmark call of a runner setting (empty where no profiler)."""
    import torch

    plan = setting.pack.plan
    out = {}
    for graph, key in plan["graph_benchmarks"].items():
        feeds = setting.feeds[key]
        if setting.backend == "onnx":
            out[graph] = onnx_top_ops(
                setting.runtime.paths[graph], feeds, getattr(setting.runtime, "num_threads", None)
            )
        elif setting.backend == "executorch":
            names = setting.runtime.contracts[graph].input_names
            out[graph] = executorch_top_ops(
                setting.runtime.paths[graph], [torch.from_numpy(feeds[n]) for n in names]
            )
        elif setting.backend == "pytorch":
            out[graph] = torch_top_ops(setting.runtime.modules[graph], feeds)
    return out


def torch_top_ops(module, feeds: dict[str, np.ndarray]) -> list[dict]:
    """Top aten ops (self CPU time, ms) of one eager run with ``torch.profiler``."""
    import torch

    args = [torch.from_numpy(feeds[n]) for n in module.contract.input_names]
    with (
        torch.inference_mode(),
        torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof,
    ):
        module(*args)
    acc = {
        e.key: [e.self_cpu_time_total / 1e3, e.count]
        for e in prof.key_averages()
        if e.self_cpu_time_total > 0
    }
    return _top(acc)
