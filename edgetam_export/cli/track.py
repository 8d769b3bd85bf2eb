"""``edgetam-export track``: track objects through a video, streaming frames in and masks out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..fileio import write_json_atomic
from ..overlay import overlay_masks
from ..video import LazyVideo, VideoError, VideoWriter, iter_frames, read_image, write_png
from .app import app
from .options import Backend, OnnxFormat, Precision, prepare_out, user_errors
from .sources import (
    BACKEND_OPTION,
    BUNDLE_OPTION,
    CHECKPOINT_OPTION,
    EXPECT_DIGEST_OPTION,
    ONNX_FORMAT_OPTION,
    OVERWRITE_OPTION,
    PRECISION_OPTION,
    THREADS_OPTION,
    choose_runtime,
    console,
    parse_floats,
    parse_point,
    prompt_warnings_as_lines,
)


def _group_prompts(points: list[str], boxes: list[str], obj_ids: list[int], frames: list[int]) -> list[dict]:
    """Assign prompts to (object, frame): boxes first then points, zipped with --obj-id / --frame.

    A single --obj-id or --frame applies to every prompt; otherwise give one per prompt.
    """
    prompts = [("box", parse_floats(b, (4,), "--box")) for b in boxes] + [
        ("point", parse_point(p)) for p in points
    ]
    if not prompts:
        raise typer.BadParameter("give at least one --point or --box")

    def per_prompt(values: list[int], default: int, name: str) -> list[int]:
        if not values:
            return [default] * len(prompts)
        if len(values) == 1:
            return values * len(prompts)
        if len(values) != len(prompts):
            raise typer.BadParameter(
                f"{len(values)} {name} values for {len(prompts)} prompts (give 1 or one per prompt)"
            )
        return values

    ids, fr = per_prompt(obj_ids, 1, "--obj-id"), per_prompt(frames, 0, "--frame")
    groups: dict[tuple[int, int], dict] = {}
    for (kind, vals), oid, f in zip(prompts, ids, fr, strict=True):
        g = groups.setdefault((f, oid), {"frame": f, "obj_id": oid, "points": [], "labels": [], "box": None})
        if kind == "box":
            if g["box"] is not None:
                raise typer.BadParameter(f"object {oid} has two boxes on frame {f}")
            g["box"] = vals
        else:
            g["points"].append(vals[0])
            g["labels"].append(vals[1])
    return list(groups.values())


@app.command()
@user_errors
def track(
    video: Path = typer.Argument(..., help="Video file (anything FFmpeg decodes)."),
    point: list[str] = typer.Option(
        [], "--point", help="Click X,Y[,LABEL] in video pixels (label 1 positive, 0 negative). Repeatable."
    ),
    box: list[str] = typer.Option([], "--box", help="Box X0,Y0,X1,Y1 in video pixels. Repeatable."),
    obj_id: list[int] = typer.Option(
        [], "--obj-id", help="Object id per prompt (boxes first, then points), or one for all. Default 1."
    ),
    frame: list[int] = typer.Option(
        [], "--frame", help="Frame index per prompt (boxes first, then points), or one for all. Default 0."
    ),
    checkpoint: Path | None = CHECKPOINT_OPTION,
    bundle: Path | None = BUNDLE_OPTION,
    backend: Backend | None = BACKEND_OPTION,
    precision: Precision | None = PRECISION_OPTION,
    threads: int | None = THREADS_OPTION,
    expect_digest: str | None = EXPECT_DIGEST_OPTION,
    onnx_format: OnnxFormat | None = ONNX_FORMAT_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    out: Path = typer.Option(Path("track_out"), "--out", help="Output folder."),
    max_frames: int | None = typer.Option(None, "--max-frames", help="Only the first N frames."),
    fill_hole_area: int = typer.Option(
        8, "--fill-hole-area", help="Fill mask holes up to this area (0 = off)."
    ),
) -> None:
    """Track objects through VIDEO: writes overlay.mp4, per-object PNG masks and summary.json.

    The video is decoded lazily and the overlay and masks are written frame by frame, so
    memory stays flat whatever the video's length. With every prompt on the first frame the
    run is one forward pass (frames decoded once, overlay encoded as it goes). With prompts
    on a later frame F, frames F.. are tracked forward, then F-1..0 backward (the official
    order); the backward pass re-decodes the video in blocks of 16 frames (bounded memory,
    about n/16 extra decodes), and the overlay is encoded afterwards from the written masks.
    """
    try:
        frames = LazyVideo(video, max_frames=max_frames)
    except VideoError as e:
        raise typer.BadParameter(str(e), param_hint="VIDEO") from None
    groups = _group_prompts(point, box, obj_id, frame)
    n = len(frames)
    for g in groups:
        if not 0 <= g["frame"] < n:
            if max_frames is not None and n == max_frames and g["frame"] >= 0:
                raise typer.BadParameter(
                    f"--frame {g['frame']} is beyond --max-frames {max_frames} (frames 0..{n - 1} are "
                    "tracked): raise --max-frames or prompt an earlier frame"
                )
            raise typer.BadParameter(f"--frame {g['frame']} is out of range: the video has {n} frames")
    runtime, provenance = choose_runtime(
        checkpoint, bundle, backend, precision, threads, expect_digest=expect_digest, onnx_format=onnx_format
    )
    from ..tracker import Tracker
    from ..tracker.editing import STREAM_KEEP, prune_video

    tracker = Tracker(runtime, fill_hole_area=fill_hole_area)
    session = tracker.init_video_session(video=frames)
    for g in groups:
        try:
            with prompt_warnings_as_lines():
                tracker.add_inputs_to_inference_session(
                    session,
                    frame_idx=g["frame"],
                    obj_ids=g["obj_id"],
                    input_points=[[g["points"]]] if g["points"] else None,
                    input_labels=[[g["labels"]]] if g["points"] else None,
                    input_boxes=[[g["box"]]] if g["box"] is not None else None,
                )
        except (ValueError, IndexError) as e:
            raise typer.BadParameter(str(e)) from None
    h, w = frames.height, frames.width
    prepare_out(out, overwrite)
    scores: dict[int, dict[str, float]] = {}
    done: set[int] = set()
    start = min(g["frame"] for g in groups)
    protect = range(start, start + STREAM_KEEP + 1) if start > 0 else range(0)
    interrupted = False
    t0 = time.perf_counter()
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(f"tracking on {runtime.name}", total=n)
            # Forward-only runs encode the overlay as they go; otherwise it is encoded after the backward pass.
            inline = VideoWriter(out / "overlay.mp4", fps=frames.fps) if start == 0 else None
            try:
                passes = [(False, tracker.propagate_in_video_iterator(session, start_frame_idx=start))]
                if start > 0:
                    passes.append(
                        (
                            True,
                            tracker.propagate_in_video_iterator(session, start_frame_idx=start, reverse=True),
                        )
                    )
                for reverse, it in passes:
                    for o in it:
                        masks = tracker.post_process_masks([o.pred_masks], [(h, w)])[0][:, 0]
                        for k, oid in enumerate(o.obj_ids):
                            write_png(_mask_path(out, oid, o.frame_idx), masks[k].astype(np.uint8) * 255)
                        scores[o.frame_idx] = {
                            str(oid): float(o.object_score_logits[k, 0]) for k, oid in enumerate(o.obj_ids)
                        }
                        if inline is not None:
                            inline.write(overlay_masks(frames[o.frame_idx], masks))
                        if o.frame_idx not in done:
                            done.add(o.frame_idx)
                            bar.advance(task)
                        prune_video(session, o.frame_idx, reverse, protect)
            except BaseException:
                if inline is not None:
                    inline.close(commit=False)
                raise
            if inline is not None:
                inline.close()
        frames.close()
        if inline is None:
            _overlay_from_masks(out, video, n, frames.fps, list(session.obj_ids))
    except KeyboardInterrupt:
        interrupted = True  # masks so far stay; summary.json says how far the run got
        frames.close()
    elapsed = time.perf_counter() - t0

    timings = {
        k: {"calls": len(v), "median_ms": 1e3 * float(np.median(v)), "total_s": float(np.sum(v))}
        for k, v in session.timings.items()
    }
    write_json_atomic(
        out / "summary.json",
        {
            "video": str(video),
            "frames": n,
            "size_hw": [h, w],
            **provenance,
            "runtime": runtime.name,
            "backend": getattr(runtime, "backend", "pytorch"),
            "precision": getattr(runtime, "precision", "fp32"),
            "prompts": groups,
            "obj_ids": list(session.obj_ids),
            "object_score_logits": {str(t): scores[t] for t in sorted(scores)},
            "timings": timings,
            "wall_s": elapsed,
            "fps": len(done) / elapsed if elapsed > 0 else None,
            "interrupted": interrupted,
            "frames_done": len(done),
            "overlay": None if interrupted else "overlay.mp4",
        },
    )
    if interrupted:
        console.print(
            f"interrupted (Ctrl-C) after {len(done)} of {n} frames: masks so far in {out}, "
            "summary.json marks the run interrupted (no overlay.mp4)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(130)
    console.print(
        f"tracked {len(session.obj_ids)} object(s) over {len(done)} frames in {elapsed:.1f} s -> {out}"
    )


def _mask_path(out: Path, oid: int, t: int) -> Path:
    return out / "masks" / f"obj_{oid}" / f"{t:05d}.png"


def _overlay_from_masks(out: Path, video: Path, n: int, fps: float, obj_ids: list[int]) -> None:
    """Encode overlay.mp4 in one sequential decode, blending the mask PNGs already written."""
    with VideoWriter(out / "overlay.mp4", fps=fps) as writer:
        for t, rgb in enumerate(iter_frames(video, n)):
            masks = np.stack([read_image(_mask_path(out, oid, t))[..., 0] > 127 for oid in obj_ids])
            writer.write(overlay_masks(rgb, masks))
