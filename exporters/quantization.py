"""Quantization recipes as data: how each backend quantizes each graph (no backend imports here).

A :class:`Recipe` serves one quantized precision (``int8`` or ``mixed``) on one backend and
holds one :class:`GraphQuant` per graph. Plugins declare their recipes in the class attribute
``recipes`` (built in their ``*_quant`` module);
:func:`~edgetam_export.exporters.recipes.resolve_recipe` picks one by name.
:class:`Calibration` carries the per-graph input tuples (contract order, float32, batch 1)
captured from a reference tracking run (:mod:`edgetam_export.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GraphQuant:
    """How one backend quantizes one graph."""

    scheme: str  # "fp32" | "fp16" | a backend scheme: "int8_static", "int8_dynamic", "int8_weights", ...
    keep_float: tuple[str, ...] = ()  # backend-specific: op types / node-name patterns kept float
    why: str = ""  # one sentence: why this graph gets this scheme

    @property
    def is_float(self) -> bool:
        return self.scheme in ("fp32", "fp16")


@dataclass(frozen=True)
class Recipe:
    """A named, per-graph quantization plan of one backend for one quantized precision."""

    name: str  # e.g. "int8", "mixed", "w8", "palettize4", "int8_dynamic"
    backend: str
    precision: str  # "int8" or "mixed": which --precision it serves
    graphs: dict[str, GraphQuant]  # every one of the four graph names
    description: str

    def as_dict(self) -> dict:
        """The manifest's view: name, description and ``{graph: scheme}``."""
        return {
            "recipe": self.name,
            "description": self.description,
            "graphs": {g: q.scheme for g, q in self.graphs.items()},
        }


@dataclass
class Calibration:
    """Calibration inputs per graph and where they came from.

    ``samples``: ``{graph: [tuple of torch.Tensor in contract order, float32, batch 1], ...}``;
    ``source``: one line recorded in the manifest (e.g. ``procedural frames 0..5, seed 0, 2
    objects (click + box)`` or ``video clip.mp4 (sha256 ..., frames 0..7)``).
    """

    samples: dict[str, list[tuple]] = field(default_factory=dict)
    source: str = ""

    def counts(self) -> dict[str, int]:
        return {g: len(v) for g, v in self.samples.items()}
