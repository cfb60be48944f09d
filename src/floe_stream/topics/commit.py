"""Input: an Iceberg catalog commit (a new snapshot of a table). Key the Kafka record by ``table``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from floe_stream.topics.base import ForeignModel, WireModel
from floe_stream.topics.bounds import Identifier, NonEmptyIdentifier, Text
from floe_stream.topics.materialization import MAX_INT64

MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a datetime holds


class IcebergField(ForeignModel):
    id: int
    name: Identifier
    required: bool = False
    type: Text | dict[str, Any] = Field(
        description="primitive name ('long', 'decimal(10,2)') or nested type JSON"
    )
    doc: Text | None = None


class IcebergSchema(ForeignModel):
    """Iceberg table schema JSON as in table metadata (``type: struct``)."""

    type: Literal["struct"] = "struct"
    schema_id: int = Field(default=0, alias="schema-id")
    fields: list[IcebergField]
    identifier_field_ids: list[int] = Field(default_factory=list, alias="identifier-field-ids")


class CatalogCommitEvent(WireModel):
    kind: Literal["floe.catalog_commit"] = "floe.catalog_commit"
    event_id: Identifier | None = None
    catalog: Identifier | None = Field(default=None, description="catalog name, e.g. 'polaris', 'sql'")
    table: NonEmptyIdentifier = Field(description="table identifier 'namespace.table' (= asset id or alias)")
    snapshot_id: int = Field(ge=-MAX_INT64 - 1, le=MAX_INT64)
    sequence_number: int = Field(ge=0, le=MAX_INT64)
    timestamp_ms: int = Field(
        ge=0, le=MAX_TIMESTAMP_MS, description="snapshot commit time, epoch milliseconds"
    )
    operation: Literal["append", "replace", "overwrite", "delete"]
    table_schema: IcebergSchema = Field(alias="schema")
    summary: dict[Identifier, Text] = Field(default_factory=dict)
