"""Host-side logic of an EdgeTAM bundle consumer, shared by the two example clients.

Depends on numpy and the standard library only (Pillow is imported lazily to read image files
and to resize frames that are not already at the model's input size). Nothing here imports
``edgetam_export``: a third party needs only a bundle and docs/BUNDLE_FORMAT.md.

A runtime adapter is a callable ``run(graph, feeds) -> outputs`` where ``feeds`` and
``outputs`` are dicts of float32 numpy arrays named as in the manifest's contracts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMAT = "edgetam-export-bundle"
FORMAT_VERSION = 1
NO_OBJ_SCORE = -1024.0  # mask logits of an absent object

Run = Callable[[str, dict], dict]


class BundleError(Exception):
    """The bundle is not one this client can trust or read."""


# --------------------------------------------------------------------------- bundle


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(root: Path) -> dict:
    """Read ``manifest.json`` and verify the sha256 of every file it lists."""
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{root}: cannot read manifest.json ({e})") from e
    if manifest.get("format") != FORMAT or int(manifest.get("format_version", 1 << 30)) > FORMAT_VERSION:
        raise BundleError(f"{root}: not an {FORMAT} manifest of version <= {FORMAT_VERSION}")
    for rel, digest in sorted(manifest["files"].items()):
        p = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleError(f"manifest lists a path outside the bundle: {rel}")
        if not p.is_file():
            raise BundleError(f"file {rel} listed in the manifest is missing")
        if sha256(p) != digest:
            raise BundleError(f"file {rel} does not match its sha256 in the manifest (modified or corrupt)")
    return manifest


def load_constants(root: Path, manifest: dict) -> dict[str, np.ndarray]:
    with np.load(root / manifest["constants"]["file"], allow_pickle=False) as z:
        return {k: z[k].astype(np.float32) for k in z.files}


def select_artifacts(manifest: dict, backend: str, precision: str | None) -> tuple[str, dict[str, dict]]:
    """``(precision, {graph: artifact entry})`` for ``backend``; fp32 by default when present."""
    available = sorted({a["precision"] for a in manifest["artifacts"] if a["backend"] == backend})
    if not available:
        raise BundleError(f"the bundle holds no {backend} artifacts")
    if precision is None:
        precision = "fp32" if "fp32" in available else available[0]
    if precision not in available:
        raise BundleError(f"no {backend} artifacts at {precision} (available: {available})")
    arts = {
        a["graph"]: a
        for a in manifest["artifacts"]
        if a["backend"] == backend and a["precision"] == precision
    }
    missing = sorted(set(manifest["graphs"]) - set(arts))
    if missing:
        raise BundleError(f"{backend} {precision}: no artifact for graphs {missing}")
    return precision, arts


def io_names(manifest: dict, graph: str) -> tuple[list[str], list[str]]:
    g = manifest["graphs"][graph]
    return [s["name"] for s in g["inputs"]], [s["name"] for s in g["outputs"]]


def input_shapes(manifest: dict, graph: str) -> dict[str, list[int]]:
    return {s["name"]: list(s["shape"]) for s in manifest["graphs"][graph]["inputs"]}


# --------------------------------------------------------------------------- frames


def read_frame(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a .npy file or an image file."""
    if path.suffix == ".npy":
        frame = np.load(path, allow_pickle=False)
    else:
        from PIL import Image

        with Image.open(path) as im:
            frame = np.asarray(im.convert("RGB"))
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"{path}: expected (H, W, 3) uint8 RGB, got {frame.dtype} {frame.shape}")
    return frame


def preprocess(frame: np.ndarray, pre: dict) -> np.ndarray:
    """The manifest's ``preprocessing``: resize to image_size (PIL bicubic), /255, mean/std, NCHW."""
    size = int(pre["image_size"])
    if frame.shape[:2] != (size, size):
        from PIL import Image

        frame = np.asarray(Image.fromarray(frame).resize((size, size), Image.BICUBIC))
    x = frame.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


# --------------------------------------------------------------------------- decoder I/O


