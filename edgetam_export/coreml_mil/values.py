"""Values flowing between MIL ops in the evaluator: an op's named inputs and the exact fp32 upcast used to compute on them."""

from __future__ import annotations

import numpy as np
import torch


class OpInputs(dict):
    """``{input name: value}`` of one op: numpy arrays, numpy/python scalars, strings, or tuples.

    Constant inputs carry their stored dtype (fp16 weights stay fp16 here); :meth:`t` gives
    every floating input as an fp32 torch tensor (exact upcast) for computation.
    """

    def t(self, name: str) -> torch.Tensor | None:
        """Input ``name`` as a float32 torch tensor (None when the optional input is absent)."""
        v = self.get(name)
        return None if v is None else to_f32(v)

    def val(self, name: str, default=None):
        """Raw value of input ``name`` (``default`` when absent)."""
        v = self.get(name)
        return default if v is None else v

    def ints(self, name: str, default=None) -> list[int] | None:
        """Integer list of a const input (e.g. ``strides``), ``default`` when absent."""
        v = self.get(name)
        if v is None:
            return default
        return [int(i) for i in np.atleast_1d(np.asarray(v))]

    def scalar(self, name: str, default=None):
        """Python scalar of a const scalar input (``default`` when absent)."""
        v = self.get(name)
        if v is None:
            return default
        v = np.asarray(v)
        return v.item() if v.ndim == 0 else v.reshape(-1)[0].item()


def to_f32(v) -> torch.Tensor:
    """Any numeric value -> float32 torch tensor (zero-copy for contiguous fp32 numpy arrays)."""
    if isinstance(v, torch.Tensor):
        return v.float()
    a = np.asarray(v)
    if a.dtype != np.float32:
        a = a.astype(np.float32)
    if any(s < 0 for s in a.strides):
        a = np.ascontiguousarray(a)
    return torch.from_numpy(a)
