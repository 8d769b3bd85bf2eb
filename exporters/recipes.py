"""Which quantization recipe a backend plugin offers: its declared recipes, and one picked by name or precision."""

from __future__ import annotations

from ..backends import QUANTIZED_PRECISIONS
from .base import exporter_class
from .quantization import Recipe


def recipes_for(backend: str) -> dict[str, Recipe]:
    """The recipes the ``backend`` plugin declares (``{name: Recipe}``; empty for float-only plugins)."""
    return dict(getattr(exporter_class(backend), "recipes", {}) or {})


def resolve_recipe(backend: str, precision: str, name: str | None) -> Recipe:
    """The recipe ``name`` of ``backend`` for ``precision`` (``name`` None: the recipe named like the precision).

    Raises ``ValueError`` (one line listing the backend's recipes) for an unknown name, a
    float precision, or a recipe that serves the other quantized precision.
    """
    if precision not in QUANTIZED_PRECISIONS:
        raise ValueError(
            f"recipes apply to --precision {' or '.join(QUANTIZED_PRECISIONS)}, not {precision!r}"
        )
    recipes = recipes_for(backend)
    if not recipes:
        raise ValueError(f"the {backend} exporter has no quantization recipes (it exports fp32/fp16 only)")
    key = precision if name is None else name
    if key not in recipes:
        listing = ", ".join(f"{r.name} ({r.precision})" for r in recipes.values())
        raise ValueError(f"unknown {backend} recipe {key!r}; choose one of: {listing}")
    recipe = recipes[key]
    if recipe.precision != precision:
        raise ValueError(
            f"{backend} recipe {key!r} serves --precision {recipe.precision}, not {precision}; "
            f"pass --precision {recipe.precision}"
        )
    return recipe
