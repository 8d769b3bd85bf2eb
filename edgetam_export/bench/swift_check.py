"""Static checks of the Swift bench runner (``ios_harness/``), which cannot be compiled here.

Two checks, each a simple, documented scan of the Swift text (no Swift parser):

1. **Nothing about the model is hard-coded** (:func:`find_hardcoded`). Comments are stripped,
   then every string literal is searched for a graph or tensor name of the bundle (whole-word
   match, so ``"image_encoder.fp16"`` is caught but ``"main"`` in ``"mainly"`` is not), and every
   integer array literal (``[1, 256, 64, 64]``) is flagged if it equals a contract shape or has
   three or more elements (a Swift runner has no reason to spell a shape).
2. **Every JSON key the Swift writes exists in the result schema** (:func:`check_result_keys`).
   The result is encoded only through ``Codable`` structs in the result file; each such struct
   carries a ``/// JSON: <pointer>`` line naming its place in
   ``benchmarks/schema/result.v1.schema.json`` (e.g. ``#/$defs/stats``). For every
   ``enum CodingKeys`` the raw values (``case minMs = "min_ms"``; a bare ``case n`` means
   ``"n"``) must be properties of that schema object, and every ``required`` property must be
   among them. Keys decoded from the pack (``Pack.swift``) are checked against the keys that
   ``benchmarks/schema/pack.md`` spells (:func:`check_pack_keys`). The result file must not
   build JSON by hand (``JSONSerialization``/``[String: Any]``), which the scan could not see.

Each function returns a list of problems (empty = pass), each naming file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "check_pack_keys",
    "check_result_keys",
    "check_swift_package",
    "contract_names_and_shapes",
    "find_hardcoded",
    "strip_comments",
]

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_INT_ARRAY = re.compile(r"\[\s*(-?\d+(?:\s*,\s*-?\d+)+)\s*,?\s*\]")
_CODING_KEYS = re.compile(r"enum\s+CodingKeys\s*:\s*String\s*,\s*CodingKey\s*\{(?P<body>[^}]*)\}", re.S)
_STRUCT = re.compile(r"(?:struct|class|enum)\s+(?P<name>\w+)\b[^{]*\{")
_JSON_POINTER = re.compile(r"///\s*JSON:\s*(?P<ptr>#\S*)")


def strip_comments(source: str) -> str:
    """Blank out ``//`` and ``/* */`` comments outside string literals with spaces, keeping every
    other character (and so every position and line number) where it was."""
    out, i, n = [], 0, len(source)
    while i < n:
        if source.startswith("//", i) or source.startswith("/*", i):
            if source.startswith("//", i):
                j = source.find("\n", i)
                j = n if j < 0 else j
            else:
                j = source.find("*/", i + 2)
                j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif source[i] == '"':
            m = _STRING.match(source, i)
            j = m.end() if m else i + 1
            out.append(source[i:j])
            i = j
        else:
            out.append(source[i])
            i += 1
    return "".join(out)


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def contract_names_and_shapes(manifest: dict) -> tuple[set[str], set[tuple[int, ...]]]:
    """Graph names, tensor names and tensor shapes of a bundle manifest's contracts."""
    names, shapes = set(), set()
    for graph, contract in manifest["graphs"].items():
        names.add(graph)
        for spec in [*contract["inputs"], *contract["outputs"]]:
            names.add(spec["name"])
            shapes.add(tuple(int(d) for d in spec["shape"]))
    return names, shapes


def find_hardcoded(
    files: Iterable[Path], names: Iterable[str], shapes: Iterable[tuple[int, ...]]
) -> list[str]:
    """Problems: string literals containing a model name, integer arrays that look like shapes."""
    words = sorted(set(names), key=len, reverse=True)
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, words)) + r")(?![A-Za-z0-9_])")
    shapes = set(shapes)
    problems = []
    for path in files:
        text = strip_comments(Path(path).read_text())
        for m in _STRING.finditer(text):
            hit = pattern.search(m.group(0)[1:-1]) if words else None
            if hit:
                problems.append(
                    f"{path}:{_line(text, m.start())}: string literal {m.group(0)} hard-codes the model "
                    f"name {hit.group(1)!r}; read it from the pack instead"
                )
        for m in _INT_ARRAY.finditer(text):
            dims = tuple(int(x) for x in re.split(r"\s*,\s*", m.group(1).strip()))
            if dims in shapes or len(dims) >= 3:
                problems.append(
                    f"{path}:{_line(text, m.start())}: integer array {m.group(0)} looks like a hard-coded "
                    "shape; read shapes from the pack's index.json"
                )
    return problems


