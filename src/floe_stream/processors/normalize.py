"""Map every accepted input format to :class:`AssetUpdate` facts. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from floe_stream.processors.model import AssetUpdate
from floe_stream.topics.commit import CatalogCommitEvent, IcebergField
from floe_stream.topics.materialization import (
    MaterializationEvent,
    ObservedColumn,
    OLDataset,
    OpenLineageRunEvent,
)


def from_materialization(ev: MaterializationEvent, fallback_id: str) -> list[tuple[str, AssetUpdate]]:
    update = AssetUpdate(
        asset_id=ev.asset,
        source="materialization",
        event_id=ev.event_id or fallback_id,
        updated_at=ev.materialized_at,
        data_timestamp=ev.data_timestamp,
        columns=tuple(ev.columns) if ev.columns is not None else None,
        row_count=ev.row_count,
        quality=tuple(ev.quality) if ev.quality is not None else None,
        run_id=ev.run_id,
        job=ev.job,
    )
    return [(ev.asset, update)]


def ol_identifiers(ds: OLDataset) -> list[str]:
    """Identifiers an OpenLineage dataset may be registered under, most specific first."""
    return [f"{ds.namespace}/{ds.name}", f"{ds.namespace}.{ds.name}", ds.name]


def _ol_columns(ds: OLDataset) -> tuple[ObservedColumn, ...] | None:
    facet = ds.facets.get("schema")
    if not isinstance(facet, dict) or not isinstance(facet.get("fields"), list):
        return None
    cols = []
    for f in facet["fields"]:
        if isinstance(f, dict) and f.get("name"):
            cols.append(ObservedColumn(name=str(f["name"]), type=str(f.get("type") or "unknown")))
    return tuple(cols)


def _ol_row_count(ds: OLDataset) -> int | None:
    for facets in (ds.outputFacets, ds.facets):
        stats = facets.get("outputStatistics") or facets.get("dataQualityMetrics")
        if isinstance(stats, dict) and isinstance(stats.get("rowCount"), int):
            return int(stats["rowCount"])
    return None


def from_openlineage(ev: OpenLineageRunEvent) -> list[tuple[list[str], AssetUpdate]]:
    """A COMPLETE run event materializes each output dataset. Other event types yield nothing."""
    if (ev.eventType or "").upper() != "COMPLETE":
        return []
    out: list[tuple[list[str], AssetUpdate]] = []
    for ds in ev.outputs:
        update = AssetUpdate(
            asset_id="",
            source="openlineage",
            event_id=f"ol:{ev.run.runId}:{ds.namespace}/{ds.name}",
            updated_at=ev.eventTime,
            columns=_ol_columns(ds),
            row_count=_ol_row_count(ds),
            run_id=ev.run.runId,
            job=f"{ev.job.namespace}/{ev.job.name}",
        )
        out.append((ol_identifiers(ds), update))
    return out


def iceberg_type_name(t: str | dict[str, Any]) -> str:
    if isinstance(t, str):
        return t
    return str(t.get("type", "struct"))


def iceberg_columns(fields: list[IcebergField]) -> tuple[ObservedColumn, ...]:
    return tuple(
        ObservedColumn(name=f.name, type=iceberg_type_name(f.type), nullable=not f.required) for f in fields
    )


def from_commit(ev: CatalogCommitEvent, fallback_id: str) -> list[tuple[str, AssetUpdate]]:
    summary = ev.summary
    rows = summary.get("total-records")
    update = AssetUpdate(
        asset_id=ev.table,
        source="catalog_commit",
        event_id=ev.event_id or f"commit:{ev.table}:{ev.snapshot_id}" or fallback_id,
        updated_at=datetime.fromtimestamp(ev.timestamp_ms / 1000, tz=UTC),
        columns=iceberg_columns(ev.table_schema.fields),
        row_count=int(rows) if rows and rows.isdigit() else None,
        sequence=ev.sequence_number,
    )
    return [(ev.table, update)]
