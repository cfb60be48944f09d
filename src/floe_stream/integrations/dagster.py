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

Asset checks are quality results, mapped as OpenLineage's ``dataQualityAssertions`` are
(:func:`~floe_stream.processors.normalize.ol_assertion`): the check name is the result's name, passed/failed its
verdict, the severity (``WARN`` → warning, ``ERROR`` → error) its severity; from the check's metadata
``column``, ``metric`` (an ODCS metric or an assertion name such as ``not_null``), ``failures`` (rows that fail)
or ``observed_value``, and ``expected``. A check evaluated in the run that materialized its target rides on that
materialization's event (``quality``); a check run on its own (its target materialized earlier) is a quality
report only — it never counts as new data — sent as an OpenLineage run event naming the asset as the input
dataset with those assertions (job ``dagster/<job>``, run = the Dagster run), exactly what OpenLineage emitters
send for a test run.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import dagster as dg
from pydantic import ValidationError

from floe_stream.client import FloeClient, materialization_event
from floe_stream.processors.normalize import ol_assertion
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.decode import DecodeError, decode_materialization
from floe_stream.topics.materialization import MaterializationEvent, ObservedColumn, QualityResult

__all__ = [
    "assertion_of_check",
    "configure",
    "event_from_materialization",
    "event_id",
    "floe_sensor",
    "publish_result",
    "quality_report_event",
]

log = logging.getLogger(__name__)
R = TypeVar("R", dg.MaterializeResult[Any], dg.Output[Any], dg.AssetMaterialization)

ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
TABLE_NAME = "dagster/table_name"
LAST_UPDATED = "dagster/last_updated_timestamp"
PRODUCER = "https://github.com/floe-stream/floe-stream/tree/main/src/floe_stream/integrations/dagster.py"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
ASSERTIONS_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-1/DataQualityAssertionsDatasetFacet.json"
    "#/$defs/DataQualityAssertionsDatasetFacet"
)
NAMESPACE = "dagster"
"""The OpenLineage namespace of a check-only quality report's job and dataset: the dataset resolves by its name
(the asset id or an alias, as the materialization events name it)."""
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


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def assertion_of_check(
    check_name: str,
    passed: bool,
    metadata: Mapping[str, Any] | None = None,
    severity: dg.AssetCheckSeverity | None = None,
) -> dict[str, Any]:
    """One asset check evaluation as an OpenLineage ``dataQualityAssertions`` entry (pure)."""
    meta = {k: _raw(v) for k, v in (metadata or {}).items()}
    kind = meta.get("metric") or meta.get("assertion")
    a: dict[str, Any] = {
        "assertion": str(kind) if isinstance(kind, str) and kind else check_name,
        "success": bool(passed),
        "name": check_name,
    }
    if isinstance(meta.get("column"), str) and meta["column"]:
        a["column"] = meta["column"]
    if (failures := _number(meta.get("failures"))) is not None:
        a["failures"] = failures
    observed = _number(meta.get("observed_value", meta.get("actual")))
    if observed is not None:
        a["actual"] = observed
    if meta.get("expected") is not None:
        a["expected"] = str(meta["expected"])
    if severity is not None:
        a["severity"] = "warning" if severity == dg.AssetCheckSeverity.WARN else "error"
    return a


def _quality(assertions: list[dict[str, Any]], asset: str) -> list[QualityResult]:
    """Quality results of the assertions; one floe cannot read (a name that is no identifier) is left out with
    a log line rather than failing the run or the sensor tick."""
    out = []
    for a in assertions:
        try:
            r = ol_assertion(a)
        except ValidationError as exc:
            log.warning(
                "asset check %r on %s not published: %s", a.get("name"), asset, exc.errors()[0]["msg"]
            )
            continue
        if r is not None:
            out.append(r)
    return out


def quality_report_event(
    asset: str, assertions: list[dict[str, Any]], *, run_id: str, job: str | None, at: datetime | float
) -> dict[str, Any]:
    """The OpenLineage run event of a check-only run: ``asset`` as its input dataset, the checks as its
    ``dataQualityAssertions`` (pure). floe reads it as a quality report, never as new data."""
    when = _when(at) or datetime.now(UTC)
    return {
        "eventType": "COMPLETE",
        "eventTime": when.isoformat(),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
        "run": {"runId": run_id},
        "job": {"namespace": NAMESPACE, "name": job or "dagster"},
        "inputs": [
            {
                "namespace": NAMESPACE,
                "name": asset,
                "inputFacets": {
                    "dataQualityAssertions": {
                        "_producer": PRODUCER,
                        "_schemaURL": ASSERTIONS_SCHEMA,
                        "assertions": assertions,
                    }
                },
            }
        ],
        "outputs": [],
    }


