"""A Core ML ML Program evaluator for machines without Core ML: the saved program, op by op, in its own precision."""

from .evaluator import EvalReport, MILEvaluator

__all__ = ["EvalReport", "MILEvaluator"]
