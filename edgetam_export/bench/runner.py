"""The host runner: execute bench packs' plans on their runtimes and the PyTorch-eager baseline, interleaved.

For every setting (one pack = one backend x precision, plus the ``pytorch`` baseline) it
measures each graph's load time, first inference and peak memory, runs every captured call
once for numerics against the pack's expected outputs, then alternates settings through the
warm-up and timed iterations (each round: every graph benchmark call, then every composite
frame), so background load on the machine hits all settings alike.

Memory: the peak resident set size (``/proc/self/statm``, sampled every 2 ms by a thread)
while a graph loads and runs its first inference, minus the RSS just before; native arenas
(ONNX Runtime, XNNPACK, oneDNN) are included, which ``tracemalloc`` would miss. Where
``/proc`` is missing it falls back to the growth of ``resource.getrusage`` max RSS.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._deps import Bundle, BundleError, Contract, compare, reference_runtime, runtime_from_bundle
from .stats import summarize

RUNNER_NAME = "edgetam-export-host"
RUNTIME_NAMES = {
    "onnx": "onnxruntime",
    "executorch": "executorch",
    "coreml": "coreml",
    "pytorch": "pytorch-eager",
}
DELEGATES = {"onnx": "CPUExecutionProvider", "executorch": "XnnpackBackend", "coreml": None, "pytorch": None}

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class PackError(ValueError):
    """A folder that is not a readable bench pack."""


@dataclass
class Pack:
    """A loaded pack: ``root``, ``index`` and ``plan`` dicts, tensors read on demand."""

    root: Path
    index: dict
    plan: dict
    _cache: dict = field(default_factory=dict)

    def tensor(self, key: str) -> np.ndarray:
        if key not in self._cache:
            e = self.index["tensors"][key]
            data = np.fromfile(self.root / e["file"], dtype=np.dtype(e["dtype"]).newbyteorder("<"))
            self._cache[key] = np.ascontiguousarray(data.reshape(e["shape"]).astype(e["dtype"]))
        return self._cache[key]

    def feeds(self, call: str) -> dict[str, np.ndarray]:
        return {n: self.tensor(k) for n, k in self.plan["calls"][call]["inputs"].items()}

    def expected(self, call: str) -> dict[str, np.ndarray]:
        return {n: self.tensor(k) for n, k in self.plan["calls"][call]["expected"].items()}

    def as_bundle(self) -> Bundle:
        """An in-memory :class:`Bundle` over the pack's artifacts, so the package runtimes open them."""
        arts, contracts = [], {}
        for graph, a in self.index["artifacts"].items():
            contracts[graph] = Contract.from_dict(
                a.get("contract") or {"name": graph, "inputs": a["inputs"], "outputs": a["outputs"]}
            )
            arts.append(
                {
                    "backend": self.index["backend"],
                    "graph": graph,
                    "precision": self.index["precision"],
                    "path": a["file"],
                }
            )
        ref = self.index.get("reference", {})
        manifest = {"weights": ref.get("weights", {}), "backends": {}}
        return Bundle(self.root, manifest, contracts, {}, dict(ref.get("options", {})), arts)


def load_pack(path: str | os.PathLike) -> Pack:
    """Read ``PACK/index.json`` and ``PACK/plan.json`` (format and version checked)."""
    root = Path(path)
    try:
        index = json.loads((root / "index.json").read_text())
        plan = json.loads((root / "plan.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PackError(f"{root} is not a bench pack (index.json/plan.json unreadable: {e})") from None
    if index.get("format") != "edgetam-bench-pack" or index.get("version") != 1:
        raise PackError(f"{root}/index.json is not an edgetam-bench-pack v1")
    if plan.get("format") != "edgetam-bench-plan" or plan.get("version") != 1:
        raise PackError(f"{root}/plan.json is not an edgetam-bench-plan v1")
    return Pack(root, index, plan)


# --------------------------------------------------------------------------- memory


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


class PeakRSS:
    """Context manager: ``.peak_bytes`` = peak RSS growth over the RSS at entry (see module docstring)."""

    def __enter__(self):
        self.base = _rss()
        self.max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak = self.base or 0
        self._stop = threading.Event()
        if self.base is not None:
            self._t = threading.Thread(target=self._sample, daemon=True)
            self._t.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss() or 0)

    def __exit__(self, *exc):
        self._stop.set()
        if self.base is not None:
            self._t.join()
            self.peak = max(self.peak, _rss() or 0)
            self.peak_bytes = max(0, self.peak - self.base)
        else:
            scale = 1 if platform.system() == "Darwin" else 1024
            self.peak_bytes = (
                max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.max_before) * scale
            )
        return False


