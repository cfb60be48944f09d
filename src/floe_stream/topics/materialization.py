"""Input: an asset was materialized (orchestrator post-materialize hook, or an OpenLineage COMPLETE event)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field

from floe_stream.topics.base import ForeignModel, WireModel
from floe_stream.topics.bounds import (
    Identifier,
    NonEmptyIdentifier,
    NonEmptyText,
    Text,
)

MAX_INT64 = 2**63 - 1


class ObservedColumn(WireModel):
    """A column as it actually exists (reported by a producer or read from a catalog)."""

    name: NonEmptyIdentifier
    type: NonEmptyText = Field(description="physical or logical type name, e.g. 'long', 'VARCHAR(10)'")
    nullable: bool | None = None
    primary_key: bool | None = Field(default=None, description="part of the table's key (None: not reported)")
    unique: bool | None = Field(default=None, description="unique constraint (None: not reported)")
    fields: list[ObservedColumn] | None = Field(
        default=None,
        description="nested type: struct fields; a list's 'element'; a map's 'key' and 'value'",
    )


class QualityResult(WireModel):
    """One data-quality expectation evaluated by the producer (dbt test, GX, Soda, custom)."""

    name: NonEmptyIdentifier
    column: Identifier | None = None
    metric: Identifier | None = Field(
        default=None, description="ODCS library metric, e.g. nullValues, rowCount"
    )
    passed: bool | None = Field(
        default=None, description="producer verdict; recomputed when a contract rule matches"
    )
    observed_value: float | None = Field(default=None, allow_inf_nan=False)
    unit: Literal["rows", "percent"] | None = Field(
        default=None, description="unit of observed_value; rows (counts) when unset"
    )
    expected: Text | None = None
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    severity: Literal["info", "warning", "error", "critical"] | None = None


class MaterializationEvent(WireModel):
    """floe's own materialization event. Key the Kafka record by ``asset``."""

    kind: Literal["floe.materialization"] = "floe.materialization"
    event_id: Identifier | None = Field(
        default=None, description="unique and stable per materialization (retries reuse it)"
    )
    asset: NonEmptyIdentifier = Field(description="monitored asset id (contract table id or alias)")
    materialized_at: AwareDatetime
    data_timestamp: AwareDatetime | None = Field(
        default=None, description="newest value of the contract's timestamp column (SLA element), if known"
    )
    run_id: Identifier | None = None
    job: Identifier | None = None
    producer: Identifier | None = None
    row_count: int | None = Field(default=None, ge=0, le=MAX_INT64)
    oldest_data_timestamp: AwareDatetime | None = Field(
        default=None,
        description="oldest value of the contract's timestamp column still in the table (retention SLA), if known",
    )
    columns: list[ObservedColumn] | None = Field(
        default=None, description="actual schema, when the producer knows it"
    )
    quality: list[QualityResult] | None = None
    labels: dict[Identifier, Text] = Field(default_factory=dict)


# --- OpenLineage (foreign: only the fields we read are declared; everything else is preserved) ---


class OLSchemaField(ForeignModel):
    name: Identifier
    type: Text | None = None
    description: Text | None = None


class OLSchemaFacet(ForeignModel):
    fields: list[OLSchemaField] = Field(default_factory=list)


class OLDataset(ForeignModel):
    namespace: Identifier
    name: Identifier
    facets: dict[str, Any] = Field(default_factory=dict)
    inputFacets: dict[str, Any] = Field(default_factory=dict)
    outputFacets: dict[str, Any] = Field(default_factory=dict)


class OLRun(ForeignModel):
    runId: Identifier
    facets: dict[str, Any] = Field(default_factory=dict)


class OLJob(ForeignModel):
    namespace: Identifier
    name: Identifier
    facets: dict[str, Any] = Field(default_factory=dict)


class OpenLineageRunEvent(ForeignModel):
    """An OpenLineage RunEvent (spec 2-0-x). Only ``COMPLETE`` events count as materializations."""

    eventType: Identifier | None = None
    eventTime: AwareDatetime
    run: OLRun
    job: OLJob
    producer: Identifier
    schemaURL: Identifier
    inputs: list[OLDataset] = Field(default_factory=list)
    outputs: list[OLDataset] = Field(default_factory=list)
