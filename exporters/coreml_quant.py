"""Core ML quantization: the per-graph schemes (coremltools.optimize on a converted ML Program) and the Core ML recipes as data.

Schemes (``GraphQuant.scheme``), applied to the fp16 ML Program the exporter converted:

* ``"int8_weights"``: ``coremltools.optimize.coreml.linear_quantize_weights``, int8, symmetric,
  per output channel; weights are stored as int8 + one fp16 scale per channel and decompressed
  to fp16 at load time (``constexpr_affine_dequantize`` on iOS17, ``constexpr_blockwise_shift_scale``
  on iOS18). Activations and compute stay fp16.
* ``"palettize<n>"`` (n in 1, 2, 3, 4, 6, 8): ``palettize_weights``, k-means, one LUT of 2**n fp16
  entries per tensor (the granularity iOS17 supports), ``constexpr_lut_to_dense``.
* ``"w8a8"``: ``linear_quantize_activations`` (quantize/dequantize pairs on the inputs of conv,
  linear and add, iOS17+ ops) with calibration statistics, then ``int8_weights``. The
  statistics are per-tensor ``(min, max)`` over the calibration samples, collected by an
  *activation observer* (see :func:`set_activation_observer`): coremltools collects them with
  ``MLModel.predict``, which exists only on macOS, so the project's MIL evaluator registers
  itself as the observer (same statistics on every OS; coremltools 9.0's own collector also
  keeps only the last sample's range per tensor).

Weights smaller than ``WEIGHT_THRESHOLD`` elements (norm gains, biases, small tables) stay fp16
in every scheme (coremltools' default threshold). ``GraphQuant.keep_float`` lists MIL op types
(``"linear"``, ``"conv"``, ``"matmul"``, ...) whose weights and activations stay fp16, or
``fnmatch`` patterns of op / weight names.

The deployment target is the exporter's (iOS17 by default): every scheme above is available
from iOS17 (activation quantize/dequantize needs iOS17; per-block and grouped-channel LUTs,
which need iOS18, are not used so iOS17 and iOS18 get the same recipes).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import re
import sys
from collections.abc import Callable

from .quantization import GraphQuant, Recipe

__all__ = [
    "FLOAT_SCHEMES",
    "RECIPES",
    "SCHEMES",
    "WEIGHT_THRESHOLD",
    "activation_observer",
    "compress_mlmodel",
    "set_activation_observer",
]

GRAPHS = ("image_encoder", "prompt_decoder", "memory_encoder", "memory_attention")
FLOAT_SCHEMES = ("fp32", "fp16")
PALETTE_BITS = (1, 2, 3, 4, 6, 8)
SCHEMES = ("int8_weights", "w8a8", *(f"palettize{n}" for n in PALETTE_BITS))
WEIGHT_THRESHOLD = 2048  # elements; smaller constants stay fp16 (coremltools' default)
_PALETTE = re.compile(r"palettize(\d)$")

# (mlmodel, [ {input name: float32 array} ]) -> {tensor name: {"rmin": float, "rmax": float}}
ActivationObserver = Callable[[object, list], dict]
_OBSERVER: ActivationObserver | None = None


def set_activation_observer(fn: ActivationObserver | None) -> None:
    """Register the function that collects W8A8 calibration statistics (None: unregister).

    ``fn(mlmodel, samples)`` gets the float ML Program and the calibration samples (``{input
    name: float32 array}`` each) and returns ``{tensor name: {"rmin", "rmax"}}`` over all samples.
    """
    global _OBSERVER
    _OBSERVER = fn


def activation_observer() -> ActivationObserver:
    """The registered observer; without one, coremltools' own (``MLModel.predict``, macOS only)."""
    if _OBSERVER is not None:
        return _OBSERVER
    if sys.platform == "darwin":
        from coremltools.optimize.coreml.experimental._post_training_quantization import (
            _get_activation_calibration_stats,
        )

        return lambda mlmodel, samples: _get_activation_calibration_stats(mlmodel, samples)
    raise RuntimeError(
        "W8A8 calibration needs activation statistics: Core ML predict exists only on macOS; "
        "import edgetam_export.coreml_mil to use the MIL evaluator instead"
    )


