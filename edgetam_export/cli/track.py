"""``edgetam-export track`` and ``edgetam-export segment``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..fileio import write_json_atomic
from ..overlay import overlay_masks
from ..video import VideoError, read_image, read_video, write_png, write_video
from .app import app

console = Console(stderr=True)


def _runtime(checkpoint: Path | None, bundle: Path | None, backend: str | None):
    """Build the runtime: an exported bundle, a checkpoint on the PyTorch reference, or synthetic weights."""
    if bundle is not None and checkpoint is not None:
        raise typer.BadParameter("give --checkpoint or --bundle, not both")
    if bundle is not None:
        from ..runtime.loader import runtime_from_bundle

        return runtime_from_bundle(bundle, backend=backend), f"bundle {bundle}"
    from ..models import build_edgetam
    from ..runtime.torch_runtime import TorchRuntime

    if checkpoint is None:
        console.print(
            "[bold yellow]WARNING: no --checkpoint given: using SYNTHETIC weights (salt 0). "
            "Masks are numerically meaningful but semantically random; pass --checkpoint edgetam.pt.[/]"
        )
        return TorchRuntime(build_edgetam(None)), "synthetic weights (salt 0)"
    return TorchRuntime(build_edgetam(str(checkpoint))), f"checkpoint {checkpoint}"


def _floats(text: str, n: tuple[int, ...], what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{what} {text!r}: expected comma-separated numbers") from None
    if len(vals) not in n or not all(np.isfinite(vals)):
        raise typer.BadParameter(f"{what} {text!r}: expected {' or '.join(map(str, n))} finite numbers")
    return vals


def _group_prompts(points: list[str], boxes: list[str], obj_ids: list[int], frames: list[int]) -> list[dict]:
    """Assign prompts to (object, frame): boxes first then points, zipped with --obj-id / --frame.

    A single --obj-id or --frame applies to every prompt; otherwise give one per prompt.
    """
    prompts = [("box", _floats(b, (4,), "--box")) for b in boxes] + [
        ("point", _floats(p, (2, 3), "--point")) for p in points
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
            g["points"].append(vals[:2])
            g["labels"].append(int(vals[2]) if len(vals) == 3 else 1)
    return list(groups.values())


@app.command()
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
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Official edgetam.pt (default: synthetic weights)."
    ),
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Run an exported bundle instead of the PyTorch reference."
    ),
    backend: str | None = typer.Option(None, "--backend", help="Backend inside a multi-backend bundle."),
    out: Path = typer.Option(Path("track_out"), "--out", help="Output folder."),
    max_frames: int | None = typer.Option(None, "--max-frames", help="Only the first N frames."),
    fill_hole_area: int = typer.Option(
        8, "--fill-hole-area", help="Fill mask holes up to this area (0 = off)."
    ),
) -> None:
    """Track objects through VIDEO: writes overlay.mp4, per-object PNG masks and summary.json."""
    try:
        frames, fps = read_video(video, max_frames=max_frames)
    except VideoError as e:
        raise typer.BadParameter(str(e), param_hint="VIDEO") from None
    groups = _group_prompts(point, box, obj_id, frame)
    for g in groups:
        if not 0 <= g["frame"] < len(frames):
            raise typer.BadParameter(
                f"--frame {g['frame']} is out of range: the video has {len(frames)} frames"
            )
    runtime, weights = _runtime(checkpoint, bundle, backend)
    from ..tracker import Tracker

    tracker = Tracker(runtime, fill_hole_area=fill_hole_area)
    session = tracker.init_video_session(video=frames)
    for g in groups:
        try:
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
    h, w = frames[0].shape[:2]
    out.mkdir(parents=True, exist_ok=True)
    scores: dict[int, dict[str, float]] = {}
    overlays: dict[int, np.ndarray] = {}
    start = min(g["frame"] for g in groups)
    t0 = time.perf_counter()
    order = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"tracking on {runtime.name}", total=len(frames))
        passes = [tracker.propagate_in_video_iterator(session, start_frame_idx=start)]
        if start > 0:
            passes.append(tracker.propagate_in_video_iterator(session, start_frame_idx=start, reverse=True))
        for it in passes:
            for o in it:
                masks = tracker.post_process_masks([o.pred_masks], [(h, w)])[0][:, 0]
                for k, oid in enumerate(o.obj_ids):
                    write_png(
                        out / "masks" / f"obj_{oid}" / f"{o.frame_idx:05d}.png",
                        masks[k].astype(np.uint8) * 255,
                    )
                scores[o.frame_idx] = {
                    str(oid): float(o.object_score_logits[k, 0]) for k, oid in enumerate(o.obj_ids)
                }
                if o.frame_idx not in overlays:
                    order.append(o.frame_idx)
                    bar.advance(task)
                overlays[o.frame_idx] = overlay_masks(frames[o.frame_idx], masks)
    elapsed = time.perf_counter() - t0
    write_video(out / "overlay.mp4", [overlays.get(t, frames[t]) for t in range(len(frames))], fps=fps)
    timings = {
        k: {"calls": len(v), "median_ms": 1e3 * float(np.median(v)), "total_s": float(np.sum(v))}
        for k, v in session.timings.items()
    }
    write_json_atomic(
        out / "summary.json",
        {
            "video": str(video),
            "frames": len(frames),
            "size_hw": [h, w],
            "weights": weights,
            "runtime": runtime.name,
            "prompts": groups,
            "obj_ids": list(session.obj_ids),
            "object_score_logits": {str(t): scores[t] for t in sorted(scores)},
            "timings": timings,
            "wall_s": elapsed,
            "fps": len(order) / elapsed if elapsed > 0 else None,
        },
    )
    console.print(
        f"tracked {len(session.obj_ids)} object(s) over {len(order)} frames in {elapsed:.1f} s -> {out}"
    )


@app.command()
def segment(
    image: Path = typer.Argument(..., help="Image file."),
    point: list[str] = typer.Option([], "--point", help="Click X,Y[,LABEL] in image pixels. Repeatable."),
    box: str | None = typer.Option(None, "--box", help="Box X0,Y0,X1,Y1 in image pixels."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Official edgetam.pt (default: synthetic weights)."
    ),
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Run an exported bundle instead of the PyTorch reference."
    ),
    backend: str | None = typer.Option(None, "--backend", help="Backend inside a multi-backend bundle."),
    out: Path = typer.Option(Path("segment_out"), "--out", help="Output folder."),
    auto: bool = typer.Option(False, "--auto", help="Segment everything (automatic mask generation)."),
    points_per_side: int = typer.Option(32, help="--auto: grid points per side."),
    points_per_batch: int = typer.Option(64, help="--auto: prompts per decoder batch."),
    pred_iou_thresh: float = typer.Option(0.88, help="--auto: keep masks with predicted IoU above this."),
    stability_score_thresh: float = typer.Option(0.95, help="--auto: keep masks with stability above this."),
    crops_n_layers: int = typer.Option(0, help="--auto: crop layers (0 = whole image only)."),
    min_mask_region_area: int = typer.Option(0, help="--auto: remove islands/holes below this area."),
) -> None:
    """Segment one object in IMAGE (mask.png, candidates, summary.json), or everything with --auto (masks/, overlay.png, masks.json)."""
    try:
        img = read_image(image)
    except VideoError as e:
        raise typer.BadParameter(str(e), param_hint="IMAGE") from None
    if auto:
        from ..automask import AutoMaskOptions
        from .automask_out import write_auto_masks

        if point or box:
            raise typer.BadParameter("--auto takes no --point/--box")
        try:
            opts = AutoMaskOptions(
                points_per_crop=points_per_side,
                points_per_batch=points_per_batch,
                pred_iou_thresh=pred_iou_thresh,
                stability_score_thresh=stability_score_thresh,
                crops_n_layers=crops_n_layers,
                min_mask_region_area=min_mask_region_area,
            )
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
        runtime, weights = _runtime(checkpoint, bundle, backend)
        summary = write_auto_masks(runtime, img, image, weights, out, opts)
        console.print(f"{len(summary['masks'])} masks in {summary['seconds']:.1f} s -> {out}")
        return
    pts = [_floats(p, (2, 3), "--point") for p in point]
    bx = _floats(box, (4,), "--box") if box else None
    if not pts and bx is None:
        raise typer.BadParameter("give at least one --point or --box")
    runtime, weights = _runtime(checkpoint, bundle, backend)
    from ..image_segmentation import segment_image

    res = segment_image(
        runtime,
        img,
        points=np.array([p[:2] for p in pts], np.float32) if pts else None,
        labels=np.array([int(p[2]) if len(p) == 3 else 1 for p in pts]) if pts else None,
        box=np.array(bx, np.float32) if bx else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_png(out / "mask.png", (res.mask > 0).astype(np.uint8) * 255)
    write_png(out / "overlay.png", overlay_masks(img, (res.mask > 0)[None]))
    for k in range(res.candidates.shape[0]):
        write_png(out / "candidates" / f"mask_{k}.png", (res.candidates[k] > 0).astype(np.uint8) * 255)
    d = res.decision
    write_json_atomic(
        out / "summary.json",
        {
            "image": str(image),
            "weights": weights,
            "runtime": runtime.name,
            "candidate_ious": [float(v) for v in res.candidate_ious],
            "multimask": d.multimask,
            "chosen_mask": d.chosen,
            "iou": d.iou,
            "object_score_logit": d.obj_score,
            "stability": d.stability,
            "foreground_fraction": float((res.mask > 0).mean()),
        },
    )
    console.print(f"mask {d.chosen} (IoU {d.iou:.3f}, object score {d.obj_score:+.2f}) -> {out}")