# --------------------------------------------------------------------------- settings


@dataclass
class Setting:
    """One thing being measured: a runtime over a pack (or the baseline over the first pack's plan)."""

    backend: str
    precision: str
    pack: Pack
    runtime: object = None
    runtime_name: str = ""
    timing_note: str | None = None
    load_ms: dict = field(default_factory=dict)
    first_ms: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    graph_samples: dict = field(default_factory=dict)
    frame_samples: dict = field(default_factory=dict)
    numerics: list = field(default_factory=list)
    top_ops: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    feeds: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "pytorch" if self.backend == "pytorch" else f"{self.backend} {self.precision}"

    def call(self, key: str) -> dict:
        graph = self.pack.plan["calls"][key]["graph"]
        return self.runtime._run(graph, self.feeds[key])


def _open(setting: Setting, threads: int | None) -> None:
    """Create the runtime of ``setting`` (nothing loaded yet, except the PyTorch reference)."""
    pack = setting.pack
    if setting.backend == "pytorch":
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            setting.runtime = reference_runtime(pack.as_bundle())
        ms = (time.perf_counter() - t0) * 1e3
        for g in pack.index["artifacts"]:
            setting.load_ms[g] = ms
            setting.memory[g] = mem.peak_bytes
        setting.runtime_name = "pytorch-eager"
        setting.notes.append(
            "pytorch load_ms is the whole reference build (weights + fusion of all four graphs)"
        )
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        return
    kwargs = {"num_threads": threads} if threads else {}
    if setting.backend == "coreml":
        kwargs["compute_units"] = None
    setting.runtime = runtime_from_bundle(pack.as_bundle(), setting.backend, setting.precision, **kwargs)
    setting.runtime_name = RUNTIME_NAMES.get(setting.backend, setting.backend)
    if getattr(setting.runtime, "name", "") == "coreml-mil-evaluator":
        setting.runtime_name = "coreml-mil-evaluator"
        setting.timing_note = "MIL evaluator on Linux: numerics only, timings are not Core ML's"
    if setting.backend == "executorch" and threads:
        setting.notes.append(
            "threads ignored: the ExecuTorch Python bindings do not size XNNPACK's threadpool"
        )


def _load_graph(setting: Setting, graph: str) -> None:
    rt = setting.runtime
    loader = {"onnx": "session", "executorch": "method", "coreml": "model"}.get(setting.backend)
    if loader is None:
        return
    t0 = time.perf_counter()
    with PeakRSS() as mem:
        getattr(rt, loader)(graph)
        setting.load_ms[graph] = (time.perf_counter() - t0) * 1e3
        key = setting.pack.plan["graph_benchmarks"][graph]
        t1 = time.perf_counter()
        setting.call(key)
        setting.first_ms[graph] = (time.perf_counter() - t1) * 1e3
    setting.memory[graph] = mem.peak_bytes


def _first_pytorch(setting: Setting, graph: str) -> None:
    key = setting.pack.plan["graph_benchmarks"][graph]
    t1 = time.perf_counter()
    with PeakRSS() as mem:
        setting.call(key)
    setting.first_ms[graph] = (time.perf_counter() - t1) * 1e3
    setting.memory[graph] = max(setting.memory.get(graph, 0), mem.peak_bytes)


