"""The JSON Schemas published in topics/ are exactly what the wire models generate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from floe_stream.topics import CheckResult, MaterializationEvent, ViolationCloudEvent
from floe_stream.topics.schemas import topic_schemas

TOPICS_DIR = Path(__file__).resolve().parents[2] / "topics"


def test_committed_schemas_match_the_models() -> None:
    generated = topic_schemas()
    on_disk = {p.name: json.loads(p.read_text()) for p in TOPICS_DIR.glob("*.schema.json")}
    assert set(on_disk) == set(generated), "run `make schemas` and commit topics/"
    for name, schema in generated.items():
        assert on_disk[name] == json.loads(json.dumps(schema)), f"{name} is stale: run `make schemas`"


def test_a_published_event_validates_against_its_schema() -> None:
    schema = json.loads((TOPICS_DIR / "materializations.MaterializationEvent.schema.json").read_text())
    ev = MaterializationEvent(asset="a", materialized_at="2026-01-01T00:00:00Z", row_count=3)  # type: ignore[arg-type]
    jsonschema.validate(json.loads(ev.model_dump_json()), schema)
    bad = {"asset": "a", "materialized_at": "2026-01-01T00:00:00Z", "row_count": -1}
    with pytest.raises(jsonschema.ValidationError, match="minimum"):
        jsonschema.validate(bad, schema)
    assert (TOPICS_DIR / f"check-results.{CheckResult.__name__}.schema.json").exists()
    assert (TOPICS_DIR / f"violations.{ViolationCloudEvent.__name__}.schema.json").exists()
