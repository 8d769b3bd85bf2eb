"""The bench package's one import site for the rest of edgetam-export (re-pointed when modules move)."""

from __future__ import annotations

from ..exporters.bundle import Bundle, BundleError, load_bundle, sha256_file, tool_versions
from ..exporters.verify import OUTPUT_KINDS, reference_runtime
from ..metrics import compare
from ..models.contracts import Contract
from ..runtime.base import MissingBackendError, Runtime
from ..runtime.loader import runtime_from_bundle
from ..testing import procedural_frame
from ..tolerances import tolerance
from ..tracker import Tracker

__all__ = [
    "OUTPUT_KINDS",
    "Bundle",
    "BundleError",
    "Contract",
    "MissingBackendError",
    "Runtime",
    "Tracker",
    "compare",
    "load_bundle",
    "procedural_frame",
    "reference_runtime",
    "runtime_from_bundle",
    "sha256_file",
    "tolerance",
    "tool_versions",
]
