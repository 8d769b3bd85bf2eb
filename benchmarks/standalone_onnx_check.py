"""Run a bench pack's steady-state tracked frame with ONNX Runtime, without edgetam-export.

Needs only numpy and onnxruntime: reads index.json + plan.json, opens the pack's .onnx
artifacts, runs the calls of the largest tracked frame from the captured feeds and checks
every output against the captured expected output with the plan's tolerance
(rel_max_abs = max|got - expected| / max|expected|, cosine). Exit status 0 iff all match.

    python benchmarks/standalone_onnx_check.py PACK
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main(pack: Path) -> int:
    index = json.loads((pack / "index.json").read_text())
    plan = json.loads((pack / "plan.json").read_text())
    if index["backend"] != "onnx":
        print(f"{pack} holds {index['backend']} artifacts; this script runs ONNX packs", file=sys.stderr)
        return 2

    def tensor(key: str) -> np.ndarray:
        e = index["tensors"][key]
        data = np.fromfile(pack / e["file"], dtype=np.dtype(e["dtype"]).newbyteorder("<"))
        return data.reshape(e["shape"]).astype(e["dtype"])

    sessions = {}
    frame = max((f for f in plan["frames"] if f["kind"] == "tracked"), key=lambda f: f["objects"])
    ok = True
    for key in frame["calls"]:
        call = plan["calls"][key]
        graph = call["graph"]
        if graph not in sessions:
            sessions[graph] = ort.InferenceSession(
                str(pack / index["artifacts"][graph]["file"]), providers=["CPUExecutionProvider"]
            )
        sess = sessions[graph]
        feeds = {name: tensor(k) for name, k in call["inputs"].items()}
        names = [o.name for o in sess.get_outputs()]
        outs = dict(zip(names, sess.run(names, feeds), strict=True))
        for name, k in call["expected"].items():
            exp = tensor(k).astype(np.float64)
            got = np.asarray(outs[name], dtype=np.float64)
            scale = float(np.abs(exp).max()) or 1.0
            rel = float(np.abs(got - exp).max()) / scale
            na, nb = np.linalg.norm(exp), np.linalg.norm(got)
            cos = 1.0 if na == 0 and nb == 0 else float((exp.ravel() @ got.ravel()) / (na * nb or 1.0))
            tol = plan["tolerances"][graph][name]
            good = rel <= tol["rel_max_abs"] and cos >= tol["min_cosine"]
            ok &= good
            print(f"{'ok  ' if good else 'FAIL'} {key}.{name}: rel_max_abs {rel:.3g} cosine {cos:.9f}")
    print(f"{frame['name']}: {'all outputs match' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: standalone_onnx_check.py PACK", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