def _program_op_names(mlmodel) -> tuple[set[str], set[str]]:
    """(op types, op and output names) of every operation in the ML Program's functions."""
    types, names = set(), set()
    for fn in mlmodel.get_spec().mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                types.add(op.type)
                names.update(o.name for o in op.outputs)
                if "name" in op.attributes:
                    names.add(op.attributes["name"].immediateValue.tensor.strings.values[0])
    return types, names


def _config(global_config, mlmodel, keep_float: tuple[str, ...]):
    """``OptimizationConfig`` with ``global_config`` everywhere except the ``keep_float`` op types / names."""
    import coremltools.optimize as cto

    op_types, names = _program_op_names(mlmodel)
    type_cfg, name_cfg = {}, {}
    for entry in keep_float:
        pattern = any(c in entry for c in "*?[")
        if entry in op_types or not pattern:
            type_cfg[entry] = None
        matched = fnmatch.filter(sorted(names), entry)
        if pattern and not matched:
            raise ValueError(
                f"keep_float pattern {entry!r} names no op or weight of this program: the recipe is out "
                "of date with the converted graph (fix the pattern in exporters/coreml_quant.py)"
            )
        for n in matched:
            name_cfg[n] = None
    return cto.coreml.OptimizationConfig(
        global_config=global_config, op_type_configs=type_cfg or None, op_name_configs=name_cfg or None
    )


def _int8_weights_config():
    import coremltools.optimize as cto

    return cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD
    )


def check_scheme(scheme: str) -> None:
    """ValueError naming the valid schemes unless ``scheme`` is one of them (or a float precision)."""
    if scheme not in SCHEMES and scheme not in FLOAT_SCHEMES:
        raise ValueError(
            f"unknown Core ML quantization scheme {scheme!r}; choose one of {SCHEMES + FLOAT_SCHEMES}"
        )


def _activation_stats_w8a8(mlmodel, samples: list[dict]) -> dict:
    if not samples:
        raise ValueError("the w8a8 scheme needs calibration samples (inputs of this graph); got none")
    return activation_observer()(mlmodel, samples)


def _quantize_activations(mlmodel, config, stats: dict):
    """coremltools' ``linear_quantize_activations`` graph passes, fed with ``stats`` instead of ``predict``."""
    from coremltools import _SPECIFICATION_VERSION_IOS_17
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils

    passes = []
    for name in ("insert_prefix_quantize_dequantize_pair", "insert_suffix_quantize_dequantize_pair"):
        p = PASS_REGISTRY[f"compression::{name}"]
        p.set_options([PassOption("config", config)])
        p.set_options([PassOption("activation_stats", stats)])
        passes.append(p)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    return model_utils._apply_graph_pass(
        mlmodel,
        passes,
        spec_version=_SPECIFICATION_VERSION_IOS_17,
        pymil_load_func=milproto_load.load,
        skip_model_load=True,
    )


def compress_mlmodel(mlmodel, quant: GraphQuant, samples: list[dict] | None = None):
    """Apply ``quant.scheme`` to a float ML Program; return ``(compressed MLModel, notes)``.

    ``samples`` (``w8a8`` only): calibration inputs, ``[{input name: float32 array}]`` in the
    contract's shapes. ``notes`` holds ``quant_scheme``, ``keep_float`` and, for w8a8, the number
    of calibration samples and of tensors with statistics.
    """
    import coremltools.optimize as cto

    check_scheme(quant.scheme)
    notes: dict = {"quant_scheme": quant.scheme, "keep_float": list(quant.keep_float)}
    if quant.scheme in FLOAT_SCHEMES:
        return mlmodel, notes
    log = io.StringIO()
    # coremltools reports progress on stderr (tqdm) and warns per skipped weight.
    with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        if quant.scheme == "w8a8":
            stats = _activation_stats_w8a8(mlmodel, list(samples or []))
            act_cfg = _config(
                cto.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"),
                mlmodel,
                quant.keep_float,
            )
            mlmodel = _quantize_activations(mlmodel, act_cfg, stats)
            notes.update(calibration_samples=len(samples or []), activation_tensors=len(stats))
        m = _PALETTE.match(quant.scheme)
        if m:
            nbits = int(m.group(1))
            cfg = cto.coreml.OpPalettizerConfig(
                mode="kmeans", nbits=nbits, granularity="per_tensor", weight_threshold=WEIGHT_THRESHOLD
            )
            mlmodel = cto.coreml.palettize_weights(mlmodel, _config(cfg, mlmodel, quant.keep_float))
        else:  # int8_weights, and the weight half of w8a8
            mlmodel = cto.coreml.linear_quantize_weights(
                mlmodel, _config(_int8_weights_config(), mlmodel, quant.keep_float)
            )
    return mlmodel, notes


