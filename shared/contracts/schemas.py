"""Export one JSON Schema per event so point-of-sale teams can validate before publishing.

python -m shared.contracts.schemas docs/schemas
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from shared.contracts.registry import EVENT_MODELS


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (draft 2020-12) for every registered event."""
    schemas = {}
    for (event_type, version), model in sorted(EVENT_MODELS.items()):
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{event_type}.v{version}.json"
        schema["title"] = f"{event_type} v{version}"
        schemas[f"{event_type}.v{version}.json"] = schema
    return schemas


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in event_schemas().items():
        path = folder / name
        path.write_bytes(
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")
    for path in write_schemas(target):
        print(path)
