"""Generate the JSON Schema of every topic's payload into the repository's top-level ``topics/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from floe_stream.topics.catalog import CATALOGUE


def topic_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, one per payload model of every topic."""
    out: dict[str, dict[str, Any]] = {}
    for spec in CATALOGUE.values():
        for model in spec.payloads:
            schema = model.model_json_schema(by_alias=True)
            schema["$comment"] = (
                f"topic '{{prefix}}{spec.key.value}', key: {spec.record_key}. {spec.description}"
            )
            out[f"{spec.key.value}.{model.__name__}.schema.json"] = schema
    return out


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(topic_schemas().items()):
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