# --------------------------------------------------------------------------- recipes (data)
def _recipe(name: str, precision: str, description: str, graphs: dict[str, GraphQuant]) -> Recipe:
    assert set(graphs) == set(GRAPHS), f"recipe {name!r} must name every graph"
    return Recipe(name=name, backend="coreml", precision=precision, graphs=graphs, description=description)


def _all(scheme: str, why: str) -> dict[str, GraphQuant]:
    return {g: GraphQuant(scheme, why=why) for g in GRAPHS}


# Prompt-decoder weights (const names from torch.export parameter paths) the mixed recipe keeps
# fp16: the same parts as exporters/onnx_quant.DECODER_FLOAT_PARTS (prompt encoder, attention
# projections, the mask-producing upscaling and hypernetwork MLPs), where the reasons are.
DECODER_FLOAT_WEIGHTS = (
    "p_prompt_encoder_*",
    "p_mask_decoder_transformer_*attn*",
    "p_mask_decoder_output_upscaling_*",
    "p_mask_decoder_output_hypernetworks_mlps_*",
)

RECIPES: dict[str, Recipe] = {
    "int8": _recipe(
        "int8",
        "int8",
        "weight-only int8 (per-channel, symmetric) on every graph; fp16 activations",
        _all("int8_weights", "int8 weights with one scale per output channel; compute stays fp16"),
    ),
    "mixed": _recipe(
        "mixed",
        "mixed",
        "int8 weights on the image encoder, memory encoder and memory attention; in the prompt "
        "decoder int8 weights only on the transformer MLPs and the IoU / object-score / pointer "
        "heads (prompt encoder, attentions and mask-producing layers fp16)",
        {
            "image_encoder": GraphQuant(
                "int8_weights",
                why="bulk of the compute; int8 weights measured cos >= 0.9998 per output vs fp32",
            ),
            "prompt_decoder": GraphQuant(
                "int8_weights",
                DECODER_FLOAT_WEIGHTS,
                why="largest int8 error of the four graphs (ptr_all rel max-abs 2.4e-2) and the tracker "
                "feels it (prompted-frame mask IoU vs fp32 0.949 with every decoder weight int8, 0.987 "
                "with the decoder fp16): int8 only where the ONNX decoder sensitivity pass allows it",
            ),
            "memory_encoder": GraphQuant(
                "int8_weights", why="small conv stack; int8 weights measured cos 0.99990 vs fp32"
            ),
            "memory_attention": GraphQuant(
                "int8_weights", why="int8 weights measured cos 0.99989 vs fp32; fp16 activations kept"
            ),
        },
    ),
    "palettize6": _recipe(
        "palettize6",
        "int8",
        "6-bit k-means palettization (one LUT per weight tensor) on every graph",
        _all("palettize6", "6-bit k-means LUT per tensor: ~2.6x smaller than fp16, ~10x the int8 error"),
    ),
    "palettize4": _recipe(
        "palettize4",
        "int8",
        "4-bit k-means palettization (one LUT per weight tensor) on every graph",
        _all("palettize4", "4-bit k-means LUT per tensor: 4x smaller than fp16, largest error"),
    ),
    "w8a8": _recipe(
        "w8a8",
        "int8",
        "int8 weights and int8 activations at conv/linear/add inputs (calibrated), iOS17+; memory "
        "attention keeps fp16 activations",
        {
            **_all(
                "w8a8",
                "int8 activations (per-tensor, calibrated) and int8 weights: the Neural Engine's int8 path",
            ),
            "memory_attention": GraphQuant(
                "int8_weights",
                why="W8A8 measured cos 0.982 / rel max-abs 0.30 vs fp32 (likely cause, not isolated per op: a "
                "per-tensor int8 scale next to the -1e4 key-padding bias); weights-only int8 instead",
            ),
        },
    ),
}
