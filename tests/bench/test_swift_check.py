"""The Swift bench runner (ios_harness/) hard-codes no model names/shapes and writes only schema keys.

The Swift cannot be compiled here; these scans are what is checked instead (see
edgetam_export/bench/swift_check.py). Each check is shown to fail on a deliberately bad snippet.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgetam_export.bench.swift_check import (
    check_pack_keys,
    check_result_keys,
    check_swift_package,
    contract_names_and_shapes,
    find_hardcoded,
    strip_comments,
)

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "ios_harness"
LIB = PACKAGE / "Sources" / "EdgeTAMBench"
SCHEMA = json.loads((REPO / "benchmarks/schema/result.v1.schema.json").read_text())


@pytest.fixture(scope="module")
def manifest(exported_bundles) -> dict:
    """The manifest of the session's real Core ML bundle: the names the Swift must not contain."""
    return exported_bundles["coreml"].manifest


def test_real_swift_sources_pass(manifest):
    names, _ = contract_names_and_shapes(manifest)
    assert {"image_encoder", "vis", "pix", "obj_ptr"} & names  # the scan really has the model's names
    assert len(list(PACKAGE.rglob("*.swift"))) >= 5
    assert check_swift_package(PACKAGE, REPO, manifest) == []


def test_hardcoded_name_and_shape_fail(manifest, tmp_path):
    names, shapes = contract_names_and_shapes(manifest)
    bad = tmp_path / "Bad.swift"
    bad.write_text(
        "// a comment may say image_encoder and [1, 256, 64, 64]\n"
        'let graph = "image_encoder"\n'
        'let key = "steady/memory_attention/in/mem"\n'
        "let shape = [1, 256, 64, 64]\n"
        'let fine = "mainly imagery"\n'
    )
    problems = find_hardcoded([bad], names, shapes)
    assert len(problems) == 3, problems
    assert "Bad.swift:2" in problems[0] and "'image_encoder'" in problems[0]
    assert "Bad.swift:3" in problems[1]
    assert "Bad.swift:4" in problems[2] and "shape" in problems[2]


def test_comment_stripping_keeps_strings_and_lines():
    src = 'let a = "x // not a comment" // real comment\n/* block\n "inner" */ let b = 1\n'
    out = strip_comments(src)
    assert '"x // not a comment"' in out and "real comment" not in out and "inner" not in out
    assert out.count("\n") == src.count("\n") and len(out) == len(src)


def test_unknown_and_missing_result_keys_fail(tmp_path):
    result = (LIB / "Result.swift").read_text()
    assert check_result_keys(LIB / "Result.swift", SCHEMA) == []
    bad = tmp_path / "Result.swift"
    # an unknown key in the stats object, and the required p90_ms no longer written
    bad.write_text(result.replace('p90Ms = "p90_ms"', 'p90Ms = "p90_latency_ms"'))
    problems = check_result_keys(bad, SCHEMA)
    assert any("'p90_latency_ms'" in p and "#/$defs/stats" in p for p in problems), problems
    assert any("never writes 'p90_ms'" in p for p in problems), problems
    # a Codable struct that does not say where it sits in the schema
    bad.write_text(result.replace("/// JSON: #/$defs/frame\n", ""))
    assert any("FrameResult" in p and "no '/// JSON" in p for p in check_result_keys(bad, SCHEMA))
    # JSON built by hand escapes the scan, so it is refused
    bad.write_text(result + "\nlet extra: [String: Any] = [:]\n")
    assert any("JSONSerialization" in p or "[String: Any]" in p for p in check_result_keys(bad, SCHEMA))


def test_unknown_pack_key_fails(tmp_path):
    pack_md = REPO / "benchmarks/schema/pack.md"
    assert check_pack_keys(LIB / "Pack.swift", pack_md) == []
    bad = tmp_path / "Pack.swift"
    bad.write_text((LIB / "Pack.swift").read_text().replace('"graph_benchmarks"', '"graph_benches"'))
    problems = check_pack_keys(bad, pack_md)
    assert len(problems) == 1 and "'graph_benches'" in problems[0], problems


def test_package_check_sees_test_target(manifest, tmp_path):
    copy = tmp_path / "ios_harness"
    shutil.copytree(PACKAGE, copy)
    test_file = next((copy / "Tests").rglob("*.swift"))
    test_file.write_text(test_file.read_text() + '\nlet forced = "memory_encoder"\n')
    problems = check_swift_package(copy, REPO, manifest)
    assert len(problems) == 1 and "memory_encoder" in problems[0], problems
