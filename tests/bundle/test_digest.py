"""A bundle's digest is sha256 over manifest.json; an expected digest pins the bundle."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgetam_export.bundle import Bundle, BundleError, bundle_digest


def test_digest_is_sha256_of_manifest_bytes_and_pins_the_bundle(tmp_path: Path):
    (tmp_path / "manifest.json").write_bytes(b'{"files": {"a": "00"}}\n')
    want = "sha256:" + hashlib.sha256(b'{"files": {"a": "00"}}\n').hexdigest()
    assert bundle_digest(tmp_path) == bundle_digest(tmp_path / "manifest.json") == want
    b = Bundle(tmp_path, {}, {}, {}, {}, [])
    assert b.digest == want
    b.check_digest(want)
    b.check_digest(want.removeprefix("sha256:"))
    b.check_digest(None)
    # a consistent edit of an artifact and its sha256 changes the manifest, hence the digest
    (tmp_path / "manifest.json").write_bytes(b'{"files": {"a": "11"}}\n')
    with pytest.raises(BundleError, match="expected sha256:"):
        b.check_digest(want)


def test_expect_digest_needs_a_bundle(tmp_path):
    from typer.testing import CliRunner

    from edgetam_export.cli import app
    from edgetam_export.procedural import procedural_frame
    from edgetam_export.video import write_png

    write_png(tmp_path / "x.png", procedural_frame(0))
    r = CliRunner().invoke(
        app, ["segment", str(tmp_path / "x.png"), "--point", "1,1", "--expect-digest", "sha256:00"]
    )
    assert r.exit_code == 2 and "--bundle" in r.output
