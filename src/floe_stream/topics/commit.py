"""Input: an Iceberg catalog commit (a new snapshot of a table). Key the Kafka record by ``table``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from floe_stream.topics.base import ForeignModel, WireModel


class IcebergField(ForeignModel):
    id: int
    name: str
    required: bool = False
    type: str | dict[str, Any] = Field(
        description="primitive name ('long', 'decimal(10,2)') or nested type JSON"
    )
    doc: str | None = None


class IcebergSchema(ForeignModel):
    """Iceberg table schema JSON as in table metadata (``type: struct``)."""

    type: Literal["struct"] = "struct"
    schema_id: int = Field(default=0, alias="schema-id")
    fields: list[IcebergField]
    identifier_field_ids: list[int] = Field(default_factory=list, alias="identifier-field-ids")


class CatalogCommitEvent(WireModel):
    kind: Literal["floe.catalog_commit"] = "floe.catalog_commit"
    event_id: str | None = None
    catalog: str | None = Field(default=None, description="catalog name, e.g. 'polaris', 'sql'")
    table: str = Field(min_length=1, description="table identifier 'namespace.table' (= asset id or alias)")
    snapshot_id: int
    sequence_number: int = Field(ge=0)
    timestamp_ms: int = Field(ge=0, description="snapshot commit time, epoch milliseconds")
    operation: Literal["append", "replace", "overwrite", "delete"]
    table_schema: IcebergSchema = Field(alias="schema")
    summary: dict[str, str] = Field(default_factory=dict)
