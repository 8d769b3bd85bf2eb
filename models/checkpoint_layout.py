"""The official EdgeTAM checkpoint layout: 982 state_dict keys with shapes and dtypes.

The table ships as package data (``checkpoint_layout.tsv``) in the official key order
(``SAM2Base`` registration order), so synthetic weights and checkpoint validation do not
depend on how our reference modules happen to be registered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import torch

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


@dataclass(frozen=True)
class KeySpec:
    """One checkpoint entry: key name, shape and dtype."""

    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype


@cache
def checkpoint_layout() -> tuple[KeySpec, ...]:
    """Return the 982 official keys, in file order."""
    text = resources.files(__package__).joinpath("checkpoint_layout.tsv").read_text()
    rows = text.strip().splitlines()[1:]
    specs = []
    for row in rows:
        key, shape, dtype = row.split("\t")[:3]
        specs.append(KeySpec(key, tuple(json.loads(shape)), _DTYPES[dtype]))
    return tuple(specs)
