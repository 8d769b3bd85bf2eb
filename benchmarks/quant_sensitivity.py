"""Sensitivity pass for mixed precision: quantize one graph at a time (the others fp32) and measure the tracker-level error.

Not a test (minutes per backend). Needs a bundle holding the backend's fp32 artifacts and a
quantized precision (e.g. int8 from the ``int8`` recipe, every graph quantized):

    edgetam-export export --backend onnx --precision fp32 --synthetic --out /tmp/q/b
    edgetam-export export --backend onnx --precision int8 --out /tmp/q/b
    python benchmarks/quant_sensitivity.py --bundle /tmp/q/b --backend onnx --frames 40

For each graph G it tracks the accuracy scenario (edgetam_export.verify.quant_accuracy: a click
and a box over procedural frames) with G's quantized artifact and the other three graphs' fp32
artifacts, and compares every frame with the all-fp32 tracker: min / mean mask IoU, the worst
frame, score-sign agreement (the row of all four graphs quantized comes first). ``--quantized`` takes
the quantized artifacts from another bundle (same weights), e.g. one exported with
``--recipe int8_dynamic``. ``--json`` writes the table.

``--image-encoder-parts`` (ONNX) adds one row per part of the image encoder: the stem, each
RepViT stage and the FPN neck. For each part it quantizes the bundle's fp32 image encoder with
the ``int8`` recipe's scheme but every *other* part kept float (node-name rules, as the mixed
recipes use), calibrated on image-encoder inputs recorded from a fp32 tracking run, and tracks
with that image encoder and the other three graphs fp32.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from edgetam_export.models.constants import GRAPH_NAMES

from edgetam_export.bundle import load_bundle
from edgetam_export.calibration import capture, procedural_frames
from edgetam_export.runtime.base import Runtime
from edgetam_export.runtime.loader import runtime_from_bundle
from edgetam_export.verify.quant_accuracy import SCENARIO_FRAMES, track_scenario, tracker_accuracy


class OneGraphSwapped(Runtime):
    """Runs the graphs in ``quantized`` on the quantized runtime and every other graph on the fp32 one."""

    def __init__(self, fp32: Runtime, quant: Runtime, quantized: tuple[str, ...]):
        self.fp32, self.quant, self.quantized = fp32, quant, set(quantized)
        self.name = f"{fp32.name}+{quant.name}"
        self.contracts, self.constants, self.options = fp32.contracts, fp32.constants, fp32.options

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return (self.quant if graph in self.quantized else self.fp32).run(graph, feeds)


# ONNX node-name scopes of the image encoder's parts (FusedImageEncoder: trunk = RepViT-M1; the
# FPN neck's convs sit directly under the encoder: lateral_s2/s3, upsample, proj_s0/s1)
IMAGE_ENCODER_PARTS = {
    "stem": ("trunk.body.stem",),
    **{f"stage{i}": (f"trunk.body.stages_{i}",) for i in range(4)},
    "neck": ("encoder.lateral_s", "encoder.upsample", "encoder.proj_s"),
}


class ImageEncoderSwapped(Runtime):
    """Runs the image encoder with an ``onnxruntime.InferenceSession`` of ``path`` and every other graph on ``fp32``."""

    def __init__(self, fp32: Runtime, path: Path, threads: int):
        from edgetam_export.runtime.onnx_runtime import cpu_session

        self.fp32 = fp32
        self.name = f"{fp32.name}+{path.stem}"
        self.contracts, self.constants, self.options = fp32.contracts, fp32.constants, fp32.options
        self.session = cpu_session(path, threads)

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if graph != "image_encoder":
            return self.fp32.run(graph, feeds)
        names = self.contracts[graph].output_names
        return dict(zip(names, self.session.run(names, feeds), strict=True))


def image_encoder_part_runtimes(fp32: Runtime, workdir: Path, threads: int):
    """Yield ``(part, runtime)``: the image encoder int8 on ``part`` only (ONNX), the rest fp32."""
    from edgetam_export.exporters.onnx_quant import ALWAYS_FLOAT, ATTENTION_MATMUL, quantize_onnx
    from edgetam_export.exporters.quantization import GraphQuant

    calib = capture(fp32, procedural_frames(), "procedural frames (fp32 ONNX run)", procedural=True)
    names = fp32.contracts["image_encoder"].input_names
    for part in IMAGE_ENCODER_PARTS:
        others = tuple(f"name:{s}" for p, scopes in IMAGE_ENCODER_PARTS.items() if p != part for s in scopes)
        quant = GraphQuant("int8_static", (*ALWAYS_FLOAT, ATTENTION_MATMUL, *others), f"int8 on {part} only")
        out = workdir / f"image_encoder.{part}.onnx"
        quantize_onnx(Path(fp32.paths["image_encoder"]), out, quant, calib.samples["image_encoder"], names)
        yield part, ImageEncoderSwapped(fp32, out, threads)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--bundle", required=True, help="bundle with the backend's fp32 (and quantized) artifacts"
    )
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--precision", default="int8", help="the quantized precision to take graphs from")
    ap.add_argument("--quantized", help="take the quantized artifacts from this bundle instead")
    ap.add_argument("--frames", type=int, default=SCENARIO_FRAMES, help="scenario frames (fewer = faster)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the table here")
    ap.add_argument(
        "--image-encoder-parts",
        action="store_true",
        help="ONNX: also quantize one image-encoder part at a time (stem, stages, neck)",
    )
    a = ap.parse_args(argv)
    if a.image_encoder_parts and a.backend != "onnx":
        ap.error("--image-encoder-parts needs --backend onnx (it quantizes with node-name rules)")

    bundle = load_bundle(a.bundle)
    qbundle = load_bundle(a.quantized) if a.quantized else bundle
    kw = {"num_threads": a.threads} if a.backend == "onnx" else {}
    fp32 = runtime_from_bundle(bundle, a.backend, "fp32", **kw)
    quant = runtime_from_bundle(qbundle, a.backend, a.precision, **kw)
    recipe = qbundle.quantization(a.backend, a.precision).get("recipe")
    print(f"{a.backend} {a.precision} (recipe {recipe}) vs {a.backend} fp32, {a.frames} frames", flush=True)
    t0 = time.perf_counter()
    ref = track_scenario(fp32, a.frames)
    print(f"fp32 scenario: {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    cases = [("all four", OneGraphSwapped(fp32, quant, tuple(GRAPH_NAMES)))]  # the whole recipe first
    cases += [(g, OneGraphSwapped(fp32, quant, (g,))) for g in GRAPH_NAMES]
    tmp = tempfile.TemporaryDirectory(prefix="quant-parts-")
    if a.image_encoder_parts:
        parts = image_encoder_part_runtimes(fp32, Path(tmp.name), a.threads)
        cases += [(f"image_encoder:{p}", rt) for p, rt in parts]
    for label, runtime in cases:
        t0 = time.perf_counter()
        acc = tracker_accuracy(track_scenario(runtime, a.frames), ref, a.backend, a.precision)
        g = acc.growth()
        row = {
            "quantized": label,
            "min_iou": acc.min_iou,
            "mean_iou": acc.mean_iou,
            "worst_frame": g["worst_frame"],
            "mean_iou_halves": [g["mean_iou_first_half"], g["mean_iou_second_half"]],
            "sign_agreement": acc.sign_agreement,
            "passes_bound": acc.passed,
            "per_frame_min_iou": acc.per_frame_min,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        rows.append(row)
        print(
            f"{row['quantized']:<34} min IoU {row['min_iou']:.4f} (frame {row['worst_frame']:>2})  "
            f"mean {row['mean_iou']:.4f}  halves {row['mean_iou_halves'][0]:.4f}->{row['mean_iou_halves'][1]:.4f}  "
            f"signs {100 * row['sign_agreement']:.1f}%  {'pass' if row['passes_bound'] else 'FAIL'}  "
            f"({row['seconds']} s)",
            flush=True,
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {"backend": a.backend, "precision": a.precision, "recipe": recipe, "rows": rows}, f, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