def pack_points(points_xy: np.ndarray, labels: np.ndarray, num_slots: int) -> dict[str, np.ndarray]:
    """Point slots of ``prompt_decoder``: user points, then the padding point (0, 0, -1), rest invalid.

    With no points, two valid not-a-point tokens (0, 0, -1), as the official model on tracked frames.
    """
    n = len(labels)
    if n + 1 > num_slots:
        raise ValueError(f"{n} points do not fit {num_slots} slots (one is the padding point)")
    xy = np.zeros((1, num_slots, 2), np.float32)
    label = np.full((1, num_slots), -1.0, np.float32)
    valid = np.zeros((1, num_slots), np.float32)
    xy[0, :n] = points_xy
    label[0, :n] = labels
    valid[0, : max(n + 1, 2)] = 1.0
    return {"pt_xy": xy, "pt_label": label, "pt_valid": valid}


def select_multimask(out: dict, no_obj_ptr: np.ndarray) -> dict:
    """Official multimask choice (≤ 1 click, and every tracked frame) plus the object-score gate.

    Best predicted IoU among masks 1..3 (first maximum); the pointer comes from that mask token.
    If ``obj_logit <= 0`` the object is absent: mask = -1024 everywhere, pointer = ``no_obj_ptr``.
    (Two or more points / a box use mask 0 unless its stability < 0.98: docs/BUNDLE_FORMAT.md.)
    """
    iou = out["iou"].reshape(4)
    best = 1 + int(np.argmax(iou[1:4]))
    score = float(out["obj_logit"].reshape(-1)[0])
    mask = out["masks"][0, best][None, None].astype(np.float32)  # (1, 1, 256, 256)
    ptr = out["ptr_all"][0, best].astype(np.float32)
    if not score > 0.0:
        mask = np.full_like(mask, NO_OBJ_SCORE)
        ptr = no_obj_ptr.reshape(-1).copy()
    return {"mask": mask, "ptr": ptr, "chosen": best, "iou": float(iou[best]), "obj_score": score}


