"""Dagster → floe-stream: every asset materialization becomes a floe materialization event (``floe-stream[dagster]``).

Two ways, the same events (the same deterministic ids, so using both never doubles anything):

* **a sensor** (no change to the assets) — ``floe_sensor()`` in your ``Definitions``: each evaluation reads the
  runs that ended since its cursor (success, failure, cancel: a failed run's materialized assets were
  materialized) and publishes their materializations;
* **a one-line asset hook** — ``return publish_result(context, dg.MaterializeResult(metadata=...))`` at the end
  of an asset.

What is read from Dagster's standard metadata:

| Dagster | floe |
|---|---|
| ``dagster/table_name`` (else the asset key, ``/`` → ``.``) | ``asset`` (the contract table it resolves to) |
| ``dagster/row_count`` | ``row_count`` |
| ``dagster/column_schema`` (a ``TableSchema``) | ``columns`` (observed: name, type, nullable, unique) → schema drift |
| ``dagster/last_updated_timestamp`` | ``data_timestamp`` (freshness of the data, not of the run) |
| partition key | label ``partition`` (and part of the event id) |
| run id, job name, event time | ``run_id``, ``job``, ``materialized_at`` |

Event id: ``dagster:<run id>:<asset key>:<partition>`` — a re-evaluated sensor tick (its cursor is stored only
after a tick succeeds), a retried hook, or the sensor and the hook together send the same id.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import dagster as dg

from floe_stream.client import FloeClient, materialization_event
from floe_stream.topics.materialization import MaterializationEvent, ObservedColumn

__all__ = ["configure", "event_from_materialization", "event_id", "floe_sensor", "publish_result"]

log = logging.getLogger(__name__)
R = TypeVar("R", dg.MaterializeResult[Any], dg.Output[Any], dg.AssetMaterialization)

ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
TABLE_NAME = "dagster/table_name"
LAST_UPDATED = "dagster/last_updated_timestamp"
RUN_END = (
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
)

_default: FloeClient | None = None
_default_lock = threading.Lock()


def default_client() -> FloeClient:
    """The process's client: the one given to :func:`configure`, else one from ``FLOE_KAFKA__*`` (closed at
    interpreter exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FloeClient.from_env()
        return _default


def configure(client: FloeClient | None) -> None:
    """Use ``client`` wherever no client is passed (None: back to one from ``FLOE_KAFKA__*``)."""
    global _default
    with _default_lock:
        _default = client


def _raw(value: Any) -> Any:
    """A metadata entry's plain value (``MetadataValue`` wrappers unwrapped; ``TableSchema`` kept)."""
    if isinstance(value, dg.TableSchemaMetadataValue):
        return value.schema
    if isinstance(value, dg.MetadataValue):
        return value.value
    return value


def _columns(schema: Any) -> list[ObservedColumn] | None:
    if not isinstance(schema, dg.TableSchema):
        return None
    out = []
    for c in schema.columns:
        cons = c.constraints
        out.append(
            ObservedColumn(
                name=c.name,
                type=c.type or "string",
                nullable=cons.nullable if cons is not None else None,
                unique=cons.unique if cons is not None and cons.unique else None,
            )
        )
    return out


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def asset_name(key: dg.AssetKey, metadata: Mapping[str, Any]) -> str:
    """The floe asset an event names: ``dagster/table_name`` if the asset declares one, else its key."""
    table = _raw(metadata.get(TABLE_NAME))
    return str(table) if table else ".".join(key.path)


def event_id(run_id: str, key: dg.AssetKey, partition: str | None) -> str:
    return f"dagster:{run_id}:{key.to_user_string()}:{partition or ''}"


def event_from_materialization(
    key: dg.AssetKey,
    metadata: Mapping[str, Any],
    *,
    run_id: str,
    partition: str | None = None,
    materialized_at: datetime | float | None = None,
    job: str | None = None,
) -> MaterializationEvent:
    """A validated floe event for one Dagster materialization (pure: nothing is sent)."""
    rows = _raw(metadata.get(ROW_COUNT))
    labels = {"dagster_asset_key": key.to_user_string()}
    if partition:
        labels["partition"] = partition
    return materialization_event(
        asset_name(key, metadata),
        event_id=event_id(run_id, key, partition),
        materialized_at=_when(materialized_at) if materialized_at is not None else None,
        data_timestamp=_when(_raw(metadata.get(LAST_UPDATED))),
        run_id=run_id,
        job=job,
        producer="dagster",
        row_count=int(rows) if isinstance(rows, int | float) and not isinstance(rows, bool) else None,
        columns=_columns(_raw(metadata.get(COLUMN_SCHEMA))),
        labels=labels,
    )


