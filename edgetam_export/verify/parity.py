"""Parity checks: compare a tensor with its reference under the one tolerance table."""

from __future__ import annotations

from dataclasses import dataclass, field

from .metrics import Comparison, compare
from .tolerances import tolerance


class ParityError(AssertionError):
    """A tensor outside its tolerance."""


@dataclass
class ParityRecorder:
    """Collects comparisons (for reports) and raises on any violation."""

    rows: list[tuple[str, str, str, Comparison, bool]] = field(default_factory=list)

    def check(self, name: str, ref, test, backend: str, precision: str, kind: str) -> Comparison:
        """Compare ``test`` with ``ref``; record it; raise :class:`ParityError` outside tolerance."""
        c = compare(name, ref, test)
        problems = tolerance(backend, precision, kind).check(c)
        self.rows.append((backend, precision, kind, c, not problems))
        if problems:
            raise ParityError("; ".join(problems))
        return c
