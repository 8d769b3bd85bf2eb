"""Shared fixtures: golden data, synthetic weights, frames, and the parity recorder."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from edgetam_export.procedural import procedural_video
from edgetam_export.tracker import Tracker
from edgetam_export.verify.metrics import Comparison
from edgetam_export.verify.parity import ParityRecorder
from tests import session_export

GOLDEN = Path(__file__).parent / "golden"

# This process is a pytest-xdist worker (not the controller, not a lone pytest).
XDIST_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))
# Two threads for a lone pytest process; one per process when pytest-xdist runs two workers.
torch.set_num_threads(1 if XDIST_WORKER else 2)


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


def _shared_dir(config) -> Path:
    """A directory every process of this session sees: the session's basetemp, or under
    pytest-xdist the controller's (the parent of each worker's ``popen-gwN``)."""
    base = config._tmp_path_factory.getbasetemp()
    return base.parent if XDIST_WORKER else base


def _export_root(config) -> Path:
    return _shared_dir(config) / "session-export"


# Session fixtures that only the background export provides.
_EXPORT_FIXTURES = {"exported_bundles", "quantized_bundle", "bench_capture"}
# pytest-xdist work units (:func:`pytest_xdist_make_scheduler`): a test module runs whole on one
# worker (its module fixtures are built once), except these modules of independent heavy tests
# (no module fixtures), whose tests are spread; android_harness/ is one unit (one native build
# directory, its builds started in the background by its conftest).
_SPLIT_MODULES = {"tests/e2e/test_scenarios.py", "tests/e2e/test_bundle_tracking.py"}
_UNIT_DIRS = {"tests/android_harness/": "native"}


def _module_key(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its module, its own id (split modules) or a directory group."""
    mod = _module_key(nodeid)
    for prefix, unit in _UNIT_DIRS.items():
        if mod.startswith(prefix):
            return unit
    return nodeid if mod in _SPLIT_MODULES else mod


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Schedule work units (:func:`_work_unit`) in collection order (see
    :func:`pytest_collection_modifyitems`), not xdist's largest-unit-first reorder."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    config.option.loadscopereorder = False
    return UnitScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Order the tests so that the modules needing no bundle run first, while the session export
    runs in the background (:func:`pytest_collection_finish`): the split modules (many long
    independent tests) lead, and the native group leads the modules that wait for the export.
    The order is the same in every worker."""
    needs_export: dict[str, bool] = {}
    for item in items:
        mod = _module_key(item.nodeid)
        names = set(getattr(item, "fixturenames", ()))
        needs_export[mod] = needs_export.get(mod, False) or bool(names & _EXPORT_FIXTURES)

    def key(item):
        mod = _module_key(item.nodeid)
        return (
            needs_export[mod],
            _work_unit(item.nodeid) not in _UNIT_DIRS.values(),
            mod not in _SPLIT_MODULES,
        )

    items.sort(key=key)


def pytest_collection_finish(session):
    """Start the background export once the selection is final, if a selected test needs it."""
    if session.config.option.collectonly:
        return
    if any(set(getattr(it, "fixturenames", ())) & _EXPORT_FIXTURES for it in session.items):
        session_export.start(_export_root(session.config))


def pytest_unconfigure(config):
    session_export.finish(wait_for_it=XDIST_WORKER)


@pytest.fixture(scope="session")
def exported_bundles(pytestconfig):
    """The one real export of a test session (salt-0 synthetic weights), shared by every test file
    and every xdist worker (made in the background by :mod:`tests.session_export`).

    ``{"main": Bundle with onnx + executorch at fp32 and fp16, "coreml": Bundle with coreml at
    fp32 and fp16}``. Core ML sits in its own bundle so its conversion can fail independently.
    """
    from edgetam_export.bundle import load_bundle

    root = _export_root(pytestconfig)
    session_export.start(root)  # no-op if the collection hook started it
    try:
        session_export.wait(root)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
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
def bench_capture(exported_bundles, pytestconfig):
    """One captured reference tracking run (prompt on frame 0, 1 tracked frame) shared by every
    bench pack of the session (tests/bench, tests/android_harness); made by the session export."""
    return session_export.load_capture(_export_root(pytestconfig))


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


def pytest_sessionfinish(session):
    """xdist worker: hand the parity rows to the controller, which prints the table."""
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        out["parity_rows"] = [(b, p, k, asdict(c), ok) for b, p, k, c, ok in _RECORDER.rows]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: collect a finished worker's parity rows."""
    for b, p, k, c, ok in node.workeroutput.get("parity_rows", []):
        _RECORDER.rows.append((b, p, k, Comparison(**c), ok))


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
