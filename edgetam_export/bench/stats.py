"""Latency statistics of one series of timings: min / p50 / p90 / max / mean / trimmed mean (ms)."""

from __future__ import annotations

import numpy as np


def trimmed_mean(samples_ms: list[float], fraction: float = 0.1) -> float:
    """Mean after dropping the lowest and highest ``fraction`` (at least one each when n >= 3)."""
    x = np.sort(np.asarray(samples_ms, dtype=np.float64))
    n = x.size
    k = max(1, int(n * fraction)) if n >= 3 else 0
    return float(x[k : n - k].mean())


def summarize(samples_ms: list[float], keep_samples: bool = True) -> dict:
    """The result schema's ``stats`` object for ``samples_ms`` (n >= 1)."""
    if not samples_ms:
        raise ValueError("no samples")
    x = np.asarray(samples_ms, dtype=np.float64)
    out = {
        "n": int(x.size),
        "min_ms": float(x.min()),
        "p50_ms": float(np.percentile(x, 50)),
        "p90_ms": float(np.percentile(x, 90)),
        "max_ms": float(x.max()),
        "mean_ms": float(x.mean()),
        "trimmed_mean_ms": trimmed_mean(samples_ms),
    }
    if keep_samples:
        out["samples_ms"] = [float(v) for v in x]
    return out
