"""Self-describing, checksummed export bundles: the manifest format, reading and verifying, atomic writing."""

from .manifest import (
    CONSTANTS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    Bundle,
    BundleError,
    bundle_digest,
    default_choice,
    load_bundle,
    read_manifest,
)
from .reference import build_reference, bundle_reference, bundle_state_dict, weights_info
from .write import export_bundle, write_bundle

__all__ = [
    "CONSTANTS",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "Bundle",
    "BundleError",
    "build_reference",
    "bundle_digest",
    "bundle_reference",
    "bundle_state_dict",
    "default_choice",
    "export_bundle",
    "load_bundle",
    "read_manifest",
    "weights_info",
    "write_bundle",
]
