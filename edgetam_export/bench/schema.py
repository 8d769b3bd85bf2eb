"""Load and validate bench result JSON against ``benchmarks/schema/result.v1.schema.json`` (jsonschema).

A result file holds one result object or a JSON array of them (one per setting, as the host
runner writes); every object is validated on its own.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "schema" / "result.v1.schema.json"


@lru_cache(maxsize=1)
def result_schema() -> dict:
    """The result schema v1 (from the source tree, else the copy installed as package data)."""
    path = SCHEMA_PATH if SCHEMA_PATH.is_file() else Path(__file__).with_name("result.v1.schema.json")
    return json.loads(path.read_text())


def validate_result(result: dict) -> None:
    """Raise ``jsonschema.ValidationError`` if ``result`` does not follow the schema."""
    import jsonschema

    jsonschema.validate(result, result_schema(), cls=jsonschema.Draft202012Validator)


def load_results(path: str | os.PathLike) -> list[dict]:
    """Every result object in ``path`` (object or array), each validated."""
    data = json.loads(Path(path).read_text())
    results = data if isinstance(data, list) else [data]
    for r in results:
        validate_result(r)
    return results
