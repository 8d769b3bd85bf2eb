"""The bench report's Quantization section and ``quant_iou.png``, from ``verify --json`` accuracy reports and the bench results."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .result_label import label

# What the section reads from an entry's "tracker" (TrackerAccuracy.as_dict()).
TRACKER_FIELDS = (
    "frames",
    "obj_ids",
    "per_frame_min_iou",
    "min_iou",
    "mean_iou",
    "score_signs_equal",
    "growth",
    "bound",
    "passed",
)
GROWTH_FIELDS = ("worst_frame", "first_frame_below_bound", "mean_iou_first_half", "mean_iou_second_half")
PLOT = "quant_iou.png"


class AccuracyError(ValueError):
    """An ``--accuracy`` file that is not a usable verify report (the message is one line)."""


def load_accuracy(path: str | os.PathLike) -> list[dict]:
    """The quantized precisions of one ``edgetam-export verify --json`` report, one entry each.

    Entry: the report's ``quantization["backend/precision"]`` object (``graphs``, ``tracker``,
    ``against``, ``recipe``, ``artifact_bytes``; the last two absent from older reports) plus
    ``backend``, ``precision`` and ``source`` (the file name). Raises :class:`AccuracyError`.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise AccuracyError(f"cannot read it ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AccuracyError(f"not valid JSON ({str(e).splitlines()[0]})") from None
    quant = data.get("quantization") if isinstance(data, dict) else None
    if not isinstance(quant, dict):
        raise AccuracyError("not an `edgetam-export verify --json` report (no 'quantization' object)")
    if not quant:
        raise AccuracyError("the report holds no quantized precision (verify with --precision int8 or mixed)")
    entries = []
    for key, q in quant.items():
        backend, _, precision = key.partition("/")
        if not backend or not precision or not isinstance(q, dict):
            raise AccuracyError(f"quantization entry {key!r} is not a 'backend/precision' object")
        _check_entry(key, q)
        entries.append({**q, "backend": backend, "precision": precision, "source": path.name})
    return entries


def _check_entry(key: str, q: dict) -> None:
    graphs = q.get("graphs")
    if not isinstance(graphs, dict):
        raise AccuracyError(f"{key}: no 'graphs' object")
    for g, a in graphs.items():
        if not isinstance(a, dict) or not all(_is_number(a.get(k)) for k in ("cosine", "rel_max_abs")):
            raise AccuracyError(f"{key}: graph {g!r} lacks numeric 'cosine' / 'rel_max_abs'")
    tr = q.get("tracker")
    if tr is not None:  # None: a partial bundle, no tracker scenario
        _check_tracker(key, tr)
    sizes = q.get("artifact_bytes")
    if sizes is not None and not (
        isinstance(sizes, dict)
        and _is_number(sizes.get("total"))
        and (sizes.get("fp32_total") is None or _is_number(sizes["fp32_total"]))
    ):
        raise AccuracyError(f"{key}: 'artifact_bytes' is not {{total: bytes, fp32_total: bytes or null}}")


def _check_tracker(key: str, tr) -> None:
    missing = [f for f in TRACKER_FIELDS if not isinstance(tr, dict) or f not in tr]
    if not missing and isinstance(tr["growth"], dict):
        missing = [f"growth.{f}" for f in GROWTH_FIELDS if f not in tr["growth"]]
    if missing:
        raise AccuracyError(f"{key}: the tracker entry lacks {', '.join(missing)}")
    mins, signs, n = tr["per_frame_min_iou"], tr["score_signs_equal"], tr["frames"]
    ok = (
        isinstance(n, int)
        and n >= 1
        and isinstance(mins, list)
        and len(mins) == n
        and all(_is_number(v) for v in mins)
        and all(_is_number(tr[k]) for k in ("min_iou", "mean_iou"))
        and isinstance(signs, list)
        and len(signs) == n
        and all(isinstance(row, list) for row in signs)
        and isinstance(tr["bound"], dict)
        and isinstance(tr["growth"], dict)
        and isinstance(tr["growth"]["worst_frame"], int)
        and 0 <= tr["growth"]["worst_frame"] < n
        and all(_is_number(tr["growth"][k]) for k in ("mean_iou_first_half", "mean_iou_second_half"))
    )
    if not ok:
        raise AccuracyError(
            f"{key}: the tracker entry is inconsistent (frames {n!r}; per_frame_min_iou, score_signs_equal, "
            "growth.worst_frame must match it; IoUs numbers, bound and growth objects)"
        )


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def name(e: dict, entries: list[dict]) -> str:
    """``backend precision``, with the source file when two entries share that name."""
    twins = [x for x in entries if (x["backend"], x["precision"]) == (e["backend"], e["precision"])]
    return f"{e['backend']} {e['precision']}" + (f" [{e['source']}]" if len(twins) > 1 else "")


def size_share(e: dict) -> tuple[float | None, float | None]:
    """``(total MB, fraction of the same graphs' fp32 artifacts)``; None where verify did not record it."""
    sizes = e.get("artifact_bytes") or {}
    total, fp32 = sizes.get("total"), sizes.get("fp32_total")
    return (
        total / 2**20 if total is not None else None,
        total / fp32 if total is not None and fp32 else None,
    )


def sign_counts(tracker: dict) -> tuple[int, int]:
    """``(frame/object pairs whose object-score sign equals fp32's, all pairs)``."""
    flat = [bool(v) for row in tracker["score_signs_equal"] for v in row]
    return sum(flat), len(flat)


def speed_vs_fp32(results: list[dict], backend: str, precision: str) -> list[dict]:
    """Whole-frame p50 of each ``backend precision`` bench setting / the same backend's fp32 p50.

    One item per quantized setting in ``results``: ``{"who", "ratios": {frame: ratio},
    "p50": {frame: (quantized ms, fp32 ms)}}``, or ``{"who", "missing": why}`` when no fp32
    setting ran on the same device with the same threads; ``[{"who": None, "missing": why}]``
    when ``results`` hold no such setting.
    """

    def setting(r):
        return r["setting"]["backend"], r["setting"]["precision"]

    quant = [r for r in results if setting(r) == (backend, precision)]
    if not quant:
        return [{"who": None, "missing": f"the bench results hold no {backend} {precision} setting"}]
    out = []
    for q in quant:
        threads = q["setting"].get("threads")
        base = next(
            (
                r
                for r in results
                if setting(r) == (backend, "fp32")
                and r["device"] == q["device"]
                and r["setting"].get("threads") == threads
            ),
            None,
        )
        if base is None:
            out.append(
                {
                    "who": label(q),
                    "missing": f"no {backend} fp32 setting on {q['device']['model']} "
                    f"with threads {threads} in the bench results",
                }
            )
            continue
        ratios, p50 = {}, {}
        for f, e in q["frames"].items():
            b = base["frames"].get(f)
            if b is not None and b["latency"]["p50_ms"] > 0:
                p50[f] = (e["latency"]["p50_ms"], b["latency"]["p50_ms"])
                ratios[f] = p50[f][0] / p50[f][1]
        out.append({"who": label(q), "ratios": ratios, "p50": p50})
    return out


def _f(x, spec: str) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return format(x, spec)


def section(results: list[dict], entries: list[dict]) -> list[str]:
    """Markdown lines of ``## Quantization`` (see docs/BENCHMARKS.md, "Reading the report")."""
    lines = [
        "## Quantization",
        "",
        "From `edgetam-export verify --json` reports (`--accuracy`): each quantized precision against the "
        "fp32 artifacts of the same backend. Artifacts: total size and share of the same graphs at fp32. "
        "Tracker: the verify scenario (procedural frames, a click and a box on frame 0), per-frame mask "
        "IoU (min over objects), object-score signs equal to fp32's, where the error grows "
        "(first frame below the bound, worst frame, mean IoU of the first -> second half).",
        "",
        "| backend precision | recipe | artifacts | vs fp32 | frames | min IoU | mean IoU (halves) "
        "| score signs equal | first frame < bound | worst frame | verify |",
        "|" + "---|" * 11,
    ]
    notes = []
    for e in entries:
        mb, share = size_share(e)
        tr = e.get("tracker")
        cells = [name(e, entries), f"`{e['recipe']}`" if e.get("recipe") else "-"]
        cells += [f"{mb:.1f} MB" if mb is not None else "-", f"{share:.1%}" if share is not None else "-"]
        if tr is None:
            cells += ["-"] * 6 + ["no tracker scenario (partial bundle)"]
        else:
            g, mins = tr["growth"], tr["per_frame_min_iou"]
            equal, n = sign_counts(tr)
            first = g["first_frame_below_bound"]
            cells += [
                str(tr["frames"]),
                _f(tr["min_iou"], ".4f"),
                f"{_f(tr['mean_iou'], '.4f')} ({_f(g['mean_iou_first_half'], '.4f')} -> "
                f"{_f(g['mean_iou_second_half'], '.4f')})",
                f"{equal}/{n}",
                "none" if first is None else f"{first} (bound {tr['bound'].get('min_iou')})",
                f"{g['worst_frame']} ({_f(mins[g['worst_frame']], '.4f')})",
                "pass" if tr["passed"] else "**FAIL**",
            ]
        lines.append("| " + " | ".join(cells) + " |")
        against = e.get("against")
        if against and against != f"{e['backend']} fp32":
            notes.append(f"- {name(e, entries)} was measured against the {against}.")
    lines += ["", *notes, *([""] if notes else [])]

    lines += ["### Per graph vs fp32 (worst output)", ""]
    lines += ["| backend precision | graph | cosine | rel max-abs |", "|---|---|---|---|"]
    for e in entries:
        for g, a in e["graphs"].items():
            lines.append(
                f"| {name(e, entries)} | {g} | {_f(a['cosine'], '.6f')} | {_f(a['rel_max_abs'], '.3g')} |"
            )
    lines.append("")

    lines += [
        "### Whole-frame speed vs fp32",
        "",
        "p50 of the quantized setting / p50 of the same backend's fp32 setting on the same device and "
        "threads (below 1.00x = faster), from the bench results; the p50s (ms) in parentheses.",
        "",
    ]
    settings = dict.fromkeys((e["backend"], e["precision"]) for e in entries)
    speeds = [(bp, s) for bp in settings for s in speed_vs_fp32(results, *bp)]
    measured = [s for _, s in speeds if "ratios" in s]
    frames = list(dict.fromkeys(f for s in measured for f in s["ratios"]))
    if measured:
        lines += ["| setting | " + " | ".join(frames) + " |", "|" + "---|" * (len(frames) + 1)]
        for s in measured:
            cells = [
                f"{s['ratios'][f]:.2f}x ({s['p50'][f][0]:.1f} vs {s['p50'][f][1]:.1f})"
                if f in s["ratios"]
                else "-"
                for f in frames
            ]
            lines.append(f"| {s['who']} | " + " | ".join(cells) + " |")
        lines.append("")
    missing = [f"- {b} {p}: no speed ratio: {s['missing']}." for (b, p), s in speeds if "missing" in s]
    lines += [*missing, *([""] if missing else [])]
    lines.append(f"![per-frame min mask IoU vs fp32]({PLOT})")
    return lines


def plot_quant_iou(entries: list[dict], path: str | os.PathLike) -> Path:
    """Lines: per-frame min-over-objects mask IoU vs fp32 of every entry with a tracker scenario."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tracked = [e for e in entries if e.get("tracker")]
    fig, ax = plt.subplots(figsize=(8, 4))
    if not tracked:
        ax.text(0.5, 0.5, "no tracker scenario in these verify reports", ha="center")
        ax.axis("off")
    low = 1.0
    for e in tracked:
        tr = e["tracker"]
        mins = tr["per_frame_min_iou"]
        low = min(low, *mins)
        (line,) = ax.plot(range(len(mins)), mins, marker=".", label=name(e, entries))
        flips = [t for t, row in enumerate(tr["score_signs_equal"]) if not all(row)]
        if flips:
            ax.scatter(flips, [mins[t] for t in flips], color=line.get_color(), marker="x", s=60, zorder=3)
    for b in sorted({e["tracker"]["bound"].get("min_iou") for e in tracked} - {None}):
        ax.axhline(b, color="grey", ls="--", lw=1)
        ax.text(0, b, f" bound {b}", va="bottom", fontsize=7, color="grey")
    if tracked:
        ax.set_ylim(min(0.9, low - 0.01), 1.001)
        ax.set_xlabel("frame (x: an object-score sign differs from fp32)")
        ax.set_ylabel("mask IoU vs fp32 (min over objects)")
        ax.set_title("quantized tracker vs fp32 along the scenario")
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
