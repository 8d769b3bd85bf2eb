"""``edgetam-export track`` and ``edgetam-export segment``."""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..fileio import write_json_atomic
from ..models.constants import GRAPH_NAMES
from ..overlay import mark_prompts, overlay_masks
from ..tracker.prompts import validate_points
from ..video import LazyVideo, VideoError, VideoWriter, iter_frames, read_image, write_png
from .app import app
from .options import Backend, Precision, prepare_out, user_errors

console = Console(stderr=True)

# Options shared by track and segment (one definition each).
CHECKPOINT_OPTION = typer.Option(
    None, "--checkpoint", help="Official edgetam.pt (default: synthetic weights)."
)
BUNDLE_OPTION = typer.Option(
    None, "--bundle", help="Run an exported bundle instead of the PyTorch reference."
)
BACKEND_OPTION = typer.Option(
    None, "--backend", help="Backend inside a bundle (default: the host's preferred one)."
)
PRECISION_OPTION = typer.Option(
    None, "--precision", help="Precision inside a bundle (default: fp32 on CPU hosts)."
)
THREADS_OPTION = typer.Option(
    None, "--threads", min=1, help="CPU threads (ONNX Runtime / ExecuTorch / PyTorch)."
)
EXPECT_DIGEST_OPTION = typer.Option(
    None, "--expect-digest", help="Refuse the bundle unless its digest is this sha256:<hex>."
)
OVERWRITE_OPTION = typer.Option(False, "--overwrite", help="Replace the contents of a non-empty --out.")


def _runtime(
    checkpoint: Path | None,
    bundle: Path | None,
    backend: Backend | None,
    precision: Precision | None = None,
    threads: int | None = None,
    graphs: tuple[str, ...] = GRAPH_NAMES,
    expect_digest: str | None = None,
):
    """Build the runtime: an exported bundle, a checkpoint on the PyTorch reference, or synthetic weights.

    Returns ``(runtime, provenance)``: provenance holds ``weights`` (one line),
    ``weights_provenance`` (synthetic + salt, or checkpoint path + sha256) and, for a bundle,
    ``bundle_digest``; it goes into summary.json.
    """
    if expect_digest is not None and bundle is None:
        raise typer.BadParameter("--expect-digest pins a bundle: add --bundle")
    if bundle is not None and checkpoint is not None:
        raise typer.BadParameter("give --checkpoint or --bundle, not both")
    if bundle is None and (backend is not None or precision is not None):
        raise typer.BadParameter("--backend and --precision choose among a bundle's artifacts: add --bundle")
    if bundle is not None:
        from ..bundle import load_bundle
        from ..runtime.loader import runtime_from_bundle

        b = load_bundle(bundle)
        b.check_digest(expect_digest)
        w = b.weights
        if w.get("source") == "synthetic":
            _warn_synthetic(f"bundle {bundle} was exported from SYNTHETIC weights (salt {w.get('salt')})")
        chosen = b.select(backend.value if backend else None, precision.value if precision else None)
        b.require_graphs(*chosen, graphs=graphs)
        if backend is None or precision is None:
            console.print(
                f"using {chosen[0]} {chosen[1]} from {bundle} "
                f"(default for this host among {', '.join(f'{k} {v}' for k, v in _choices(b).items())}; "
                "choose with --backend/--precision)",
                markup=False,
            )
        kwargs = {"num_threads": threads} if threads and chosen[0] in ("onnx", "executorch") else {}
        provenance = {
            "weights": f"bundle {bundle} ({_weights_short(w)})",
            "weights_provenance": w,
            "bundle_digest": b.digest,
        }
        return runtime_from_bundle(b, backend=chosen[0], precision=chosen[1], **kwargs), provenance
    from ..models import build_edgetam
    from ..runtime.torch_runtime import TorchRuntime

    if threads:
        import torch

        torch.set_num_threads(threads)

    if checkpoint is None:
        _warn_synthetic("no --checkpoint given: using SYNTHETIC weights (salt 0)")
        w = {"source": "synthetic", "salt": 0}
        return TorchRuntime(build_edgetam(None)), {
            "weights": "synthetic weights (salt 0)",
            "weights_provenance": w,
        }
    from ..fileio import file_sha256

    runtime = TorchRuntime(build_edgetam(str(checkpoint)))
    w = {"source": "checkpoint", "path": str(checkpoint.resolve()), "sha256": file_sha256(checkpoint)}
    return runtime, {"weights": f"checkpoint {checkpoint}", "weights_provenance": w}


def _warn_synthetic(what: str) -> None:
    console.print(
        f"[bold yellow]WARNING: {escape(what)}. Masks are numerically meaningful but semantically "
        "random; use the official checkpoint (--checkpoint edgetam.pt, or a bundle exported from it).[/]"
    )


def _weights_short(w: dict) -> str:
    if w.get("source") == "synthetic":
        return f"SYNTHETIC weights, salt {w.get('salt')}"
    return f"checkpoint sha256 {str(w.get('sha256', '?'))[:16]}"


def _choices(b) -> dict[str, list[str]]:
    return {k: b.precisions(k) for k in b.backends}


