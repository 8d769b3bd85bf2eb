"""Third-party consumers (examples/consumer_*.py): a plain script + the manifest tracks a frame.

Each example runs as a subprocess on the session's shared export and must reproduce the
tracker's frame-1 mask after the same click; a tampered artifact must be refused by name.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgetam_export.procedural import procedural_frame
from edgetam_export.verify.metrics import mask_iou

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLICK = (260, 380)
BACKENDS = ("onnx", "executorch")
ALLOWED_IMPORTS = {
    "_host_logic.py": set(),
    "consumer_onnx.py": {"onnxruntime", "_host_logic"},
    "consumer_executorch.py": {"executorch", "torch", "_host_logic"},
}
STDLIB = {"__future__", "argparse", "hashlib", "json", "sys", "time", "collections", "pathlib", "PIL"}


def _script(backend: str) -> Path:
    return EXAMPLES / f"consumer_{backend}.py"


def _run(backend: str, bundle: Path, frames: tuple[Path, Path], out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(_script(backend)), str(bundle), str(frames[0]), str(frames[1])]
    cmd += ["--point", f"{CLICK[0]},{CLICK[1]}", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("consumer_frames")
    paths = (d / "frame0.npy", d / "frame1.npy")
    for t, p in enumerate(paths):
        np.save(p, procedural_frame(t))
    return paths


def _tracker(root: Path, backend: str):
    from edgetam_export.tracker import Tracker

    return Tracker.from_bundle(root, backend=backend, precision="fp32", fill_hole_area=0)


def _tracker_frame1(root: Path, backend: str) -> np.ndarray:
    tracker = _tracker(root, backend)
    session = tracker.init_video_session(video=[procedural_frame(0), procedural_frame(1)])
    tracker.add_inputs_to_inference_session(
        session, frame_idx=0, obj_ids=[1], input_points=[[[list(CLICK)]]], input_labels=[[[1]]]
    )
    tracker(session, frame_idx=0)
    out = {o.frame_idx: o for o in tracker.propagate_in_video_iterator(session)}
    return out[1].pred_masks[0, 0]


def test_examples_import_nothing_from_the_project():
    for name, allowed in ALLOWED_IMPORTS.items():
        tree = ast.parse((EXAMPLES / name).read_text())
        roots = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots.add((node.module or "").split(".")[0])
        extra = roots - allowed - STDLIB - {"numpy"}
        assert not extra, f"{name} imports {sorted(extra)}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_consumer_tracks_like_the_tracker(exported_bundles, frames, parity, tmp_path, backend):
    root = Path(exported_bundles["main"].root)
    out = tmp_path / "mask1.npy"
    proc = _run(backend, root, frames, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["backend"] == backend and summary["precision"] == "fp32"
    got = np.load(out)
    assert got.shape == (256, 256) and got.dtype == np.float32

    ref = _tracker_frame1(root, backend)
    assert summary["frame1"]["mask_area_256"] == int((got > 0).sum())
    assert (ref > 0).any(), "the tracked object vanished: the comparison would prove nothing"
    assert mask_iou(ref, got) >= 0.999
    parity.check(f"consumer_{backend} frame-1 mask logits", ref, got, backend, "fp32", "logits")


@pytest.mark.parametrize("backend", BACKENDS)
def test_consumer_refuses_tampered_bundle(exported_bundles, frames, tmp_path, backend):
    src = Path(exported_bundles["main"].root)
    dst = tmp_path / "tampered"
    shutil.copytree(src, dst, copy_function=os.symlink)  # links: nothing large is copied
    rel = f"{backend}/memory_attention.fp32.{'onnx' if backend == 'onnx' else 'pte'}"
    target = dst / rel
    target.unlink()
    shutil.copyfile(src / rel, target)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))

    proc = _run(backend, dst, frames, tmp_path / "mask1.npy")
    assert proc.returncode != 0
    assert rel in proc.stderr
    assert not (tmp_path / "mask1.npy").exists()
