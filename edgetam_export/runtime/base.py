"""The runtime interface: execute the four EdgeTAM graphs by their contracts.

The tracker talks only to this interface, so it never knows which backend runs. All
tensors cross the boundary as numpy arrays with the contract's names, shapes and dtypes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..backends import MissingBackendError  # noqa: F401  (re-exported: runtimes raise it)
from ..models.contracts import Contract


class Runtime(ABC):
    """Executes ``image_encoder``, ``prompt_decoder``, ``memory_encoder``, ``memory_attention``.

    Attributes:
        name: backend name as reported to users (e.g. ``"pytorch"``, ``"onnxruntime"``).
        contracts: ``{graph name: Contract}``.
        constants: host-side constants (``no_obj_ptr`` (256,), ``mask_downsample_weight``
            (1,1,4,4), ``mask_downsample_bias`` (1,)) as float32 arrays.
        options: export options (``max_points``, ``num_spatial_slots``, ``num_ptr_slots``, ...).
    """

    name: str
    contracts: dict[str, Contract]
    constants: dict[str, np.ndarray]
    options: dict

    @abstractmethod
    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Backend-specific execution; feeds are validated already."""

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``graph`` on named inputs and return named float32 outputs."""
        if graph not in self.contracts:
            raise KeyError(f"unknown graph {graph!r}; this runtime has {sorted(self.contracts)}")
        contract = self.contracts[graph]
        contract.check_inputs(feeds)
        feeds = {s.name: np.ascontiguousarray(feeds[s.name], dtype=np.float32) for s in contract.inputs}
        outs = self._run(graph, feeds)
        return {s.name: np.asarray(outs[s.name], dtype=np.float32) for s in contract.outputs}
