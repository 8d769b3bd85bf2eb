"""Loads the extra scenarios from ``scenarios.json`` and resolves their procedural prompt positions.

A value ``{"procedural": name, "t": frame}`` anywhere in an op becomes ``inputs.PROCEDURAL_POSITIONS[name](frame)``
(a point [x, y] or a box [x0, y0, x1, y1] following a moving procedural object); everything else is
taken as written.
"""

from __future__ import annotations

import json
from pathlib import Path

from .inputs import PROCEDURAL_POSITIONS

SCENARIOS_JSON = Path(__file__).with_name("scenarios.json")


def _resolve(value):
    if isinstance(value, dict):
        if "procedural" in value:
            name, t = value["procedural"], value["t"]
            if name not in PROCEDURAL_POSITIONS:
                raise ValueError(f"{SCENARIOS_JSON.name}: unknown procedural position {name!r}")
            return PROCEDURAL_POSITIONS[name](t)
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def load_scenarios(path: Path = SCENARIOS_JSON) -> dict[str, dict]:
    """{name: {"salt", "num_frames", "description", "ops", ...}} with every position resolved."""
    return {name: _resolve(spec) for name, spec in json.loads(path.read_text())["scenarios"].items()}


SCENARIOS: dict[str, dict] = load_scenarios()
