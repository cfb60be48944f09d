"""The published AsyncAPI document (topics/asyncapi.yaml): current, valid AsyncAPI 3.0, and true to the wire."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema
import yaml

from floe_stream.client import materialization_event
from floe_stream.topics.asyncapi import build_document, render
from floe_stream.topics.catalog import CATALOGUE
from floe_stream.topics.enums import CheckType, Severity
from floe_stream.topics.violation import ViolationData, decode_violation, encode_violation
from tests.conftest import REPO

DOC = REPO / "topics" / "asyncapi.yaml"
SPEC = REPO / "tests" / "fixtures" / "asyncapi" / "asyncapi-3.0.0.schema.json"


def test_committed_document_is_current() -> None:
    assert DOC.read_text() == render(), "topics/asyncapi.yaml is stale: run `floe topics asyncapi`"


def test_document_is_valid_asyncapi_3() -> None:
    doc = yaml.safe_load(DOC.read_text())
    jsonschema.Draft7Validator(json.loads(SPEC.read_text())).validate(doc)


def test_every_topic_is_a_channel_and_every_ref_resolves() -> None:
    doc = build_document()
    assert set(doc["channels"]) == {k.value for k in CATALOGUE}
    for key, spec in CATALOGUE.items():
        ch = doc["channels"][key.value]
        assert ch["address"] == "{prefix}" + key.value
        assert {m.__name__ for m in spec.payloads} <= set(ch["messages"])
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node: Any = doc
        for part in ref.split("/"):
            node = node[part.replace("~1", "/")]
        assert node is not None
    assert doc["operations"]["sendViolations"]["action"] == "send"
    assert doc["operations"]["receiveMaterializations"]["action"] == "receive"


def _validator(doc: dict[str, Any], message: str) -> jsonschema.Validator:
    payload = doc["components"]["messages"][message]["payload"]
    return jsonschema.Draft202012Validator({**payload, "components": doc["components"]})


def test_payload_schemas_accept_real_events_and_reject_bad_ones() -> None:
    doc = yaml.safe_load(DOC.read_text())
    ev = materialization_event(
        "sales.orders", row_count=3, run_id="r1", quality=[{"name": "nn", "passed": True}]
    )
    v = _validator(doc, "MaterializationEvent")
    v.validate(json.loads(ev.model_dump_json(exclude_none=True)))
    assert not v.is_valid({**json.loads(ev.model_dump_json()), "surprise": 1})

    now = datetime.now(UTC)
    data = ViolationData(
        violation_id="v1", correlation_key="a/freshness", contract_id="c", contract_name="c", contract_version="1",
        asset="a", violation_type=CheckType.FRESHNESS, severity=Severity.ERROR, message="late",
        detected_at=now, episode_started_at=now,
    )  # fmt: skip
    key, value, headers = encode_violation(data)
    envelope = json.loads(value)
    _validator(doc, "ViolationCloudEvent").validate(envelope)  # the bytes subscribers really receive
    assert decode_violation(dict(headers), key, value).data == data
