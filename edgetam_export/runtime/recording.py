"""A proxy runtime that runs another runtime and records every call (bench packs and calibration capture use it)."""

from __future__ import annotations

import numpy as np

from .base import Runtime


class RecordingRuntime(Runtime):
    """Proxy that runs another runtime and records every call since the last :meth:`clear`.

    ``log`` is a list of ``(graph, feeds, outputs)``: copies of the float32 arrays by contract
    name (feeds as the inner runtime received them, e.g. ``image`` (1,3,1024,1024)).
    """

    def __init__(self, inner: Runtime):
        self.inner = inner
        self.name = inner.name
        self.contracts = inner.contracts
        self.constants = inner.constants
        self.options = inner.options
        self.log: list[tuple[str, dict, dict]] = []

    def clear(self) -> None:
        self.log = []

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.inner.run(graph, feeds)
        self.log.append(
            (graph, {k: v.copy() for k, v in feeds.items()}, {k: v.copy() for k, v in outs.items()})
        )
        return outs
