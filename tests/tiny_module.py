"""A one-Linear export module for tests that need a real artifact in about a second."""

from __future__ import annotations

import torch
from edgetam_export.models.contracts import Contract, ExportModule, TensorSpec


class Tiny(ExportModule):
    """x (1, 4) -> y (1, 3): one Linear (seeded weights)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 3)
        self.contract = Contract(
            "tiny",
            (TensorSpec("x", (1, 4), description="in"),),
            (TensorSpec("y", (1, 3), description="out"),),
        )

    def forward(self, x):
        return (self.fc(x),)