def memory_bank(manifest: dict, entries: list[tuple[int, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """``memory_attention`` inputs (without ``vis``) from ``[(temporal index, mem (512, 64), ptr (256,))]``.

    Temporal index: num_maskmem-1 (= 6) for a conditioning (prompted) frame, d-1 for the tracked
    frame d = 1..6 steps away. Every entry fills one spatial slot and one pointer slot here
    (valid for this two-frame example; see docs/BUNDLE_FORMAT.md for the general rule).
    """
    shapes = input_shapes(manifest, "memory_attention")
    _, num_slots, num_tpos = shapes["mem_tpos"]
    _, num_ptr, ptr_dim = shapes["ptr"]
    _, mem_rows, mem_dim = shapes["mem"]
    tokens = mem_rows // num_slots
    mem = np.zeros((1, mem_rows, mem_dim), np.float32)
    tpos = np.zeros((1, num_slots, num_tpos), np.float32)
    slot_valid = np.zeros((1, num_slots), np.float32)
    ptr = np.zeros((1, num_ptr, ptr_dim), np.float32)
    ptr_valid = np.zeros((1, num_ptr), np.float32)
    for j, (tp, m, p) in enumerate(entries):
        mem[0, j * tokens : (j + 1) * tokens] = m.reshape(tokens, mem_dim)
        tpos[0, j, tp] = 1.0
        slot_valid[0, j] = 1.0
        ptr[0, j] = p
        ptr_valid[0, j] = 1.0
    return {"mem": mem, "mem_tpos": tpos, "ptr": ptr, "slot_valid": slot_valid, "ptr_valid": ptr_valid}


# --------------------------------------------------------------------------- the two frames


def track_click(
    run: Run, manifest: dict, constants: dict, frames: list[np.ndarray], click: tuple[float, float]
) -> dict:
    """Prompt frame 0 with one positive click (x, y in frame pixels), then track frame 1."""
    pre = manifest["preprocessing"]
    size = float(pre["image_size"])
    num_points = input_shapes(manifest, "prompt_decoder")["pt_xy"][1]
    low_res = input_shapes(manifest, "prompt_decoder")["mask_in"]
    num_tpos = input_shapes(manifest, "memory_attention")["mem_tpos"][2]
    no_obj_ptr = constants["no_obj_ptr"]
    h, w = frames[0].shape[:2]
    one = np.ones((1, 1), np.float32)
    zero = np.zeros((1, 1), np.float32)
    no_mask = np.zeros(low_res, np.float32)

    # Frame 0 (prompted, conditioning frame): decoder on raw features + no_mem_embed.
    f0 = run("image_encoder", {"image": preprocess(frames[0], pre)})
    xy = np.asarray([click], np.float32) * np.asarray([size / w, size / h], np.float32)
    dec0 = run(
        "prompt_decoder",
        {
            "pix": f0["vis"],
            "use_no_mem": one,
            "feat_s0": f0["feat_s0"],
            "feat_s1": f0["feat_s1"],
            **pack_points(xy, np.ones(1, np.float32), num_points),
            "mask_in": no_mask,
            "has_mask": zero,
        },
    )
    sel0 = select_multimask(dec0, no_obj_ptr)  # 1 click -> multimask
    # Consolidated prompted frame -> memory from the binarized mask.
    mem0 = run("memory_encoder", {"vis": f0["vis"], "mask_low": sel0["mask"], "binarize": one})["mem"]

    # Frame 1 (tracked): memory attention over the bank, then the decoder without prompt.
    f1 = run("image_encoder", {"image": preprocess(frames[1], pre)})
    bank = memory_bank(manifest, [(num_tpos - 1, mem0[0], sel0["ptr"])])
    pix1 = run("memory_attention", {"vis": f1["vis"], **bank})["pix"]
    dec1 = run(
        "prompt_decoder",
        {
            "pix": pix1,
            "use_no_mem": zero,
            "feat_s0": f1["feat_s0"],
            "feat_s1": f1["feat_s1"],
            **pack_points(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), num_points),
            "mask_in": no_mask,
            "has_mask": zero,
        },
    )
    sel1 = select_multimask(dec1, no_obj_ptr)
    # What frame 2 would need: frame 1's memory from the sigmoid (not binarized) mask.
    mem1 = run("memory_encoder", {"vis": f1["vis"], "mask_low": sel1["mask"], "binarize": zero})["mem"]
    return {"frame0": sel0, "frame1": sel1, "mem0": mem0, "mem1": mem1}


# --------------------------------------------------------------------------- command line


def main(backend: str, make_run: Callable[[Path, dict, dict[str, dict]], Run], argv=None) -> int:
    """Command line shared by the example clients; ``make_run(root, manifest, artifacts)`` -> run."""
    ap = argparse.ArgumentParser(
        description=f"Track one click through two frames with a bundle's {backend} graphs."
    )
    ap.add_argument("bundle", type=Path, help="bundle folder (holds manifest.json)")
    ap.add_argument("frame0", type=Path, help="prompted frame: .npy (H, W, 3) uint8 or an image file")
    ap.add_argument("frame1", type=Path, help="tracked frame, same size as frame0")
    ap.add_argument("--point", required=True, help="positive click x,y in frame-0 pixels")
    ap.add_argument("--precision", default=None, help="fp32 (default when present) or fp16")
    ap.add_argument(
        "--out", type=Path, default=Path("frame1_mask_logits.npy"), help="frame 1 logits (256x256)"
    )
    args = ap.parse_args(argv)
    try:
        manifest = load_manifest(args.bundle)
        precision, arts = select_artifacts(manifest, backend, args.precision)
        constants = load_constants(args.bundle, manifest)
    except BundleError as e:
        print(f"error: bundle {args.bundle} refused: {e}", file=sys.stderr)
        return 2
    x, y = (float(v) for v in args.point.split(","))
    frames = [read_frame(args.frame0), read_frame(args.frame1)]
    if frames[0].shape != frames[1].shape:
        print("error: the two frames differ in size", file=sys.stderr)
        return 2

    run = make_run(args.bundle, manifest, arts)
    seconds: dict[str, float] = {}

    def timed(graph: str, feeds: dict) -> dict:
        t = time.perf_counter()
        out = run(graph, feeds)
        seconds[graph] = seconds.get(graph, 0.0) + time.perf_counter() - t
        return out

    res = track_click(timed, manifest, constants, frames, (x, y))
    mask1 = res["frame1"]["mask"][0, 0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, mask1)
    summary = {
        "backend": backend,
        "precision": precision,
        "weights": manifest.get("weights", {}).get("source", "unknown"),
        "click_xy": [x, y],
        **{
            name: {
                "chosen_mask": res[name]["chosen"],
                "iou": round(res[name]["iou"], 6),
                "obj_score": round(res[name]["obj_score"], 6),
                "mask_area_256": int((res[name]["mask"] > 0).sum()),
            }
            for name in ("frame0", "frame1")
        },
        "frame1_logits": {"min": float(mask1.min()), "max": float(mask1.max()), "mean": float(mask1.mean())},
        "seconds_per_graph": {k: round(v, 3) for k, v in seconds.items()},
        "out": str(args.out),
    }
    print(json.dumps(summary, indent=2))
    return 0
