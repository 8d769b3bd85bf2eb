"""Where a tracked frame's time goes when the real tracker runs a bundle: the four graphs vs host-side work.

The bench runner times the graphs back to back from captured inputs; this module times what an
app pays per frame instead: :class:`~edgetam_export.tracker.Tracker` streaming camera-sized
frames (default 1920x1080 RGB uint8) through one runtime, with the frame's resize and
normalisation, the feeds, the memory bank, the output decisions, hole filling and the
post-processing of the masks to the frame's size all on the clock.

Per steady-state tracked frame (after ``warmup`` frames fill the memory bank):

* ``frame_ms`` = ``tracker(session, frame=...)`` + ``post_process_masks`` to the frame size;
* ``graphs_ms`` = the time spent inside ``runtime.run`` (per graph, from the session's timings);
* ``host_ms`` = ``frame_ms - graphs_ms``; ``host_share`` = its fraction of the frame.

1-object and N-object sessions run interleaved frame by frame on one runtime (background load
hits both alike), so the N-object frame can be checked against the cost model "the encoder runs
once": ``encoder + N x (decoder + memory encoder + memory attention)``, the graphs' medians of
the 1-object session (``objects_ratio`` = measured N-object frame / model; <= 1.05 is the target).
An optional ``cProfile`` pass (not timed) names the host functions that cost the most.
"""

from __future__ import annotations

import cProfile
import pstats
import time

import numpy as np

from ._deps import Runtime, Tracker, procedural_frame
from .stats import summarize

GRAPHS = ("image_encoder", "prompt_decoder", "memory_encoder", "memory_attention")
DEFAULT_SIZE = (1080, 1920)  # (H, W): a landscape 1080p camera frame
# Shape centres of procedural frame 0 (x, y in its 1024² grid): square, ellipse, disk.
_CLICKS = ((700, 260), (480, 820), (260, 380))
TOP_HOST = 8


def camera_frames(count: int, size: tuple[int, int] = DEFAULT_SIZE) -> list[np.ndarray]:
    """``count`` procedural frames resized (bilinear, PIL) to ``size`` (H, W): (H, W, 3) uint8 RGB."""
    from PIL import Image

    h, w = size
    return [
        np.asarray(Image.fromarray(procedural_frame(t)).resize((w, h), Image.BILINEAR)) for t in range(count)
    ]


def _session(tracker: Tracker, frame0: np.ndarray, objects: int):
    h, w = frame0.shape[:2]
    s = tracker.init_video_session()
    clicks = [[[[x * w / 1024, y * h / 1024]] for x, y in _CLICKS[:objects]]]
    tracker.add_inputs_to_inference_session(
        s,
        0,
        list(range(1, objects + 1)),
        input_points=clicks,
        input_labels=[[[1]] * objects],
        original_size=(h, w),
    )
    return s


def _graph_seconds(s) -> dict[str, float]:
    return {g: float(sum(s.timings.get(g, []))) for g in GRAPHS}


def _timed_frame(tracker: Tracker, s, frame: np.ndarray) -> tuple[float, dict[str, float]]:
    """Wall seconds of one streamed frame (+ mask post-processing) and seconds per graph inside it."""
    before = _graph_seconds(s)
    t0 = time.perf_counter()
    out = tracker(s, frame=frame)
    tracker.post_process_masks([out.pred_masks], [frame.shape[:2]])
    wall = time.perf_counter() - t0
    after = _graph_seconds(s)
    return wall, {g: after[g] - before[g] for g in GRAPHS}


def _summary(walls: list[float], graphs: list[dict]) -> dict:
    frame = [1e3 * w for w in walls]
    per_graph = {g: [1e3 * d[g] for d in graphs] for g in GRAPHS}
    inside = [sum(d.values()) * 1e3 for d in graphs]
    host = [f - i for f, i in zip(frame, inside, strict=True)]
    frame_p50 = float(np.median(frame))
    return {
        "frame": summarize(frame),
        "graphs_ms": {g: float(np.median(v)) for g, v in per_graph.items()},
        "graphs_total_ms": float(np.median(inside)),
        "host": summarize(host),
        "host_share": float(np.median([h / f for h, f in zip(host, frame, strict=True)])),
        "frame_p50_ms": frame_p50,
    }


def _host_functions(tracker: Tracker, s, frames: list[np.ndarray]) -> list[dict]:
    """Top host functions by own time per frame (cProfile), excluding everything under ``runtime.run``."""
    prof = cProfile.Profile()
    prof.enable()
    for f in frames:
        out = tracker(s, frame=f)
        tracker.post_process_masks([out.pred_masks], [f.shape[:2]])
    prof.disable()
    stats = pstats.Stats(prof).stats  # {func: (cc, nc, tottime, cumtime, callers)}
    callees: dict = {}
    for func, (*_, callers) in stats.items():
        for caller in callers:
            callees.setdefault(caller, set()).add(func)
    roots = [f for f in stats if f[2] == "_run" and f[0].endswith("tracker/tracker.py")]
    inside, todo = set(roots), list(roots)
    while todo:
        for c in callees.get(todo.pop(), ()):
            if c not in inside:
                inside.add(c)
                todo.append(c)
    rows = [
        (tt, f"{func[2]} ({func[0].rsplit('/', 2)[-1] if func[0] != '~' else 'builtin'}:{func[1]})", nc)
        for func, (_, nc, tt, _, _) in stats.items()
        if func not in inside
    ]
    rows.sort(reverse=True)
    n = len(frames)
    return [
        {"function": name, "ms_per_frame": 1e3 * tt / n, "calls_per_frame": nc / n}
        for tt, name, nc in rows[:TOP_HOST]
    ]


