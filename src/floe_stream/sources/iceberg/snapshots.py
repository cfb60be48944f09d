"""Pure: table metadata + what was already published → the catalog-commit events still to publish.

Rules (the watcher's idempotence rests on them):

* a snapshot is *new* when its order key ``(sequence_number, timestamp_ms)`` is greater than the last one
  published for the table (format-v1 tables have no sequence numbers: all 0, so the timestamp decides);
  older or equal snapshots are never published again, whatever the catalog returns (stale replicas,
  duplicates, a metadata file read out of order);
* the new snapshots are the ancestors of the current snapshot of ``main`` newer than the mark, oldest first,
  at most ``max_snapshots`` (the newest ones); other branches are ignored;
* the first time a table is seen only its current snapshot is published, unless ``backfill``; a table dropped
  and re-created under the same name (new table UUID) is seen for the first time again;
* a schema change without a new snapshot (``ALTER TABLE … ADD COLUMN``) is published as an event for the
  current snapshot (its timestamp too: an ALTER is no new data) with the new schema and a distinct id, when
  ``schema_changes`` is on;
* event ids are deterministic (``{table}:{snapshot_id}``, ``{table}:{snapshot_id}:schema-{schema_id}``),
  so a replay after a crash is recognisable downstream;
* a snapshot whose event breaks the wire model (``topics/bounds.py``: a NUL or an ESC in a name, a time
  beyond year 9999, a sequence number beyond 64 bits — what a table's writers put in its metadata) is a
  :class:`Refused`, dead-lettered by the watcher; it moves the mark like a published one, and never stops the
  other snapshots or tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from floe_stream.topics.commit import CatalogCommitEvent
from floe_stream.topics.decode import invalid

SCHEMA_TRIGGER = "floe.trigger"


class TableMark(BaseModel):
    """What the watcher last published (or saw) for a table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metadata_location: str | None = None
    snapshot_id: int | None = None
    sequence_number: int = -1
    timestamp_ms: int = -1
    schema_id: int | None = None
    table_uuid: str | None = Field(default=None, description="a dropped and re-created table starts over")

    @property
    def order(self) -> tuple[int, int]:
        return (self.sequence_number, self.timestamp_ms)


def _operation(snapshot: Any) -> str:
    summary = snapshot.summary
    op = getattr(getattr(summary, "operation", None), "value", None)
    return str(op) if op in ("append", "replace", "overwrite", "delete") else "append"


def _summary(snapshot: Any) -> dict[str, str]:
    summary = snapshot.summary
    if summary is None:
        return {}
    return {str(k): str(v) for k, v in dict(summary.additional_properties).items()}


def _schema(schema: Any) -> dict[str, Any]:
    return json.loads(schema.model_dump_json(by_alias=True))  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Refused:
    """A snapshot whose catalog-commit event breaks the wire model: never published, dead-lettered with
    ``reason``; ``value`` is the event as it would have been written (JSON)."""

    table: str
    event_id: str
    snapshot_id: int
    sequence_number: int
    timestamp_ms: int
    schema_id: int | None
    reason: str
    value: bytes


def _event(fields: dict[str, Any]) -> CatalogCommitEvent | Refused:
    try:
        return CatalogCommitEvent.model_validate(fields)
    except ValidationError as exc:
        return Refused(
            table=fields["table"],
            event_id=fields["event_id"],
            snapshot_id=fields["snapshot_id"],
            sequence_number=fields["sequence_number"],
            timestamp_ms=fields["timestamp_ms"],
            schema_id=fields["schema"].get("schema-id"),
            reason=invalid("CatalogCommitEvent", exc).reason,
            value=json.dumps(fields, default=str).encode(),  # json: integers beyond 64 bits too
        )


def new_events(
    table: str,
    metadata: Any,
    metadata_location: str | None,
    last: TableMark | None,
    *,
    catalog: str | None = None,
    backfill: bool = False,
    max_snapshots: int = 100,
    schema_changes: bool = True,
) -> tuple[list[CatalogCommitEvent | Refused], TableMark]:
    """Events to publish for ``table`` (pyiceberg ``TableMetadata``), oldest first, and the mark after them.

    When nothing is new the returned mark keeps the published position and only records the metadata location,
    so the next poll can skip the table while its metadata pointer does not move.
    """
    uuid = str(metadata.table_uuid)
    if last is not None and last.table_uuid is not None and last.table_uuid != uuid:
        last = None  # dropped and re-created under the same name: its sequence numbers start again
    current = metadata.current_snapshot()
    current_schema = metadata.schema()
    if current is None:  # a table without data yet: nothing to publish
        base = last or TableMark()
        return [], base.model_copy(update={"metadata_location": metadata_location, "table_uuid": uuid})
    last_order = last.order if last is not None else None

    chain: list[Any] = []
    snap = current
    seen: set[int] = set()
    while snap is not None and snap.snapshot_id not in seen:
        if last_order is not None and (snap.sequence_number, snap.timestamp_ms) <= last_order:
            break
        seen.add(snap.snapshot_id)
        chain.append(snap)
        if len(chain) >= max_snapshots or (last is None and not backfill):
            break
        parent = snap.parent_snapshot_id
        snap = metadata.snapshot_by_id(parent) if parent is not None else None
    chain.reverse()

    events: list[CatalogCommitEvent | Refused] = []
    for s in chain:
        schema = current_schema if s is current else (metadata.schema_by_id(s.schema_id) or current_schema)
        events.append(
            _event({
                "event_id": f"{table}:{s.snapshot_id}", "catalog": catalog, "table": table,
                "snapshot_id": s.snapshot_id, "sequence_number": s.sequence_number or 0,
                "timestamp_ms": s.timestamp_ms, "operation": _operation(s), "schema": _schema(schema),
                "summary": _summary(s),
            })
        )  # fmt: skip
    schema_id = current_schema.schema_id
    if (
        not events
        and schema_changes
        and last is not None
        and last.snapshot_id == current.snapshot_id
        and last.schema_id is not None
        and last.schema_id != schema_id
    ):
        events.append(
            _event({
                "event_id": f"{table}:{current.snapshot_id}:schema-{schema_id}", "catalog": catalog,
                "table": table, "snapshot_id": current.snapshot_id,
                "sequence_number": current.sequence_number or 0,
                "timestamp_ms": current.timestamp_ms,  # the data is as old as its snapshot: no false freshness
                "operation": _operation(current), "schema": _schema(current_schema),
                "summary": {**_summary(current), SCHEMA_TRIGGER: "schema-change"},
            })
        )  # fmt: skip
    if events:
        newest = chain[-1] if chain else current
        mark = TableMark(
            metadata_location=metadata_location,
            snapshot_id=newest.snapshot_id,
            sequence_number=newest.sequence_number or 0,
            timestamp_ms=newest.timestamp_ms,
            schema_id=schema_id,
            table_uuid=uuid,
        )
    else:
        base = last or TableMark()
        mark = base.model_copy(update={"metadata_location": metadata_location, "table_uuid": uuid})
    return events, mark
