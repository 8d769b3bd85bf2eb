"""How a bench result is named in reports and plots: its device, backend and precision."""

from __future__ import annotations


def label(r: dict) -> str:
    """``device / backend precision`` of one result (the baseline is ``pytorch``)."""
    s = r["setting"]
    what = "pytorch eager" if s["backend"] == "pytorch" else f"{s['backend']} {s['precision']}"
    return f"{r['device']['model']} / {what}"
