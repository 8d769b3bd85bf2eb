"""ONNX Runtime's own ORT-format tools for a bundle: the ``.ort`` companion of one ``.onnx`` file, and the
reduced-build operator configs of all of them.

:func:`convert_to_ort` calls ``onnxruntime.tools.convert_onnx_models_to_ort`` (the Python function
behind ``python -m onnxruntime.tools.convert_onnx_models_to_ort``) with the ORT mobile default for
fixed-shape models: optimization style ``Fixed`` at the level the tool uses by default (``all``,
or ``ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL`` when set) and no target platform (the
tool then leaves out the x86-only NCHWc layout transformer, so the file runs on ARM and x86).
The ``.onnx`` file stays the artifact of record; the ``.ort`` file is the same graph after ORT's
graph optimizations for the CPU execution provider, saved in ORT's flatbuffer format, which a
minimal (mobile) ORT build loads. Those optimizations constant-fold, so the ``.ort`` can be
larger than the ``.onnx`` (e.g. a folded positional encoding; on fp16 graphs the CPU EP has no
fp16 kernels for most ops, so ORT casts them to float32 and folds the fp16 weights to float32).

:func:`write_operator_configs` runs ``onnxruntime.tools.ort_format_model.create_config_from_models``
(what the converter runs after converting) over the ``.ort`` files of a bundle, once without and
once with type reduction: the ``--include_ops_by_config`` inputs of a reduced-size ORT build.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import time
from pathlib import Path

from ..fileio import temp_sibling

# What the converter is asked for (recorded in each artifact's notes["ort"]).
OPTIMIZATION_STYLE = "Fixed"
LEVEL_ENV = "ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"  # read by the converter itself
# The converter's target_platform left at its default (None): neither "arm" (QDQ int8 allowed in
# fusions) nor "amd64" (NCHWc layout): the .ort runs on any CPU.
TARGET_PLATFORM = "any"
# Prefix of the Cast nodes (and their tensors) that ORT's InsertCastTransformer adds when the CPU EP,
# which has no fp16 kernel for most ops, optimizes an fp16 graph: those ops then compute in fp32.
INSERTED_CAST_PREFIX = "InsertedPrecisionFreeCast_"
REQUIRED_OPERATORS = "required_operators.config"
REQUIRED_OPERATORS_AND_TYPES = "required_operators_and_types.config"


def optimization_level() -> str:
    """The level the converter applies: its default ``all`` unless :data:`LEVEL_ENV` says otherwise."""
    return os.getenv(LEVEL_ENV, "all")


@contextlib.contextmanager
def _quiet_tools():
    """The converter prints its progress to stdout and the config writer logs at INFO (it installs
    a root handler): keep both out of the CLI's progress bar. ORT's C++ warnings (stderr) stay."""
    logger = logging.getLogger("ort_format_model.utils")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def convert_to_ort(onnx_path: str | os.PathLike, ort_path: str | os.PathLike) -> dict:
    """Convert ``onnx_path`` to the ORT-format model ``ort_path`` with onnxruntime's converter.

    The converter writes into a private temporary folder next to ``ort_path`` (it also writes a
    per-model operator config there, dropped here); the ``.ort`` file is then renamed to
    ``ort_path``, so ``ort_path`` is only ever absent or complete. Raises ``RuntimeError`` (one
    line) when the conversion fails. Returns the notes ``{"bytes", "seconds",
    "optimization_style", "optimization_level", "target_platform"}``.
    """
    from onnxruntime.tools import convert_onnx_models_to_ort as tool

    onnx_path, ort_path = Path(onnx_path), Path(ort_path)
    work = temp_sibling(ort_path)
    work.mkdir()
    t0 = time.perf_counter()
    try:
        with _quiet_tools():
            tool.convert_onnx_models_to_ort(
                onnx_path,
                output_dir=work,
                optimization_styles=[tool.OptimizationStyle[OPTIMIZATION_STYLE]],
            )
        made = sorted(work.glob("*.ort"))
        if len(made) != 1:
            raise RuntimeError(f"the converter wrote {[p.name for p in made]}, expected one .ort file")
        os.replace(made[0], ort_path)
    except Exception as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise RuntimeError(f"ORT-format (.ort) conversion failed: {msg}") from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes = {
        "bytes": ort_path.stat().st_size,
        "seconds": round(time.perf_counter() - t0, 3),
        "optimization_style": OPTIMIZATION_STYLE,
        "optimization_level": optimization_level(),
        "target_platform": TARGET_PLATFORM,
        **ort_graph_facts(ort_path),
    }
    if notes["fp32_casts_inserted"]:
        dt = notes["compute_dtypes"]
        notes["fp32_casts_note"] = (
            f"converted on a host whose CPU EP has no fp16 kernels for most ops: ORT inserted "
            f"{notes['fp32_casts_inserted']} Casts to float32 and folded fp16 weights to float32, so "
            f"{dt.get('float32', 0)} of {sum(dt.values())} nodes compute in float32 on any device; "
            "the .onnx file keeps the fp16 graph"
        )
    return notes


# ORT flatbuffer TensorDataType codes of the floating types, by name
_FLOAT_CODES = {1: "float32", 10: "float16", 16: "bfloat16"}


def ort_graph_facts(ort_path: str | os.PathLike) -> dict:
    """Facts of the main graph of the ORT-format model ``ort_path``, read with onnxruntime's own
    flatbuffer bindings: ``fp32_casts_inserted`` (Cast nodes named :data:`INSERTED_CAST_PREFIX`;
    0 for an fp32 graph) and ``compute_dtypes`` (``{dtype: nodes}``: every node but a Cast, by the
    element type of its first floating-point input, activation or weight)."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import TensorTypeAndShape, TypeInfoValue
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.InferenceSession import InferenceSession

    graph = InferenceSession.GetRootAsInferenceSession(Path(ort_path).read_bytes(), 0).Model().Graph()
    dtype: dict[bytes, int] = {}
    for i in range(graph.NodeArgsLength()):
        arg = graph.NodeArgs(i)
        t = arg.Type()
        if t is not None and t.ValueType() == TypeInfoValue.TypeInfoValue.tensor_type:
            tensor = TensorTypeAndShape.TensorTypeAndShape()
            tensor.Init(t.Value().Bytes, t.Value().Pos)
            dtype[arg.Name()] = tensor.ElemType()
    for i in range(graph.InitializersLength()):
        init = graph.Initializers(i)
        dtype[init.Name()] = init.DataType()
    prefix = INSERTED_CAST_PREFIX.encode()
    casts, compute = 0, {}
    for i in range(graph.NodesLength()):
        node = graph.Nodes(i)
        if node.OpType() == b"Cast":
            casts += (node.Name() or b"").startswith(prefix)
            continue
        floats = [dtype.get(node.Inputs(j)) for j in range(node.InputsLength())]
        name = next((_FLOAT_CODES[c] for c in floats if c in _FLOAT_CODES), None)
        if name is not None:
            compute[name] = compute.get(name, 0) + 1
    return {"fp32_casts_inserted": casts, "compute_dtypes": dict(sorted(compute.items()))}


