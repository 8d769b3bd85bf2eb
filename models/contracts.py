"""Input/output contracts of the statically shaped export submodules.

A contract is the single description of a graph boundary: ordered tensor names, static
shapes and dtypes, and a one-line meaning per tensor. Exporters name graph inputs and
outputs from it, bundles serialise it into the manifest, and runtimes validate against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float16": torch.float16, "uint8": torch.uint8, "int32": torch.int32}


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor at a graph boundary."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    description: str = ""

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"), d.get("description", ""))

    def check(self, value) -> None:
        """Raise ``ValueError`` if ``value`` (tensor or array) does not have this spec's shape."""
        shape = tuple(value.shape)
        if shape != self.shape:
            raise ValueError(f"input {self.name!r}: expected shape {list(self.shape)}, got {list(shape)}")


@dataclass(frozen=True)
class Contract:
    """Ordered inputs and outputs of one export graph."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    description: str = ""
    options: dict = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "options": dict(self.options),
            "inputs": [s.as_dict() for s in self.inputs],
            "outputs": [s.as_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Contract:
        return cls(
            d["name"],
            tuple(TensorSpec.from_dict(s) for s in d["inputs"]),
            tuple(TensorSpec.from_dict(s) for s in d["outputs"]),
            d.get("description", ""),
            dict(d.get("options", {})),
        )

    def mismatches(
        self,
        kind: str,
        names: Sequence[str] | None,
        shapes: Sequence[Sequence | None],
        ordered: bool = True,
        source: str = "contract",
    ) -> list[str]:
        """How an artifact's ``kind`` ("input"/"output") tensors differ from this contract; [] if they match.

        The one comparison of artifact boundaries against contracts (exporters after export,
        runtimes at load). ``names``: the artifact's tensor names (None for positional formats
        such as ExecuTorch programs, then only count and shapes are compared); ``shapes``: one
        per tensor, None where the artifact does not declare it; ``ordered``: names must come
        in contract order (formats fed positionally); ``source`` names the contract's origin in
        messages (e.g. "manifest").
        """
        specs = self.inputs if kind == "input" else self.outputs
        want = [s.name for s in specs]
        if names is None:
            if len(shapes) != len(specs):
                return [f"{len(shapes)} {kind}s in the artifact, {len(specs)} in the {source} ({want})"]
            names = want
        names = list(names)
        if (names != want) if ordered else (sorted(names) != sorted(want)):
            missing = [n for n in want if n not in names]
            extra = [n for n in names if n not in want]
            detail = f"missing {missing}, unexpected {extra}" if missing or extra else "in another order"
            return [f"{kind} names {names} != {source} {want} ({detail})"]
        by_name = dict(zip(names, shapes, strict=True))
        problems = []
        for spec in specs:
            shape = by_name[spec.name]
            if shape is not None and tuple(int(d) if isinstance(d, int) else d for d in shape) != spec.shape:
                problems.append(
                    f"{kind} {spec.name!r} is {list(spec.shape)} in the {source} but {list(shape)} in the artifact"
                )
        return problems

    def check_inputs(self, feeds: dict) -> None:
        """Raise ``ValueError`` naming every missing, unexpected or mis-shaped input."""
        missing = [n for n in self.input_names if n not in feeds]
        unexpected = [n for n in feeds if n not in self.input_names]
        if missing or unexpected:
            raise ValueError(f"{self.name}: missing inputs {missing}, unexpected inputs {unexpected}")
        for spec in self.inputs:
            spec.check(feeds[spec.name])

    def example_inputs(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Random inputs of the right shapes and dtypes (N(0,1) floats); wrappers override for realism."""
        g = generator or torch.Generator().manual_seed(0)
        return tuple(torch.randn(s.shape, generator=g, dtype=DTYPES[s.dtype]) for s in self.inputs)


class ExportModule(nn.Module):
    """Base of the four export wrappers: ``forward(*inputs)`` in contract order -> tuple of outputs.

    Subclasses set ``self.contract`` and implement ``forward``; ``example_inputs`` returns a
    tuple of tensors matching the contract (realistic ranges where that matters, e.g. flags in
    {0, 1}).
    """

    contract: Contract

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.contract.example_inputs()

    def run(self, **feeds: torch.Tensor) -> dict[str, torch.Tensor]:
        """Validate named inputs against the contract, run, and return named outputs."""
        self.contract.check_inputs(feeds)
        with torch.no_grad():
            outs = self(*(feeds[n] for n in self.contract.input_names))
        return dict(zip(self.contract.output_names, outs, strict=True))
