"""edgetam_bench (android_harness/): the native ExecuTorch runner built and run here on a real
bench pack — x86-64 natively, arm64 under qemu — plus its bad-input errors."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from .conftest import QEMU_GRAPHS, REPO, linked_copy, run_bench

SCHEMA = json.loads((REPO / "benchmarks" / "schema" / "result.v1.schema.json").read_text())
GRAPHS = {"image_encoder", "prompt_decoder", "memory_encoder", "memory_attention"}


def expected_rows(pack: Path) -> set[tuple[str, str]]:
    plan = json.loads((pack / "plan.json").read_text())
    return {(call, out) for call, c in plan["calls"].items() for out in c["expected"]}


def check_result(
    result: dict, pack: Path, benchmarked: set[str] = GRAPHS, compared: set[str] = GRAPHS
) -> None:
    """Schema-valid, ``benchmarked`` graphs timed, every (call, output) of the ``compared`` graphs
    compared and within tolerance."""
    jsonschema.validate(result, SCHEMA)
    assert set(result["graphs"]) == benchmarked
    assert {n["graph"] for n in result["numerics"]} == compared
    assert {(n["call"], n["output"]) for n in result["numerics"]} == expected_rows(pack)
    failed = [n for n in result["numerics"] if not n["passed"]]
    assert not failed, failed
    assert result["passed"] is True
    assert result["setting"]["delegate"] == "XnnpackBackend"


def python_runtime_p50(pack: Path, warmup: int, iterations: int) -> dict[str, float]:
    """Per-graph p50 (ms) of the Python ExecuTorch runtime on the pack's graph-benchmark calls."""
    import torch
    from executorch.runtime import Runtime

    index = json.loads((pack / "index.json").read_text())
    plan = json.loads((pack / "plan.json").read_text())
    rt = Runtime.get()
    out = {}
    for graph, call_key in plan["graph_benchmarks"].items():
        art = index["artifacts"][graph]
        call = plan["calls"][call_key]
        feeds = []
        for spec in art["inputs"]:
            t = index["tensors"][call["inputs"][spec["name"]]]
            arr = np.fromfile(pack / t["file"], dtype=np.dtype(t["dtype"]).newbyteorder("<")).reshape(
                t["shape"]
            )
            feeds.append(torch.from_numpy(arr))
        method = rt.load_program(pack / art["file"]).load_method(art.get("method", "forward"))
        method.execute(feeds)
        for _ in range(warmup):
            method.execute(feeds)
        samples = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            method.execute(feeds)
            samples.append((time.perf_counter() - t0) * 1e3)
        out[graph] = statistics.median(samples)
    return out


def test_host_runner_on_real_pack(bench_pack, host_bench, tmp_path):
    """x86-64: all four graphs and a whole tracked frame within tolerance; ETDump readable by the
    devtools Inspector; per-graph p50 reported side by side with the Python ExecuTorch runtime."""
    out = tmp_path / "result.json"
    etdump = tmp_path / "prof.etdp"
    p = run_bench(host_bench, bench_pack, out, "--frames", "tracked_1obj", "--etdump", str(etdump))
    assert p.returncode == 0, p.stderr
    result = json.loads(out.read_text())
    check_result(result, bench_pack)
    assert set(result["frames"]) == {"tracked_1obj"}
    assert result["frames"]["tracked_1obj"]["latency"]["n"] == 3

    from executorch.devtools import Inspector

    inspector = Inspector(etdump_path=str(tmp_path / "prof.memory_encoder.etdp"))
    names = {e.name for block in inspector.event_blocks for e in block.events}
    assert "Method::execute" in names or any("DELEGATE" in n.upper() or "native_call" in n for n in names), (
        names
    )

    python = python_runtime_p50(bench_pack, warmup=1, iterations=3)
    print("\nx86-64 per-graph p50 (ms): C++ edgetam_bench vs Python executorch.runtime")
    for graph in sorted(GRAPHS):
        print(f"  {graph:<18}{result['graphs'][graph]['latency']['p50_ms']:>10.1f}{python[graph]:>10.1f}")
    print(f"  tracked_1obj frame {result['frames']['tracked_1obj']['latency']['p50_ms']:.1f} ms (C++)")


