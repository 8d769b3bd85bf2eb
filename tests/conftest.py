"""Shared fixtures: golden data, synthetic weights, frames, and the parity recorder."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from edgetam_export.procedural import procedural_video
from edgetam_export.tracker import Tracker
from edgetam_export.verify.parity import ParityRecorder

GOLDEN = Path(__file__).parent / "golden"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def golden_json() -> dict:
    return json.loads((GOLDEN / "golden.json").read_text())


@pytest.fixture(scope="session")
def golden():
    """``golden("track_single")`` -> dict of arrays from tests/golden/track_single.npz."""
    cache: dict[str, dict[str, np.ndarray]] = {}

    def load(name: str) -> dict[str, np.ndarray]:
        if name not in cache:
            with np.load(GOLDEN / f"{name}.npz") as z:
                cache[name] = {k: z[k] for k in z.files}
        return cache[name]

    return load


@pytest.fixture(scope="session")
def synthetic_sd():
    from edgetam_export.models import synthetic_state_dict

    return synthetic_state_dict(0)


@pytest.fixture(scope="session")
def frame_tensor():
    """``frame_tensor(t)`` -> (1, 3, 1024, 1024) float32 preprocessed procedural frame t."""
    from edgetam_export.preprocessing import preprocess
    from edgetam_export.procedural import procedural_frame

    cache: dict[int, torch.Tensor] = {}

    def get(t: int) -> torch.Tensor:
        if t not in cache:
            cache[t] = torch.from_numpy(preprocess(procedural_frame(t)))
        return cache[t]

    return get


@pytest.fixture(scope="session")
def exported_bundles(tmp_path_factory):
    """The one real export of a test session (salt-0 synthetic weights), shared by every test file.

    ``{"main": Bundle with onnx + executorch at fp32 and fp16, "coreml": Bundle with coreml at
    fp32 and fp16}``. Core ML sits in its own bundle so its conversion can fail independently.
    """
    import subprocess
    import sys

    from edgetam_export.bundle import export_bundle, load_bundle

    root = tmp_path_factory.mktemp("exports")
    # The Core ML conversion runs in a second process while this one exports ONNX + ExecuTorch:
    # exporting is mostly single-threaded, so the two overlap on a 2-core machine.
    coreml = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from edgetam_export.bundle import export_bundle; "
            "export_bundle(sys.argv[1], ['coreml'], precisions=['fp32', 'fp16'], salt=0)",
            str(root / "coreml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        export_bundle(root / "main", ["onnx", "executorch"], precisions=["fp32", "fp16"], salt=0)
    finally:
        log, _ = coreml.communicate()
    assert coreml.returncode == 0, f"Core ML export failed:\n{log}"
    return {"main": load_bundle(root / "main"), "coreml": load_bundle(root / "coreml")}


# The quantized test bundle's recipe: the over-quantized diagnostic one, so verify's failing
# path is exercised on real artifacts (tests/verify/test_quant_accuracy.py).
QUANT_TEST_RECIPE = "int8_full"


@pytest.fixture(scope="session")
def quantized_bundle(exported_bundles, tmp_path_factory):
    """A copy of the main bundle with ONNX int8 artifacts added (recipe :data:`QUANT_TEST_RECIPE`,
    calibrated on 3 procedural frames): the one quantized export of a test session."""
    import shutil

    from edgetam_export.bundle import export_bundle
    from edgetam_export.calibration import calibrator

    root = tmp_path_factory.mktemp("quantized") / "bundle"
    shutil.copytree(exported_bundles["main"].root, root)
    return export_bundle(
        root,
        ["onnx"],
        precisions=["int8"],
        salt=0,
        calibrate=calibrator(num_frames=3),
        recipe=QUANT_TEST_RECIPE,
    )


@pytest.fixture(scope="session")
def bench_capture(exported_bundles):
    """One captured reference tracking run (prompt on frame 0, 1 tracked frame) shared by every
    bench pack of the session (tests/bench, tests/android_harness)."""
    from edgetam_export.bench.pack import capture_reference
    from edgetam_export.verify.bundle_check import reference_runtime

    return capture_reference(reference_runtime(exported_bundles["main"]), track_frames=1)


NUM_FRAMES = 12
CLICK = [[[[260, 380]]]]


@dataclass
class Run:
    """One golden-scenario run: the session (stored bank), the yielded outputs, wall time."""

    session: object
    outputs: list
    seconds: float

    def stored(self, t: int):
        return self.session.outputs["cond"].get(t) or self.session.outputs["noncond"][t]


def golden_scenario(tracker: Tracker) -> Run:
    """Click (260, 380) on frame 0, run that frame, propagate over the 12 frames."""
    t0 = time.perf_counter()
    session = tracker.init_video_session(video=procedural_video(NUM_FRAMES))
    tracker.add_inputs_to_inference_session(
        session, frame_idx=0, obj_ids=1, input_points=CLICK, input_labels=[[[1]]]
    )
    first = tracker(session, frame_idx=0)
    outputs = list(tracker.propagate_in_video_iterator(session))
    seconds = time.perf_counter() - t0
    np.testing.assert_array_equal(first.pred_masks, outputs[0].pred_masks)
    return Run(session, outputs, seconds)


@pytest.fixture(scope="session")
def reference_run() -> Run:
    """The golden scenario on the PyTorch runtime (fused wrappers, as exported), once per session."""
    from edgetam_export.models import build_edgetam

    return golden_scenario(Tracker.from_reference(build_edgetam(), fill_hole_area=0))


_RECORDER = ParityRecorder()


@pytest.fixture(scope="session")
def parity() -> ParityRecorder:
    """Records every parity comparison; the table is printed at the end of the run."""
    return _RECORDER


def pytest_terminal_summary(terminalreporter):
    if not _RECORDER.rows:
        return
    tr = terminalreporter
    tr.section("parity measurements (rel = max-abs / max|ref|)")
    tr.write_line(
        f"{'backend':<16}{'prec':<6}{'kind':<12}{'tensor':<44}{'max-abs':>10}{'rel':>10}{'cosine':>12}  ok"
    )
    for backend, precision, kind, c, ok in _RECORDER.rows:
        tr.write_line(
            f"{backend:<16}{precision:<6}{kind:<12}{c.name[:43]:<44}{c.max_abs:>10.3g}{c.rel_max_abs:>10.3g}"
            f"{c.cosine:>12.9f}  {'yes' if ok else 'NO'}"
        )