def measure_split(
    runtime: Runtime,
    *,
    frames: int = 8,
    warmup: int = 7,
    objects: int = 3,
    size: tuple[int, int] = DEFAULT_SIZE,
    profile_frames: int = 2,
    progress=None,
) -> dict:
    """Time ``frames`` steady-state tracked frames of a 1-object and an ``objects``-object session.

    Both sessions are prompted on frame 0 with clicks on the procedural shapes, then stream
    ``warmup`` untimed frames (7 fill the bank) and ``frames`` timed ones, alternating frame by
    frame. Returns ``{"size_hw", "frames", "warmup", "one": summary, "many": summary | None,
    "objects", "objects_model_ms", "objects_ratio", "host_functions"}`` where a summary holds
    ``frame`` / ``host`` latency stats (ms), ``graphs_ms`` per graph (median per frame, summed
    over objects), ``graphs_total_ms`` and ``host_share``.
    """
    if frames < 1 or warmup < 0 or objects < 1 or objects > len(_CLICKS) or profile_frames < 0:
        raise ValueError(
            f"need frames >= 1, warmup >= 0, 1 <= objects <= {len(_CLICKS)}, profile_frames >= 0; got "
            f"{frames}, {warmup}, {objects}, {profile_frames}"
        )
    report = progress or (lambda done, total: None)
    video = camera_frames(1 + warmup + frames + profile_frames, size)
    tracker = Tracker(runtime)
    sessions = {1: _session(tracker, video[0], 1)}
    if objects > 1:
        sessions[objects] = _session(tracker, video[0], objects)
    for s in sessions.values():
        tracker(s, frame=video[0])
    walls: dict[int, list] = {k: [] for k in sessions}
    graphs: dict[int, list] = {k: [] for k in sessions}
    total = warmup + frames
    for t in range(1, 1 + total):
        for k, s in sessions.items():
            wall, per_graph = _timed_frame(tracker, s, video[t])
            if t > warmup:
                walls[k].append(wall)
                graphs[k].append(per_graph)
        report(t, total)
    one = _summary(walls[1], graphs[1])
    many = _summary(walls[objects], graphs[objects]) if objects > 1 else None
    model = None
    if many is not None:
        g = one["graphs_ms"]
        model = g["image_encoder"] + objects * (
            g["prompt_decoder"] + g["memory_encoder"] + g["memory_attention"]
        )
    host_functions = (
        _host_functions(tracker, sessions[1], video[1 + total : 1 + total + profile_frames])
        if profile_frames
        else []
    )
    return {
        "size_hw": list(size),
        "frames": frames,
        "warmup": warmup,
        "runtime": getattr(runtime, "name", type(runtime).__name__),
        "one": one,
        "many": many,
        "objects": objects,
        "objects_model_ms": model,
        "objects_ratio": many["frame_p50_ms"] / model if many and model else None,
        "host_functions": host_functions,
    }


def split_markdown(result: dict, label: str) -> str:
    """A Markdown table of one :func:`measure_split` result (``label`` names backend and precision)."""
    rows = [("1 object", result["one"])]
    if result.get("many"):
        rows.append((f"{result['objects']} objects", result["many"]))
    h, w = result["size_hw"]
    lines = [
        f"### Tracked-frame split, {label} ({w}x{h} frames, {result['frames']} frames after {result['warmup']} warm-up)",
        "",
        "| session | frame p50 ms | " + " | ".join(GRAPHS) + " | host ms | host share |",
        "|---|---:|" + "---:|" * len(GRAPHS) + "---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['frame_p50_ms']:.1f} | "
            + " | ".join(f"{r['graphs_ms'][g]:.1f}" for g in GRAPHS)
            + f" | {r['host']['p50_ms']:.1f} | {r['host_share']:.1%} |"
        )
    if result.get("objects_ratio") is not None:
        lines += [
            "",
            f"{result['objects']} objects: {result['many']['frame_p50_ms']:.1f} ms measured vs "
            f"{result['objects_model_ms']:.1f} ms for encoder + {result['objects']} x per-object graphs (1-object medians) "
            f"= {result['objects_ratio']:.3f} of the model.",
        ]
    if result.get("host_functions"):
        lines += [
            "",
            "| host function (cProfile, own time) | ms / frame | calls / frame |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| `{f['function']}` | {f['ms_per_frame']:.2f} | {f['calls_per_frame']:.0f} |"
            for f in result["host_functions"]
        ]
    return "\n".join(lines) + "\n"
