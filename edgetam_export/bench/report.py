"""Reports: merge bench results (host and devices) into a Markdown table and matplotlib PNG plots."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from .result_label import label


def _baseline(results: list[dict], r: dict) -> dict | None:
    same = [x for x in results if x["setting"]["backend"] == "pytorch" and x["device"] == r["device"]]
    return same[0] if same and same[0] is not r else None


def markdown(results: list[dict], accuracy: list[dict] | None = None) -> str:
    """The report's Markdown: per graph and per frame p50 ms, ratio to PyTorch eager, roofline fraction;
    with ``accuracy`` (entries of :func:`~edgetam_export.bench.quant_report.load_accuracy`), the
    Quantization section."""
    graphs = list(dict.fromkeys(g for r in results for g in r["graphs"]))
    frames = list(dict.fromkeys(f for r in results for f in r["frames"]))
    lines = ["# EdgeTAM benchmark report", ""]
    lines.append(
        "p50 latency in ms over the timed iterations; `(N.NNx)` = ratio to PyTorch eager on the same device; "
        "`roof` = achieved GFLOP/s / measured fp32 GEMM peak; frames give FPS = 1000 / p50."
    )
    lines.append("")
    head = ["row", *(label(r) for r in results)]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(r, section, name):
        e = r[section].get(name)
        if e is None:
            return "-"
        p50 = e["latency"]["p50_ms"]
        txt = f"{p50:.1f}"
        base = _baseline(results, r)
        if base and name in base[section]:
            txt += f" ({p50 / base[section][name]['latency']['p50_ms']:.2f}x)"
        if e.get("roofline_fraction") is not None:
            txt += f", roof {e['roofline_fraction']:.1%}"
        if section == "frames":
            txt += f", {e['fps']:.2f} FPS"
        return txt

    for g in graphs:
        lines.append("| " + " | ".join([g, *(cell(r, "graphs", g) for r in results)]) + " |")
    for f in frames:
        lines.append("| " + " | ".join([f"frame {f}", *(cell(r, "frames", f) for r in results)]) + " |")
    lines.append("| numerics | " + " | ".join("pass" if r["passed"] else "**FAIL**" for r in results) + " |")
    lines.append("")
    lines.append("## Settings")
    lines.append("")
    for r in results:
        s, a = r["setting"], r.get("arithmetic") or {}
        note = r["runner"].get("timing_note")
        peak = a.get("peak_gflops_fp32")
        lines.append(
            f"- **{label(r)}**: runtime {r['runner']['runtime']} {r['runner']['runtime_version']}, threads "
            f"{s['threads']}, delegate {s.get('delegate')}, warmup {s.get('warmup')}, iterations {s.get('iterations')}"
            + (f", fp32 peak {peak:.1f} GFLOP/s ({a.get('peak_method')})" if peak else "")
            + (f"; note: {note}" if note else "")
        )
    failed = [(label(r), n) for r in results for n in r["numerics"] if not n["passed"]]
    if failed:
        lines += ["", "## Numerics failures", ""]
        lines += [
            f"- {who}: `{n['call']}` output `{n['output']}` rel_max_abs {n['rel_max_abs']}, cosine {n['cosine']}"
            + (f" ({n['error']})" if n.get("error") else "")
            for who, n in failed
        ]
    if accuracy:
        from .quant_report import section

        lines += ["", *section(results, accuracy)]
    lines += [
        "",
        "## Plots",
        "",
        "![per-graph latency](graph_latency.png)",
        "",
        "![frame FPS](frame_fps.png)",
        "",
    ]
    lines += ["![top ops](top_ops.png)", ""]
    return "\n".join(lines)


def plot_graph_latency(results: list[dict], path: Path) -> None:
    """Grouped bars: per-graph p50 (ms) by backend/precision/device."""
    import matplotlib.pyplot as plt
    import numpy as np

    graphs = list(dict.fromkeys(g for r in results for g in r["graphs"]))
    x = np.arange(len(graphs))
    w = 0.8 / max(1, len(results))
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, r in enumerate(results):
        vals = [r["graphs"].get(g, {}).get("latency", {}).get("p50_ms", 0.0) for g in graphs]
        ax.bar(x + i * w, vals, w, label=label(r))
    ax.set_xticks(x + w * (len(results) - 1) / 2, graphs)
    ax.set_ylabel("p50 latency (ms)")
    ax.set_yscale("log")
    ax.set_title("per-graph latency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_frame_fps(results: list[dict], path: Path) -> None:
    """Lines: tracked-frame FPS vs number of objects per backend/precision/device."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        pts = sorted((f["objects"], f["fps"]) for f in r["frames"].values() if f["kind"] == "tracked")
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label(r))
    ax.set_xlabel("objects")
    ax.set_ylabel("tracked frames per second (1000 / p50)")
    ax.set_title("whole tracked frame FPS vs objects")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_top_ops(results: list[dict], path: Path, graph: str = "image_encoder") -> None:
    """Horizontal bars: the top ops of ``graph`` for every result that has a profile."""
    import matplotlib.pyplot as plt

    withops = [r for r in results if r["graphs"].get(graph, {}).get("top_ops")]
    fig, axes = plt.subplots(max(1, len(withops)), 1, figsize=(9, 2.6 * max(1, len(withops))), squeeze=False)
    for ax, r in zip(axes[:, 0], withops or [None], strict=False):
        if r is None:
            ax.text(0.5, 0.5, "no profiles in these results", ha="center")
            ax.axis("off")
            continue
        ops = r["graphs"][graph]["top_ops"][::-1]
        names = [
            o["name"][:50] + ("" if o.get("delegated") in (None, True) else " [outside delegate]")
            for o in ops
        ]
        ax.barh(names, [o["ms"] for o in ops])
        ax.set_title(f"{graph} top ops: {label(r)}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("ms (one profiled run)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results: list[dict], out: str | os.PathLike, accuracy: list[dict] | None = None) -> Path:
    """Write ``out/report.md`` and its PNG plots (folder assembled in a temp dir, then renamed);
    ``accuracy``: verify reports' quantized entries (the Quantization section and ``quant_iou.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        plot_graph_latency(results, tmp / "graph_latency.png")
        plot_frame_fps(results, tmp / "frame_fps.png")
        plot_top_ops(results, tmp / "top_ops.png")
        if accuracy:
            from .quant_report import PLOT, plot_quant_iou

            plot_quant_iou(accuracy, tmp / PLOT)
        (tmp / "report.md").write_text(markdown(results, accuracy))
        if out.exists():
            # keep anything else in the folder (e.g. host.json): replace only our files
            for f in tmp.iterdir():
                f.replace(out / f.name)
            shutil.rmtree(tmp)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "report.md"
