"""Quantization recipes as data: how each backend quantizes each graph (no backend imports here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphQuant:
    """How one backend quantizes one graph."""

    scheme: str  # "fp32" | "fp16" | a backend scheme, e.g. "int8_static", "int8_dynamic",
    # "int8_weights" (weight-only), "palettize6", "palettize4", "w8a8"
    keep_float: tuple[str, ...] = ()  # backend-specific: op types / node-name patterns kept float
    why: str = ""  # one sentence: why this graph gets this scheme


@dataclass(frozen=True)
class Recipe:
    """A named set of per-graph :class:`GraphQuant` for one backend, serving one ``--precision``."""

    name: str  # e.g. "int8", "mixed", "w8", "palettize4", "int8_dynamic"
    backend: str
    precision: str  # "int8" or "mixed": which --precision it serves
    graphs: dict[str, GraphQuant]  # every one of the four graph names
    description: str


def recipes_for(backend: str) -> dict[str, Recipe]:
    """The recipes the ``backend`` plugin declares (its class attribute ``recipes``)."""
    from .base import exporter_class

    return dict(getattr(exporter_class(backend), "recipes", {}) or {})


def resolve_recipe(backend: str, precision: str, name: str | None) -> Recipe:
    """The recipe ``name`` of ``backend`` (None: the recipe named like ``precision``).

    Raises ``ValueError`` listing the backend's recipe names when ``name`` is unknown.
    """
    recipes = recipes_for(backend)
    key = precision if name is None else name
    if key not in recipes:
        raise ValueError(
            f"unknown {backend} recipe {key!r}; available: {', '.join(sorted(recipes)) or 'none'}"
        )
    return recipes[key]