@pytest.mark.parametrize("pack_fixture", ["tracked_frame_pack", "tracked_frame_pack_fp16"])
def test_arm64_runner_under_qemu(pack_fixture, request, arm64_bench, tmp_path):
    """arm64 (the ARM XNNPACK kernels phones run) under qemu: the prompt decoder and memory encoder
    calls of one tracked frame, each run once and compared within tolerance, at fp32 and at fp16
    (ARMv8.2 half-precision arithmetic). Nothing is timed (emulated timings mean nothing). The
    whole frame: see QEMU_GRAPHS in conftest.py."""
    tracked_frame_pack = request.getfixturevalue(pack_fixture)
    out = tmp_path / "result.json"
    t0 = time.perf_counter()
    p = run_bench(
        arm64_bench,
        tracked_frame_pack,
        out,
        *("--iterations", "1", "--warmup", "0", "--graphs", "none", "--frames", "none", "--emulated"),
    )
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    result = json.loads(out.read_text())
    check_result(result, tracked_frame_pack, benchmarked=set(), compared=set(QEMU_GRAPHS))
    assert result["device"]["arch"] == "aarch64"
    assert result["device"]["emulated"] is True
    assert len(result["numerics"]) == len(expected_rows(tracked_frame_pack)) > 0
    print(f"\narm64 under qemu: wall {wall:.0f} s")
    for n in result["numerics"]:
        print(
            f"  {n['call']:<36}{n['output']:<10} max-abs {n['max_abs']:.3g}  rel {n['rel_max_abs']:.3g}  cos {n['cosine']:.9f}"
        )


# --------------------------------------------------------------------------- bad input


def one_line_error(p, *fragments: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("edgetam_bench: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def test_corrupted_pte(bench_pack, host_bench, tmp_path):
    pack = linked_copy(bench_pack, tmp_path / "pack")
    pte = pack / "artifacts" / "prompt_decoder.fp32.pte"
    data = pte.read_bytes()
    pte.unlink()
    pte.write_bytes(data[:64] + bytes(len(data) - 64)[:4096])
    p = run_bench(
        host_bench, pack, tmp_path / "r.json", "--iterations", "1", "--warmup", "0", "--frames", "none"
    )
    one_line_error(p, "prompt_decoder.fp32.pte", "cannot load")
    assert not (tmp_path / "r.json").exists()


def test_truncated_tensor(bench_pack, host_bench, tmp_path):
    pack = linked_copy(bench_pack, tmp_path / "pack")
    index = json.loads((pack / "index.json").read_text())
    t = pack / index["tensors"]["steady/memory_encoder/obj0/in/mask_low"]["file"]
    data = t.read_bytes()
    t.unlink()
    t.write_bytes(data[: len(data) // 2])
    p = run_bench(
        host_bench, pack, tmp_path / "r.json", "--iterations", "1", "--warmup", "0", "--frames", "none"
    )
    one_line_error(p, t.name, "truncated", str(len(data) // 2))


def test_index_disagrees_with_method_meta(bench_pack, host_bench, tmp_path):
    """The index declares mask_low as int32 (tensor file consistent with it): the .pte says float32."""
    pack = linked_copy(bench_pack, tmp_path / "pack")
    index = json.loads((pack / "index.json").read_text())
    for spec in index["artifacts"]["memory_encoder"]["inputs"]:
        if spec["name"] == "mask_low":
            spec["dtype"] = "int32"
    for key, t in index["tensors"].items():
        if "/memory_encoder/" in key and key.endswith("/in/mask_low"):
            t["dtype"] = "int32"
    (pack / "index.json").unlink()
    (pack / "index.json").write_text(json.dumps(index))
    p = run_bench(
        host_bench, pack, tmp_path / "r.json", "--iterations", "1", "--warmup", "0", "--frames", "none"
    )
    one_line_error(p, "memory_encoder.fp32.pte", "'mask_low'", "float32", "int32")


@pytest.mark.parametrize("case", ["no_pack", "bad_json", "bad_option"])
def test_other_bad_input(bench_pack, host_bench, tmp_path, case):
    args = ()
    pack = tmp_path / "missing"
    if case == "bad_json":
        pack = linked_copy(bench_pack, tmp_path / "pack")
        (pack / "plan.json").unlink()
        (pack / "plan.json").write_text("{not json")
    elif case == "bad_option":
        pack, args = bench_pack, ("--iterations", "0")
    p = run_bench(host_bench, pack, tmp_path / "r.json", *args)
    one_line_error(
        p, {"no_pack": "no such pack", "bad_json": "plan.json", "bad_option": "--iterations"}[case]
    )
