"""The one metrics module: every parity number in this project is computed here.

All functions take array-likes (numpy or torch) and compare in float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def _f64(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def _same_shape(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _f64(a), _f64(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return a, b


def max_abs(a, b) -> float:
    """Largest absolute elementwise difference."""
    a, b = _same_shape(a, b)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def mean_abs(a, b) -> float:
    """Mean absolute elementwise difference."""
    a, b = _same_shape(a, b)
    return float(np.mean(np.abs(a - b))) if a.size else 0.0


def cosine(a, b) -> float:
    """Cosine similarity of the flattened tensors (1.0 for two all-zero tensors)."""
    a, b = _same_shape(a, b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a.ravel(), b.ravel()) / (na * nb))


def psnr(ref, test) -> float:
    """PSNR in dB with the reference's peak |value| as signal peak (inf when identical)."""
    ref, test = _same_shape(ref, test)
    mse = float(np.mean((ref - test) ** 2)) if ref.size else 0.0
    if mse == 0.0:
        return math.inf
    peak = float(np.max(np.abs(ref))) or 1.0
    return 10.0 * math.log10(peak * peak / mse)


def mask_iou(a_logits, b_logits, threshold: float = 0.0) -> float:
    """IoU of the binary masks ``logits > threshold`` (1.0 when both are empty)."""
    a, b = _same_shape(a_logits, b_logits)
    ma, mb = a > threshold, b > threshold
    union = np.logical_or(ma, mb).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(ma, mb).sum() / union)


def scale(x) -> float:
    """The tensor's scale for relative tolerances: max |x| (1.0 for an all-zero tensor)."""
    x = _f64(x)
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return m if m > 0 else 1.0


@dataclass(frozen=True)
class Comparison:
    """All parity metrics of one tensor against its reference."""

    name: str
    max_abs: float
    mean_abs: float
    cosine: float
    psnr: float
    ref_scale: float

    @property
    def rel_max_abs(self) -> float:
        return self.max_abs / self.ref_scale

    def as_dict(self) -> dict:
        return {**asdict(self), "rel_max_abs": self.rel_max_abs}


def compare(name: str, ref, test) -> Comparison:
    """Compute every metric of ``test`` against ``ref``."""
    return Comparison(
        name, max_abs(ref, test), mean_abs(ref, test), cosine(ref, test), psnr(ref, test), scale(ref)
    )
