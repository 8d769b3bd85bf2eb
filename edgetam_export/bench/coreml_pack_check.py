"""Checks that a Core ML bench pack's index and plan agree with its ``.mlpackage`` specs.

The Swift runner feeds ``MLMultiArray`` inputs by the names, shapes and dtypes in ``index.json``
and compares outputs by the names in ``plan.json``; a pack that disagrees with the models would
only fail on a device. :func:`check_pack_against_mlpackage` reads every artifact's model
description with coremltools (``coremltools.utils.load_spec``: no Core ML framework needed, so it
runs on Linux) and names every mismatch:

* artifact inputs/outputs vs the spec's ``description.input``/``output``: names in order, shapes
  (``multiArrayType.shape``) and dtypes (``multiArrayType.dataType``);
* every plan call: its graph is an artifact, its feeds cover exactly the artifact's inputs, each
  feed/expected tensor exists in ``index.tensors`` with the artifact's shape and dtype, and each
  expected output is an artifact output;
* tensor files (when present, or always with ``require_files=True``): byte size equals
  ``nbytes`` = prod(shape) × itemsize.

It returns the list of problems (empty = consistent); it does not run the models.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["ITEMSIZE", "check_pack_against_mlpackage", "mlpackage_io"]

ITEMSIZE = {"float32": 4, "float16": 2, "float64": 8, "int32": 4, "int64": 8, "uint8": 1}


def mlpackage_io(path: str | Path) -> dict[str, list[dict]]:
    """``{"inputs": [{name, shape, dtype}], "outputs": [...]}`` from a saved model's spec, in order."""
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2 as ft

    dtypes = {
        ft.ArrayFeatureType.FLOAT32: "float32",
        ft.ArrayFeatureType.FLOAT16: "float16",
        ft.ArrayFeatureType.DOUBLE: "float64",
        ft.ArrayFeatureType.INT32: "int32",
    }
    spec = ct.utils.load_spec(str(path))

    def describe(features) -> list[dict]:
        out = []
        for f in features:
            kind = f.type.WhichOneof("Type")
            if kind != "multiArrayType":
                out.append({"name": f.name, "shape": None, "dtype": kind})
                continue
            arr = f.type.multiArrayType
            out.append(
                {
                    "name": f.name,
                    "shape": [int(d) for d in arr.shape],
                    "dtype": dtypes.get(arr.dataType, f"ArrayDataType {arr.dataType}"),
                }
            )
        return out

    return {"inputs": describe(spec.description.input), "outputs": describe(spec.description.output)}


def _compare_specs(graph: str, kind: str, declared: list[dict], actual: list[dict]) -> list[str]:
    problems = []
    dn, an = [d.get("name") for d in declared], [a["name"] for a in actual]
    if dn != an:
        problems.append(f"{graph}: index.json {kind} {dn} != the .mlpackage's {an} (names, in order)")
    by_name = {a["name"]: a for a in actual}
    for d in declared:
        a = by_name.get(d.get("name"))
        if a is None:
            continue
        if list(d.get("shape", [])) != a["shape"]:
            problems.append(
                f"{graph}: {kind[:-1]} {d['name']} has shape {d.get('shape')} in index.json, {a['shape']} in the .mlpackage"
            )
        if d.get("dtype") != a["dtype"]:
            problems.append(
                f"{graph}: {kind[:-1]} {d['name']} has dtype {d.get('dtype')} in index.json, {a['dtype']} in the .mlpackage"
            )
    return problems


def _check_tensor(
    pack: Path, index: dict, key: str, want: dict | None, what: str, require_files: bool
) -> list[str]:
    entry = index.get("tensors", {}).get(key)
    if entry is None:
        return [f"{what}: tensor {key} is not in index.tensors"]
    problems = []
    if want is not None:
        if list(entry.get("shape", [])) != list(want["shape"] or []):
            problems.append(
                f"{what}: tensor {key} has shape {entry.get('shape')}, the model wants {want['shape']}"
            )
        if entry.get("dtype") != want["dtype"]:
            problems.append(
                f"{what}: tensor {key} has dtype {entry.get('dtype')}, the model wants {want['dtype']}"
            )
    size = math.prod(entry.get("shape", [])) * ITEMSIZE.get(entry.get("dtype"), 0)
    if entry.get("nbytes") != size:
        problems.append(f"{what}: tensor {key} says nbytes {entry.get('nbytes')}, shape×dtype gives {size}")
    f = pack / entry.get("file", "")
    if f.is_file():
        if f.stat().st_size != entry.get("nbytes"):
            problems.append(
                f"{what}: {entry['file']} holds {f.stat().st_size} bytes, index says {entry.get('nbytes')}"
            )
    elif require_files:
        problems.append(f"{what}: tensor file {entry.get('file')} is missing")
    return problems


def check_pack_against_mlpackage(pack_dir: str | Path, *, require_files: bool = False) -> list[str]:
    """Every disagreement between a Core ML pack's index/plan and its ``.mlpackage`` specs."""
    pack = Path(pack_dir)
    try:
        index = json.loads((pack / "index.json").read_text())
        plan = json.loads((pack / "plan.json").read_text())
    except (OSError, ValueError) as e:
        return [f"{pack}: cannot read index.json/plan.json ({e})"]
    if index.get("backend") != "coreml":
        return [f"{pack}: index.json backend is {index.get('backend')!r}, not 'coreml'"]
    problems: list[str] = []
    specs: dict[str, dict[str, list[dict]]] = {}
    for graph, art in index.get("artifacts", {}).items():
        path = pack / art.get("file", "")
        if path.suffix != ".mlpackage" or not path.exists():
            problems.append(f"{graph}: artifact {art.get('file')} is not an .mlpackage in the pack")
            continue
        specs[graph] = io = mlpackage_io(path)
        problems += _compare_specs(graph, "inputs", art.get("inputs", []), io["inputs"])
        problems += _compare_specs(graph, "outputs", art.get("outputs", []), io["outputs"])
    for key, call in plan.get("calls", {}).items():
        graph = call.get("graph")
        if graph not in index.get("artifacts", {}):
            problems.append(f"call {key}: graph {graph!r} is not an artifact in index.json")
            continue
        io = specs.get(graph)
        if io is None:
            continue
        ins = {s["name"]: s for s in io["inputs"]}
        outs = {s["name"]: s for s in io["outputs"]}
        if set(call.get("inputs", {})) != set(ins):
            problems.append(
                f"call {key}: feeds {sorted(call.get('inputs', {}))} != {graph} inputs {sorted(ins)}"
            )
        for name, tensor in call.get("inputs", {}).items():
            problems += _check_tensor(
                pack, index, tensor, ins.get(name), f"call {key} input {name}", require_files
            )
        for name, tensor in (call.get("expected") or {}).items():
            if name not in outs:
                problems.append(
                    f"call {key}: expected output {name!r} is not an output of {graph} {sorted(outs)}"
                )
                continue
            problems += _check_tensor(
                pack, index, tensor, outs[name], f"call {key} output {name}", require_files
            )
    return problems