def event_from_materialization(
    key: dg.AssetKey,
    metadata: Mapping[str, Any],
    *,
    run_id: str,
    partition: str | None = None,
    materialized_at: datetime | float | None = None,
    job: str | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> MaterializationEvent:
    """A validated floe event for one Dagster materialization (pure: nothing is sent); ``checks``: the
    assertions (:func:`assertion_of_check`) of the asset checks evaluated on it, its quality results."""
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
        quality=_quality(checks, asset_name(key, metadata)) if checks else None,
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
    checks = [
        assertion_of_check(name, c.passed, c.metadata, c.severity)
        for c in getattr(result, "check_results", None) or ()
        if (name := c.check_name or _only_check(context, key)) is not None
    ]
    ev = event_from_materialization(
        key, metadata, run_id=context.run_id, partition=partition, job=context.job_name, checks=checks
    )
    (client or default_client()).publish_materialization(ev.asset, **_fields(ev))
    return result


def _only_check(context: dg.AssetExecutionContext, key: dg.AssetKey) -> str | None:
    """The name of an ``AssetCheckResult`` that gives none: the asset's one check spec (as Dagster infers it)."""
    specs = [s for s in context.assets_def.check_specs if s.asset_key == key]
    return specs[0].name if len(specs) == 1 else None


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
        "quality": ev.quality,
        "labels": ev.labels,
    }


def _checks_of_run(
    instance: dg.DagsterInstance, run_id: str, materializations: set[int]
) -> tuple[
    dict[int, list[dict[str, Any]]], dict[dg.AssetKey, tuple[list[dict[str, Any]], float, str | None]]
]:
    """The asset check evaluations of a run: those on a materialization of this run, by its storage id; the
    others (their target materialized in an earlier run, or none), by asset: (assertions, time, job)."""
    on_mat: dict[int, list[dict[str, Any]]] = {}
    alone: dict[dg.AssetKey, tuple[list[dict[str, Any]], float, str | None]] = {}
    for rec in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        entry = rec.event_log_entry
        ev = entry.dagster_event.event_specific_data if entry.dagster_event is not None else None
        if not isinstance(ev, dg.AssetCheckEvaluation):
            continue
        a = assertion_of_check(ev.check_name, ev.passed, ev.metadata, ev.severity)
        target = ev.target_materialization_data
        if target is not None and target.run_id == run_id and target.storage_id in materializations:
            on_mat.setdefault(target.storage_id, []).append(a)
        else:
            assertions, _, _ = alone.get(ev.asset_key, ([], 0.0, None))
            alone[ev.asset_key] = ([*assertions, a], entry.timestamp, entry.job_name)
    return on_mat, alone


def _asset_of_check(instance: dg.DagsterInstance, key: dg.AssetKey) -> str:
    """The floe asset a check-only run's checks are about: as its materializations name it (the newest one's
    ``dagster/table_name``), else its key."""
    latest = instance.get_latest_materialization_event(key)
    mat = latest.asset_materialization if latest is not None else None
    return asset_name(key, mat.metadata if mat is not None else {})


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
        published = reports = 0
        floe = get_client() if ends else None
        for end in ends:
            run_id = end.event_log_entry.run_id
            mats = [
                r
                for r in instance.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
                if r.event_log_entry.asset_materialization is not None
            ]
            on_mat, alone = _checks_of_run(instance, run_id, {r.storage_id for r in mats})
            for rec in mats:
                entry = rec.event_log_entry
                mat = entry.asset_materialization
                assert mat is not None
                ev = event_from_materialization(
                    mat.asset_key,
                    mat.metadata,
                    run_id=run_id,
                    partition=mat.partition,
                    materialized_at=entry.timestamp,
                    job=entry.job_name,
                    checks=on_mat.get(rec.storage_id),
                )
                assert floe is not None
                floe.publish_materialization(
                    ev.asset, **_fields(ev)
                )  # PublishError: the tick fails, cursor kept
                published += 1
            for key, (assertions, at, job) in alone.items():
                asset = _asset_of_check(instance, key)
                if not _quality(assertions, asset):
                    continue
                report = quality_report_event(asset, assertions, run_id=run_id, job=job, at=at)
                value = json.dumps(report).encode()
                try:
                    decode_materialization(value)  # what the processor would refuse is not sent
                except DecodeError as exc:
                    log.warning("asset checks on %s not published: %s", asset, exc.reason)
                    continue
                assert floe is not None
                floe.publish_raw(TopicKey.MATERIALIZATIONS, asset, value)
                reports += 1
        if ends:
            context.update_cursor(json.dumps({"after": ends[-1].storage_id}))
        return dg.SkipReason(
            f"floe: {published} materialization(s) of {len(ends)} run(s) published"
            + (f", {reports} check-only quality report(s)" if reports else "")
        )

    return _floe_sensor
