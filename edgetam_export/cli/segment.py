"""``edgetam-export segment``: segment one object, or everything (--auto), in one image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from ..fileio import write_json_atomic
from ..overlay import mark_prompts, overlay_masks
from ..video import VideoError, read_image, write_png
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
    onnx_format: OnnxFormat | None = ONNX_FORMAT_OPTION,
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
    else:
        pts = [parse_point(p) for p in point]
        bx = parse_floats(box, (4,), "--box") if box else None
        if not pts and bx is None:
            raise typer.BadParameter("give at least one --point or --box")
    runtime, provenance = choose_runtime(
        checkpoint,
        bundle,
        backend,
        precision,
        threads,
        graphs=("image_encoder", "prompt_decoder"),
        expect_digest=expect_digest,
        onnx_format=onnx_format,
    )
    if auto:
        prepare_out(out, overwrite)
        summary = write_auto_masks(runtime, img, image, provenance["weights"], out, opts)
        console.print(f"{len(summary['masks'])} masks in {summary['seconds']:.1f} s -> {out}")
        return
    from ..image_segmentation import segment_image

    prompt = {
        "points": [xy for xy, _ in pts],
        "labels": [label for _, label in pts],
        "box": bx,
    }
    with prompt_warnings_as_lines():
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
