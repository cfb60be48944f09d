"""Generate the AsyncAPI 3.0 document of every floe topic (``topics/asyncapi.yaml``) from :data:`CATALOGUE`.

One channel per topic (address ``{prefix}<topic>``), one message per payload model with its JSON Schema under
``components/schemas`` (pydantic, refs rewritten to ``#/components/schemas/…``), the Kafka record key and the
headers floe reads or writes, and the operations seen from floe-stream: it *receives* inputs and *sends*
outputs. Other teams subscribe to the ``sendViolations`` operation's channel without reading our code.
A unit test fails when the committed file and this generator drift apart (`floe topics asyncapi`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from floe_stream.topics.catalog import CATALOGUE, TopicSpec

WIRE_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"

_HEADERS: dict[str, dict[str, str]] = {
    "materializations": {
        "floe-rerouted": "set by the processor when it forwards an event to its asset's partition"
    },
    "catalog-commits": {
        "floe-source": "'iceberg:<catalog>' on records published by `floe run source iceberg`",
        "floe-iceberg-mark": "the watcher's restart mark (JSON: metadata_location, snapshot_id, sequence_number …)",
        "floe-rerouted": "set by the processor when it forwards an event to its asset's partition",
    },
    "violations": {
        "content-type": "application/cloudevents+json (structured mode); binary mode is accepted too"
    },
    "dlq": {
        "floe-dlq-reason": "why the record could not be processed",
        "floe-dlq-topic": "topic the record came from",
        "floe-dlq-partition": "its partition",
        "floe-dlq-offset": "its offset (absent: a catalog commit the Iceberg watcher could not publish)",
        "floe-source": "'iceberg:<catalog>' on a catalog commit the Iceberg watcher could not publish",
    },
}
_RAW_CONTENT = {
    "contracts": ("application/yaml", "ODCS v3 contract YAML text; a tombstone (null value) retires it")
}


def _direction(spec: TopicSpec) -> list[str]:
    if spec.internal:
        return ["send", "receive"]
    if spec.description.startswith(("Output", "Dead")):
        return ["send"]
    return ["receive"]


def _camel(key: str) -> str:
    return "".join(p.capitalize() for p in key.replace("_", "-").split("-"))


def _headers(key: str) -> dict[str, Any] | None:
    h = _HEADERS.get(key)
    if not h:
        return None
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": desc} for name, desc in h.items()},
    }


def build_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = []
    for spec in CATALOGUE.values():
        for m in spec.payloads:
            if m not in models:
                models.append(m)
    refs, top = models_json_schema([(m, "validation") for m in models], by_alias=True, ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in CATALOGUE.values():
        key = spec.key.value
        channel_messages: dict[str, Any] = {}
        for m in spec.payloads:
            name = m.__name__
            msg: dict[str, Any] = {
                "name": name,
                "title": name,
                "summary": (m.__doc__ or name).strip().splitlines()[0],
                "contentType": "application/json",
                "payload": refs[(m, "validation")],
            }
            if (h := _headers(key)) is not None:
                msg["headers"] = h
            msg["bindings"] = {
                "kafka": {
                    "key": {"type": "string", "description": spec.record_key},
                    "bindingVersion": "0.5.0",
                }
            }
            messages[name] = msg
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        if not spec.payloads:
            content, what = _RAW_CONTENT.get(key, ("application/octet-stream", spec.description))
            name = f"{_camel(key)}Record"
            msg = {
                "name": name,
                "title": name,
                "summary": what,
                "contentType": content,
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": spec.record_key},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
            if (h := _headers(key)) is not None:
                msg["headers"] = h
            messages[name] = msg
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        channel: dict[str, Any] = {
            "address": "{prefix}" + key,
            "title": key,
            "description": spec.description,
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "messages": channel_messages,
        }
        topic_cfg: dict[str, Any] = {"cleanup.policy": ["compact" if spec.compacted else "delete"]}
        channel["bindings"] = {"kafka": {"topicConfiguration": topic_cfg, "bindingVersion": "0.5.0"}}
        if spec.internal:
            channel["tags"] = [{"name": "internal"}]
        channels[key] = channel
        for action in _direction(spec):
            operations[f"{action}{_camel(key)}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{key}"},
                "summary": f"floe-stream {'publishes to' if action == 'send' else 'consumes'} {key}",
                "messages": [{"$ref": f"#/channels/{key}/messages/{n}"} for n in channel_messages],
            }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "floe-stream topics",
            "version": WIRE_VERSION,
            "description": (
                "Every Kafka topic floe-stream reads or writes. Topic names are `{prefix}<topic>` (FLOE_KAFKA__TOPIC_PREFIX, "
                "default `floe.`). Inputs are published by orchestrators (floe_stream.client, `floe publish`), OpenLineage "
                "emitters and `floe run source iceberg`; outputs are check results and violation CloudEvents. "
                "Generated from floe_stream.topics.catalog by `floe topics asyncapi`; JSON Schemas of each payload sit "
                "next to this file."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "any Kafka-compatible broker (FLOE_KAFKA__BOOTSTRAP_SERVERS)",
                "variables": {"bootstrap": {"default": "127.0.0.1:9092"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {
                "prefix": {"default": "floe.", "description": "topic prefix (FLOE_KAFKA__TOPIC_PREFIX)"}
            },
            "messages": messages,
            "schemas": schemas,
        },
    }


def render() -> str:
    header = "# Generated by `floe topics asyncapi` from floe_stream.topics.catalog. Do not edit by hand.\n"
    return header + yaml.safe_dump(build_document(), sort_keys=False, width=120, allow_unicode=True)


def write_asyncapi(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render())
    return path