def write_operator_configs(root: Path, ort_files: list[str], folder: str) -> dict[str, str]:
    """Write ``<folder>/required_operators.config`` and ``<folder>/required_operators_and_types.config``
    under ``root`` from the ORT-format models ``ort_files`` (paths relative to ``root``).

    Each is what ``convert_onnx_models_to_ort`` writes for the models it converted (one line per
    ``domain;opset;op,op,...``; the second adds the types each op is used with), except that the
    header lists the models by their bundle paths. Returns ``{"required_operators": rel path,
    "required_operators_and_types": rel path}``.
    """
    from onnxruntime.tools.ort_format_model import create_config_from_models

    if not ort_files:
        raise ValueError("no .ort files to build the operator configs from")
    models = [root / rel for rel in sorted(ort_files)]
    out = {}
    for key, name, typed in (
        ("required_operators", REQUIRED_OPERATORS, False),
        ("required_operators_and_types", REQUIRED_OPERATORS_AND_TYPES, True),
    ):
        target = root / folder / name
        tmp = temp_sibling(target)
        try:
            with _quiet_tools():
                create_config_from_models(models, tmp, typed)
            text = tmp.read_text()
            for p in models:  # the header names each model by its absolute path: use the bundle's
                text = text.replace(f"# - {p}\n", f"# - {p.relative_to(root).as_posix()}\n")
            tmp.write_text(text)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        out[key] = f"{folder}/{name}"
    return out