def _resolve(schema: dict, pointer: str) -> dict | None:
    node = schema
    for part in pointer.lstrip("#").strip("/").split("/") if pointer.strip("#/") else []:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _coding_keys(body: str) -> list[str]:
    keys = []
    for case in re.findall(r"\bcase\b([^\n]*)", body):
        for item in case.split(","):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r'(\w+)\s*=\s*"([^"]*)"', item)
            keys.append(m.group(2) if m else item)
    return keys


def _codable_blocks(raw: str):
    """Yield ``(struct name, pointer or None, keys, line)`` for each CodingKeys enum in ``raw``.

    Declarations are found in the comment-stripped text; the ``/// JSON:`` pointer is read from
    the raw text just above the owning declaration (positions agree, see strip_comments)."""
    text = strip_comments(raw)
    for m in _CODING_KEYS.finditer(text):
        owner = None
        for s in _STRUCT.finditer(text, 0, m.start()):
            if s.group("name") != "CodingKeys":
                owner = s
        name = owner.group("name") if owner else "?"
        pointer = None
        if owner:
            before = raw[: owner.start()].rstrip().splitlines()[-3:]
            for line in before:
                p = _JSON_POINTER.search(line)
                if p:
                    pointer = p.group("ptr")
        yield name, pointer, _coding_keys(m.group("body")), _line(text, m.start())


def check_result_keys(result_swift: Path, schema: dict) -> list[str]:
    """Problems with the JSON keys written by the result file (see the module docstring)."""
    raw = Path(result_swift).read_text()
    text = strip_comments(raw)
    problems = []
    for bad in ("JSONSerialization", "[String: Any]"):
        if bad in text:
            problems.append(f"{result_swift}: builds JSON with {bad}; encode the result only through Codable")
    blocks = list(_codable_blocks(raw))
    if not blocks:
        problems.append(f"{result_swift}: no CodingKeys found; the result must be encoded through Codable")
    for name, pointer, keys, line in blocks:
        where = f"{result_swift}:{line}: {name}"
        if pointer is None:
            problems.append(f"{where} has CodingKeys but no '/// JSON: #/…' line naming its schema object")
            continue
        node = _resolve(schema, pointer)
        if node is None or "properties" not in node:
            problems.append(f"{where}: schema pointer {pointer} does not name an object with properties")
            continue
        allowed = set(node["properties"])
        for key in keys:
            if key not in allowed:
                problems.append(f"{where} writes JSON key {key!r}, which {pointer} does not define")
        for key in node.get("required", []):
            if key not in keys:
                problems.append(f"{where} never writes {key!r}, which {pointer} requires")
    return problems


def pack_md_keys(pack_md: Path) -> set[str]:
    """Every JSON object key spelled in pack.md's examples (``"key":``)."""
    return set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:', Path(pack_md).read_text()))


def check_pack_keys(pack_swift: Path, pack_md: Path) -> list[str]:
    """Problems: CodingKeys in the pack reader that pack.md does not spell."""
    known = pack_md_keys(pack_md)
    problems = []
    for name, _ptr, keys, line in _codable_blocks(Path(pack_swift).read_text()):
        for key in keys:
            if key not in known:
                problems.append(
                    f"{pack_swift}:{line}: {name} reads key {key!r}, which pack.md does not define"
                )
    return problems


def check_swift_package(package_dir: Path, repo_root: Path, manifest: dict) -> list[str]:
    """All checks on ``ios_harness/``: hard-coded names/shapes in every .swift file (sources and
    tests), result keys in ``Result.swift`` vs the result schema, pack keys in ``Pack.swift``."""
    package_dir, repo_root = Path(package_dir), Path(repo_root)
    files = sorted(package_dir.rglob("*.swift"))
    files = [f for f in files if ".build" not in f.parts]
    names, shapes = contract_names_and_shapes(manifest)
    schema = json.loads((repo_root / "benchmarks/schema/result.v1.schema.json").read_text())
    lib = package_dir / "Sources" / "EdgeTAMBench"
    return [
        *find_hardcoded(files, names, shapes),
        *check_result_keys(lib / "Result.swift", schema),
        *check_pack_keys(lib / "Pack.swift", repo_root / "benchmarks/schema/pack.md"),
    ]