def _numerics(setting: Setting) -> None:
    """Run every call once and compare each output with the pack's expected tensor (pack.md rules)."""
    plan = setting.pack.plan
    for key, call in plan["calls"].items():
        graph = call["graph"]
        try:
            outs = setting.call(key)
            error = None
        except Exception as e:  # a failing call is a numerics failure, not a crash of the run
            outs, error = {}, f"{type(e).__name__}: {e}"
        for name, tkey in call["expected"].items():
            tol = plan["tolerances"].get(graph, {}).get(name, {})
            row = {
                "call": key,
                "graph": graph,
                "output": name,
                "kind": tol.get("kind"),
                "max_abs": None,
                "ref_scale": None,
                "rel_max_abs": None,
                "cosine": None,
                "tolerance_rel_max_abs": tol.get("rel_max_abs"),
                "tolerance_min_cosine": tol.get("min_cosine"),
                "passed": False,
                "error": error,
            }
            if error is None:
                got = np.asarray(outs[name], dtype=np.float32)
                exp = setting.pack.tensor(tkey)
                if got.shape != exp.shape:
                    row["error"] = f"shape {list(got.shape)} != expected {list(exp.shape)}"
                elif not np.isfinite(got).all():
                    row["error"] = "non-finite output"
                else:
                    c = compare(f"{key}.{name}", exp, got)
                    row.update(
                        max_abs=c.max_abs, ref_scale=c.ref_scale, rel_max_abs=c.rel_max_abs, cosine=c.cosine
                    )
                    row["passed"] = bool(
                        tol and c.rel_max_abs <= tol["rel_max_abs"] and c.cosine >= tol["min_cosine"]
                    )
                    if not tol:
                        row["error"] = "no tolerance for this output in the plan"
            setting.numerics.append(row)


def _round(setting: Setting, record: bool) -> None:
    """One round: every graph benchmark call, then every composite frame (calls back to back)."""
    plan = setting.pack.plan
    for graph, key in plan["graph_benchmarks"].items():
        t0 = time.perf_counter()
        setting.call(key)
        if record:
            setting.graph_samples.setdefault(graph, []).append((time.perf_counter() - t0) * 1e3)
    for frame in plan["frames"]:
        t0 = time.perf_counter()
        for key in frame["calls"]:
            setting.call(key)
        if record:
            setting.frame_samples.setdefault(frame["name"], []).append((time.perf_counter() - t0) * 1e3)


def device_info() -> dict:
    """This host as the result schema's ``device``."""
    mem = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "model": f"host ({platform.machine()})",
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cores": os.cpu_count() or 1,
        "memory_bytes": mem,
        "chipset": platform.processor() or None,
        "emulated": False,
    }


def _runtime_version(backend: str) -> str:
    from importlib import metadata

    dist = {"onnx": "onnxruntime", "executorch": "executorch", "coreml": "coremltools", "pytorch": "torch"}[
        backend
    ]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _result(
    s: Setting, threads: int | None, warmup: int, iterations: int, gflop: dict, peak: dict | None
) -> dict:
    plan = s.pack.plan
    # The work of what ran: an artifact's own count (an exact rewrite may do less than the
    # reference, e.g. the memory attention's cross-attention in the 64-d memory space).
    arts = s.pack.index.get("artifacts", {}) if s.backend != "pytorch" else {}
    gflop = {g: arts.get(g, {}).get("gflop") or v for g, v in gflop.items()}
    graphs = {}
    for graph in plan["graph_benchmarks"]:
        lat = summarize(s.graph_samples[graph])
        g = gflop.get(graph)
        achieved = g / (lat["p50_ms"] / 1e3) if g else None
        peak_g = (peak or {}).get("peak_gflops_fp32")
        graphs[graph] = {
            "artifact": None if s.backend == "pytorch" else s.pack.index["artifacts"][graph]["file"],
            "compile_ms": None,
            "load_ms": s.load_ms.get(graph, 0.0),
            "first_inference_ms": s.first_ms.get(graph, 0.0),
            "latency": lat,
            "peak_memory_bytes": s.memory.get(graph),
            "gflop": g,
            "achieved_gflops": achieved,
            "roofline_fraction": achieved / peak_g if achieved and peak_g else None,
            "top_ops": s.top_ops.get(graph, []),
        }
    frames = {}
    for frame in plan["frames"]:
        lat = summarize(s.frame_samples[frame["name"]])
        fg = [gflop.get(plan["calls"][k]["graph"]) for k in frame["calls"]]
        frames[frame["name"]] = {
            "objects": frame["objects"],
            "kind": frame["kind"],
            "latency": lat,
            "fps": 1e3 / lat["p50_ms"] if lat["p50_ms"] > 0 else 0.0,
            "gflop": sum(fg) if all(v is not None for v in fg) else None,
        }
    return {
        "format": "edgetam-bench-result",
        "version": 1,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": device_info(),
        "runner": {
            "name": RUNNER_NAME,
            "version": _package_version(),
            "runtime": s.runtime_name,
            "runtime_version": _runtime_version(s.backend),
            "timing_note": s.timing_note,
        },
        "setting": {
            "backend": s.backend,
            "precision": s.precision,
            "threads": threads,
            "compute_units": getattr(s.runtime, "compute_units", None) if s.backend == "coreml" else None,
            "delegate": DELEGATES.get(s.backend),
            "warmup": warmup,
            "iterations": iterations,
        },
        "pack": {
            "bundle_digest": s.pack.index.get("bundle_digest"),
            "path": str(s.pack.root) if s.backend != "pytorch" else None,
            "weights": s.pack.index.get("weights"),
        },
        "graphs": graphs,
        "frames": frames,
        "numerics": s.numerics,
        "passed": bool(s.numerics) and all(r["passed"] for r in s.numerics),
        "arithmetic": peak,
        "notes": s.notes,
    }


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("edgetam-export")
    except metadata.PackageNotFoundError:
        return "unknown"


