"""A Core ML ML Program evaluator for machines without Core ML: the saved program, op by op, in its own precision."""

from ..exporters.coreml_quant import set_activation_observer
from .calibration import activation_ranges
from .evaluator import EvalReport, MILEvaluator

# W8A8 calibration statistics come from this evaluator on every OS (Core ML predict is macOS-only).
set_activation_observer(activation_ranges)

__all__ = ["EvalReport", "MILEvaluator", "activation_ranges"]
