"""The bench package's one import site for the rest of edgetam-export (re-pointed when modules move)."""

from __future__ import annotations

from ..backends import MissingBackendError
from ..bundle import Bundle, BundleError, load_bundle
from ..bundle.manifest import bundle_digest, tool_versions
from ..fileio import replace_path, temp_sibling, tree_sha256, write_json_atomic
from ..models.contracts import Contract
from ..procedural import procedural_frame
from ..runtime.base import Runtime
from ..runtime.loader import runtime_from_bundle
from ..runtime.recording import RecordingRuntime
from ..tracker import Tracker
from ..verify.bundle_check import OUTPUT_KINDS, reference_runtime
from ..verify.metrics import compare
from ..verify.tolerances import tolerance

__all__ = [
    "OUTPUT_KINDS",
    "Bundle",
    "BundleError",
    "Contract",
    "MissingBackendError",
    "RecordingRuntime",
    "Runtime",
    "Tracker",
    "bundle_digest",
    "compare",
    "load_bundle",
    "procedural_frame",
    "reference_runtime",
    "replace_path",
    "runtime_from_bundle",
    "temp_sibling",
    "tolerance",
    "tool_versions",
    "tree_sha256",
    "write_json_atomic",
]