def publish_result(context: dg.AssetExecutionContext, result: R, *, client: FloeClient | None = None) -> R:
    """The one-line hook: ``return publish_result(context, dg.MaterializeResult(metadata={...}))``.

    Publishes the materialization the asset is about to report (its metadata as above) and returns ``result``
    unchanged. A failure to publish raises :class:`~floe_stream.client.PublishError` after the client's
    retries; catch it if monitoring must never fail the asset."""
    metadata = dict(result.metadata or {})
    key = getattr(result, "asset_key", None) or context.asset_key
    if isinstance(key, str | list):
        key = dg.AssetKey(key)
    partition = context.partition_key if context.has_partition_key else None
    ev = event_from_materialization(
        key, metadata, run_id=context.run_id, partition=partition, job=context.job_name
    )
    (client or default_client()).publish_materialization(ev.asset, **_fields(ev))
    return result


def _fields(ev: MaterializationEvent) -> dict[str, Any]:
    return {
        "event_id": ev.event_id,
        "materialized_at": ev.materialized_at,
        "data_timestamp": ev.data_timestamp,
        "run_id": ev.run_id,
        "job": ev.job,
        "producer": ev.producer,
        "row_count": ev.row_count,
        "columns": ev.columns,
        "labels": ev.labels,
    }


def _load_cursor(raw: str | None) -> int | None:
    """The storage id of the last run-end event handled; None before the first evaluation."""
    if not raw:
        return None
    return int(json.loads(raw)["after"])


def floe_sensor(
    *,
    client: FloeClient | Callable[[], FloeClient] | None = None,
    name: str = "floe_materializations",
    minimum_interval_seconds: int = 30,
    backfill: bool = False,
    runs_per_tick: int = 100,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """A sensor that publishes the materializations of every run that ended since its last tick.

    First tick: starts after the newest run-end event (``backfill=True``: from the beginning of the event log).
    ``client``: a :class:`FloeClient`, a factory, or None for one from ``FLOE_KAFKA__*``.
    """

    def get_client() -> FloeClient:
        if client is None:
            return default_client()
        return client if isinstance(client, FloeClient) else client()

    @dg.sensor(name=name, minimum_interval_seconds=minimum_interval_seconds, default_status=default_status)
    def _floe_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        instance = context.instance
        after = _load_cursor(context.cursor)
        if after is None and not backfill:  # first tick: only what ends from now on
            newest = [
                r.storage_id
                for t in RUN_END
                for r in instance.fetch_run_status_changes(t, limit=1, ascending=False).records
            ]
            context.update_cursor(json.dumps({"after": max(newest, default=0)}))
            return dg.SkipReason("floe: started; publishing runs that end from now on")
        ends: list[dg.EventLogRecord] = []
        limit_at: int | None = None  # a type that hit the limit may have more beyond its last record
        for t in RUN_END:
            got = instance.fetch_run_status_changes(
                dg.RunStatusChangeRecordsFilter(event_type=t, after_storage_id=after or 0),  # type: ignore[arg-type]
                limit=runs_per_tick,
                ascending=True,
            )
            ends.extend(got.records)
            if got.has_more and got.records:
                last = got.records[-1].storage_id
                limit_at = last if limit_at is None else min(limit_at, last)
        ends = sorted(
            (r for r in ends if limit_at is None or r.storage_id <= limit_at), key=lambda r: r.storage_id
        )
        published = 0
        floe = get_client() if ends else None
        for end in ends:
            run_id = end.event_log_entry.run_id
            for rec in instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records:
                entry = rec.event_log_entry
                mat = entry.asset_materialization
                if mat is None:
                    continue
                ev = event_from_materialization(
                    mat.asset_key,
                    mat.metadata,
                    run_id=run_id,
                    partition=mat.partition,
                    materialized_at=entry.timestamp,
                    job=entry.job_name,
                )
                assert floe is not None
                floe.publish_materialization(
                    ev.asset, **_fields(ev)
                )  # PublishError: the tick fails, cursor kept
                published += 1
        if ends:
            context.update_cursor(json.dumps({"after": ends[-1].storage_id}))
        return dg.SkipReason(f"floe: {published} materialization(s) of {len(ends)} run(s) published")

    return _floe_sensor