def _floats(text: str, n: tuple[int, ...], what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{what} {text!r}: expected comma-separated numbers") from None
    if len(vals) not in n or not all(np.isfinite(vals)):
        raise typer.BadParameter(f"{what} {text!r}: expected {' or '.join(map(str, n))} finite numbers")
    return vals


def _point(text: str) -> tuple[list[float], int]:
    """``X,Y[,LABEL]`` -> ([x, y], label), checked by the one prompt validation the tracker uses."""
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise typer.BadParameter(f"--point {text!r}: expected X,Y or X,Y,LABEL")
    xy = _floats(",".join(parts[:2]), (2,), "--point")
    label = 1
    if len(parts) == 3:
        try:
            label = int(parts[2].strip())
        except ValueError:
            raise typer.BadParameter(
                f"--point {text!r}: the label must be 0 (negative) or 1 (positive), got {parts[2]!r}"
            ) from None
    try:
        validate_points([xy], [label], what=f"--point {text!r}")
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    return xy, label


def _group_prompts(points: list[str], boxes: list[str], obj_ids: list[int], frames: list[int]) -> list[dict]:
    """Assign prompts to (object, frame): boxes first then points, zipped with --obj-id / --frame.

    A single --obj-id or --frame applies to every prompt; otherwise give one per prompt.
    """
    prompts = [("box", _floats(b, (4,), "--box")) for b in boxes] + [("point", _point(p)) for p in points]
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
    runtime, provenance = _runtime(
        checkpoint, bundle, backend, precision, threads, expect_digest=expect_digest
    )
    from ..tracker import Tracker
    from ..tracker.editing import STREAM_KEEP, prune_video

    tracker = Tracker(runtime, fill_hole_area=fill_hole_area)
    session = tracker.init_video_session(video=frames)
    for g in groups:
        try:
            with _prompt_warnings_as_lines():
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


@contextlib.contextmanager
def _prompt_warnings_as_lines():
    """Show the library's prompt warnings (points outside the image) as one terminal line each."""
    from ..tracker.prompts import PromptWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PromptWarning)
        yield
    for w in caught:
        if issubclass(w.category, PromptWarning):
            console.print(f"[bold yellow]warning:[/] {escape(str(w.message))}", soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _mask_path(out: Path, oid: int, t: int) -> Path:
    return out / "masks" / f"obj_{oid}" / f"{t:05d}.png"


def _overlay_from_masks(out: Path, video: Path, n: int, fps: float, obj_ids: list[int]) -> None:
    """Encode overlay.mp4 in one sequential decode, blending the mask PNGs already written."""
    with VideoWriter(out / "overlay.mp4", fps=fps) as writer:
        for t, rgb in enumerate(iter_frames(video, n)):
            masks = np.stack([read_image(_mask_path(out, oid, t))[..., 0] > 127 for oid in obj_ids])
            writer.write(overlay_masks(rgb, masks))


@app.command()
@user_errors
def segment(
    image: Path = typer.Argument(..., help="Image file."),
    point: list[str] = typer.Option([], "--point", help="Click X,Y[,LABEL] in image pixels. Repeatable."),
    box: str | None = typer.Option(None, "--box", help="Box X0,Y0,X1,Y1 in image pixels."),
    checkpoint: Path | None = CHECKPOINT_OPTION,
    bundle: Path | None = BUNDLE_OPTION,
    backend: Backend | None = BACKEND_OPTION,
    precision: Precision | None = PRECISION_OPTION,
    threads: int | None = THREADS_OPTION,
    expect_digest: str | None = EXPECT_DIGEST_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
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
        runtime, provenance = _runtime(
            checkpoint,
            bundle,
            backend,
            precision,
            threads,
            graphs=("image_encoder", "prompt_decoder"),
            expect_digest=expect_digest,
        )
        prepare_out(out, overwrite)
        summary = write_auto_masks(runtime, img, image, provenance["weights"], out, opts)
        console.print(f"{len(summary['masks'])} masks in {summary['seconds']:.1f} s -> {out}")
        return
    pts = [_point(p) for p in point]
    bx = _floats(box, (4,), "--box") if box else None
    if not pts and bx is None:
        raise typer.BadParameter("give at least one --point or --box")
    runtime, provenance = _runtime(
        checkpoint,
        bundle,
        backend,
        precision,
        threads,
        graphs=("image_encoder", "prompt_decoder"),
        expect_digest=expect_digest,
    )
    from ..image_segmentation import segment_image

    prompt = {
        "points": [xy for xy, _ in pts],
        "labels": [label for _, label in pts],
        "box": bx,
    }
    with _prompt_warnings_as_lines():
        res = segment_image(
            runtime,
            img,
            points=prompt["points"] or None,
            labels=prompt["labels"] or None,
            box=np.array(bx, np.float32) if bx else None,
        )
    prepare_out(out, overwrite)
    write_png(out / "mask.png", (res.mask > 0).astype(np.uint8) * 255)
    marked = mark_prompts(
        overlay_masks(img, (res.mask > 0)[None]),
        np.array(prompt["points"], np.float32).reshape(-1, 2),
        prompt["labels"],
        bx,
    )
    write_png(out / "overlay.png", marked)
    for k in range(res.candidates.shape[0]):
        write_png(out / "candidates" / f"mask_{k}.png", (res.candidates[k] > 0).astype(np.uint8) * 255)
    d = res.decision
    write_json_atomic(
        out / "summary.json",
        {
            "image": str(image),
            "size_hw": list(img.shape[:2]),
            "prompt": prompt,
            **provenance,
            "runtime": runtime.name,
            "backend": getattr(runtime, "backend", "pytorch"),
            "precision": getattr(runtime, "precision", "fp32"),
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