def run_packs(
    packs: list[str | os.PathLike | Pack],
    *,
    threads: int | None = None,
    iterations: int | None = None,
    warmup: int | None = None,
    baseline: bool = True,
    profile: bool = True,
    arithmetic: bool = True,
    progress: Progress | None = None,
) -> list[dict]:
    """Run the packs' plans interleaved (plus the PyTorch baseline) and return one result per setting.

    ``iterations``/``warmup``/``threads`` override the plan's. The baseline runs the first
    pack's calls and is judged with its tolerances. Results follow ``result.v1.schema.json``.
    """
    loaded = [p if isinstance(p, Pack) else load_pack(p) for p in packs]
    if not loaded:
        raise PackError("no packs to run")
    plan0 = loaded[0].plan
    iterations = int(iterations if iterations is not None else plan0["iterations"])
    warmup = int(warmup if warmup is not None else plan0["warmup"])
    threads = threads if threads is not None else plan0.get("threads")
    if iterations < 1 or warmup < 0:
        raise PackError(f"need iterations >= 1 and warmup >= 0, got {iterations}, {warmup}")
    settings = []
    if baseline:
        settings.append(Setting("pytorch", "fp32", loaded[0]))
    settings += [Setting(p.index["backend"], p.index["precision"], p) for p in loaded]
    report = progress or (lambda phase, done, total: None)
    graphs = list(plan0["graph_benchmarks"])
    total = len(settings) * (len(graphs) + 1)
    done = 0
    for s in settings:
        _open(s, threads)
        s.feeds = {
            k: {n: np.ascontiguousarray(v, np.float32) for n, v in s.pack.feeds(k).items()}
            for k in s.pack.plan["calls"]
        }
        for g in graphs:
            (_first_pytorch if s.backend == "pytorch" else _load_graph)(s, g)
            done += 1
            report("load", done, total)
        _numerics(s)
        done += 1
        report("load", done, total)
    for i in range(warmup):
        for s in settings:
            _round(s, record=False)
        report("warmup", i + 1, warmup)
    for i in range(iterations):
        for s in settings:
            _round(s, record=True)
        report("iterations", i + 1, iterations)
    gflop: dict = {}
    peak = None
    if arithmetic:
        from .flops import graph_gflop, measure_peak_gflops

        ref = next((s.runtime for s in settings if s.backend == "pytorch"), None)
        try:
            gflop = graph_gflop(loaded[0], ref)
        except Exception as e:  # arithmetic is best effort; the timing run stands
            for s in settings:
                s.notes.append(f"GFLOP count unavailable: {type(e).__name__}: {e}")
        peak = measure_peak_gflops(threads)
        report("arithmetic", 1, 1)
    if profile:
        from .profile import profile_setting

        for k, s in enumerate(settings):
            try:
                s.top_ops = profile_setting(s)
            except Exception as e:  # profiles are best effort; the timing run stands
                s.notes.append(f"profile unavailable: {type(e).__name__}: {e}")
            report("profile", k + 1, len(settings))
    return [_result(s, threads, warmup, iterations, gflop, peak) for s in settings]


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as JSON to ``path`` via a temp file + rename."""
    import uuid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)
    return path


__all__ = ["BundleError", "Pack", "PackError", "load_pack", "run_packs", "write_json_atomic"]
