"""ExecuTorch graphs before / after the XNNPACK rewrites (models/xnnpack_forms.py): delegate
coverage, the per-frame cost of every op left outside the delegate (ETDump + Inspector), and
latency measured interleaved in one process (medians).

Not a test (each lowering takes tens of seconds): run it by hand, e.g.

    python benchmarks/et_delegate_coverage.py --graph memory_encoder --precision fp32 \\
        --iterations 5 --out /tmp/et_cov.json

"before" lowers the export wrapper as it is; "after" lowers ``xnnpack_forms(wrapper)`` (what
the ExecuTorch exporter ships). fp16 wraps either in ``fp16_compute`` as the exporter does.
Feeds are each graph's ``example_inputs()``. Prints one table row per graph × precision ×
variant and writes everything as JSON.

With ``--before-bundle B1 --after-bundle B2`` nothing is lowered: the ``.pte`` artifacts of two
existing ExecuTorch bundles (e.g. exported by the previous and the current version) are compared
(coverage from their manifests, ETDump costs, parity, interleaved latency).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

GRAPHS = ("image_encoder", "prompt_decoder", "memory_encoder", "memory_attention")


def lower(module, precision: str, path: Path) -> dict:
    """Export ``module`` like the ExecuTorch exporter (without its rewrite) to ``path``; coverage notes."""
    import torch
    from edgetam_export.exporters.executorch_exporter import delegate_coverage
    from edgetam_export.models.precision import fp16_compute
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    target = fp16_compute(module) if precision == "fp16" else module
    with torch.no_grad():
        exported = torch.export.export(target, tuple(module.example_inputs()), strict=False)
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    notes = delegate_coverage(edge.exported_program())
    with open(path, "wb") as f:
        edge.to_executorch().write_to_file(f)
    return notes


def outside_costs(path: Path, inputs: list, runs: int) -> dict:
    """``{op: ms per run}`` of every ETDump event outside the delegate, plus the delegate call."""
    from edgetam_export.bench.profile import executorch_op_costs

    acc, delegated = executorch_op_costs(path, inputs, runs=runs)
    out = {name: round(ms / runs, 3) for name, (ms, _, _) in acc.items() if not delegated.get(name)}
    out["DELEGATE_CALL (all delegated work)"] = round(acc.get("DELEGATE_CALL", (0.0, 0, 1))[0] / runs, 3)
    return out


def parity(path: Path, inputs: list, want: list, contract) -> dict:
    """``{output: [rel max-abs, cosine]}`` of one run of the program against the fp32 reference outputs."""
    from executorch.runtime import Runtime

    from edgetam_export.verify.metrics import compare

    got = Runtime.get().load_program(path).load_method("forward").execute(inputs)
    out = {}
    for spec, w, g in zip(contract.outputs, want, got, strict=True):
        c = compare(spec.name, w, g.numpy())
        out[spec.name] = [float(f"{c.rel_max_abs:.2e}"), round(c.cosine, 8)]
    return out


def interleaved_ms(paths: dict[str, Path], inputs: list, iterations: int) -> dict[str, float]:
    """Median wall ms per variant, the variants run alternately (one warm-up each)."""
    from executorch.runtime import Runtime

    rt = Runtime.get()
    methods = {k: rt.load_program(p).load_method("forward") for k, p in paths.items()}
    times: dict[str, list[float]] = {k: [] for k in methods}
    for m in methods.values():
        m.execute(inputs)
    for _ in range(iterations):
        for k, m in methods.items():
            t0 = time.perf_counter()
            m.execute(inputs)
            times[k].append(1e3 * (time.perf_counter() - t0))
    return {k: round(statistics.median(v), 2) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graph", action="append", choices=GRAPHS, help="graphs (default: all four)")
    ap.add_argument("--precision", action="append", choices=("fp32", "fp16"), help="default: both")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--profile-runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads while lowering")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--before-bundle", type=Path, help="compare this bundle's .pte artifacts ...")
    ap.add_argument("--after-bundle", type=Path, help="... with this one's (no lowering)")
    args = ap.parse_args()

    import torch
    from edgetam_export.models.submodules import export_submodules
    from edgetam_export.models.xnnpack_forms import xnnpack_forms

    from edgetam_export.bundle.reference import build_reference

    torch.set_num_threads(args.threads)
    model, _, _ = build_reference(None, 0)
    mods = export_submodules(model)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for graph in args.graph or GRAPHS:
            module = mods[graph]
            inputs = list(module.example_inputs())
            with torch.no_grad():
                want = [w.numpy() for w in module(*inputs)]
            for precision in args.precision or ("fp32", "fp16"):
                paths, row, covs = {}, {"graph": graph, "precision": precision}, {}
                if args.before_bundle:
                    for variant, root in (("before", args.before_bundle), ("after", args.after_bundle)):
                        art = _artifact(root, graph, precision)
                        if art is not None:
                            paths[variant], covs[variant] = root / art["path"], art["notes"]
                else:
                    variants = [
                        ("before", module),
                        ("after", xnnpack_forms(module, half=precision == "fp16")),
                    ]
                    if precision == "fp16":
                        variants.append(("after_fp32_islands", xnnpack_forms(module)))
                    for variant, m in variants:
                        paths[variant] = Path(tmp) / f"{graph}.{precision}.{variant}.pte"
                        covs[variant] = lower(m, precision, paths[variant])
                if not paths:
                    continue
                for variant, path in paths.items():
                    row[variant] = {
                        "coverage": {
                            k: covs[variant].get(k)
                            for k in (
                                "coverage",
                                "delegated_ops",
                                "non_delegated_ops",
                                "non_delegated",
                                "delegate_calls",
                            )
                        },
                        "outside_ms": outside_costs(path, inputs, args.profile_runs),
                        "parity": parity(path, inputs, want, module.contract),
                    }
                for variant, ms in interleaved_ms(paths, inputs, args.iterations).items():
                    row[variant]["median_ms"] = ms
                results.append(row)
                for variant in paths:
                    r = row[variant]
                    c = r["coverage"]
                    # OPERATOR_CALL is ETDump's umbrella event of the non-delegated calls (their sum)
                    outside = {k: v for k, v in r["outside_ms"].items() if k.startswith("native_call_")}
                    print(
                        f"{graph:17s} {precision} {variant:6s} coverage {c['coverage']} "
                        f"({c['delegated_ops']} in, {c['non_delegated_ops']} out) "
                        f"median {r['median_ms']:8.1f} ms; outside ops {sum(outside.values()):7.2f} ms/run "
                        f"{json.dumps(outside)} parity {json.dumps(r['parity'])}",
                        flush=True,
                    )
                if args.out:
                    args.out.write_text(json.dumps(results, indent=1))


def _artifact(root: Path, graph: str, precision: str) -> dict | None:
    manifest = json.loads((root / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        if a["backend"] == "executorch" and a["graph"] == graph and a["precision"] == precision:
            return a
    return None


if __name__ == "__main__":
    main()
