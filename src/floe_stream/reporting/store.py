"""The SLA history in PostgreSQL: raw rows in, daily aggregates / SLA status / episodes maintained incrementally.

Idempotency: raw rows are inserted with ``ON CONFLICT DO NOTHING RETURNING``; only rows actually inserted feed
the aggregates, the SLA status and the episodes, so a replayed batch (crash, second replica, rebalance) changes
nothing twice.

Incremental aggregates (see :mod:`floe_stream.reporting.timeline` for the semantics): per (asset, check type)
``sla_status`` keeps the newest result. A newer result closes the previous result's interval, which is split at
UTC midnight and added to the days it spans; the result itself counts in its own day. A result *older* than the
newest one (an out-of-order arrival: a late partition, a replayed topic) splits an interval that is already
aggregated: then the days from that result's day onwards are recomputed from the raw table for that key, inside the
same transaction — exact, at the cost of one range query. ``floe db rebuild-aggregates`` runs the same SQL for
every key.

Retention: raw rows older than the cutoff are deleted except the newest one per (asset, check type) before the
cutoff (its status still holds after the cutoff, so rebuilding from the horizon stays exact). Aggregates and
episodes are never pruned.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from floe_stream.contracts.models import LoadedContract, MonitoredAsset
from floe_stream.reporting.timeline import (
    SEVERITY_RANK,
    DayDelta,
    LastState,
    ResultPoint,
    apply_points,
    day_of,
    midnight,
)
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.violation import ResolvedData, ViolationCloudEvent

log = logging.getLogger(__name__)

PRUNE_LOCK_ID = 0x0F10E6  # advisory lock: one pruner per day across sink replicas
DEFAULT_INTERVALS_S = {"schema_drift": 3600.0, "quality": 6 * 3600.0, "availability": 300.0}
"""FR-003 defaults; freshness expects one arrival per SLA threshold. A contract overrides them with
``customProperties: [{property: floe, value: {intervals: {quality: 1h}}}]``."""

INSERT_RESULTS = """
INSERT INTO check_results (result_id, asset, contract_id, contract_version, check_type, status, severity,
    evaluated_at, trigger, metric, sla_consumed, expected, actual, message, source_event_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::timestamptz[], $9::text[], $10::float8[], $11::float8[], $12::text[], $13::text[], $14::text[], $15::text[])
ON CONFLICT (result_id) DO NOTHING
RETURNING result_id
"""

INSERT_VIOLATIONS = """
INSERT INTO violation_events (event_id, event_type, correlation_key, asset, contract_id, contract_name,
    contract_version, violation_type, drift_kind, severity, message, element, expected_value, actual_value,
    occurred_at, episode_started_at, open_duration_s, payload)
SELECT e, t, ck, a, ci, cn, cv, vt, dk, sv, m, el, ev, av, oa, es, od, p::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[],
    $16::timestamptz[], $17::float8[], $18::text[])
    AS u(e, t, ck, a, ci, cn, cv, vt, dk, sv, m, el, ev, av, oa, es, od, p)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

UPSERT_EPISODE = """
INSERT INTO violation_episodes AS v (correlation_key, opened_at, asset, contract_id, violation_type,
    first_severity, severity, severity_rank, escalations, message, resolved_at, duration_s)
VALUES ($1, $2, $3, $4, $5, $6, $6, $7, 0, $8, $9, $10)
ON CONFLICT (correlation_key, opened_at) DO UPDATE SET
    severity = CASE WHEN EXCLUDED.severity_rank > v.severity_rank THEN EXCLUDED.severity ELSE v.severity END,
    severity_rank = GREATEST(v.severity_rank, EXCLUDED.severity_rank),
    escalations = v.escalations + CASE WHEN EXCLUDED.resolved_at IS NULL THEN 1 ELSE 0 END,
    resolved_at = COALESCE(EXCLUDED.resolved_at, v.resolved_at),
    duration_s = COALESCE(EXCLUDED.duration_s, v.duration_s),
    updated_at = now()
"""

UPSERT_DAY = """
INSERT INTO daily_aggregates AS a (asset, check_type, day, contract_id, checks_run, passed, failed, skipped,
    errored, within_s, breached_s, unknown_s, worst_severity_rank, metric_count, metric_sum, metric_min, metric_max)
SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[],
    $9::int[], $10::float8[], $11::float8[], $12::float8[], $13::smallint[], $14::int[], $15::float8[],
    $16::float8[], $17::float8[])
ON CONFLICT (asset, check_type, day) DO UPDATE SET
    contract_id = CASE WHEN EXCLUDED.checks_run > 0 THEN EXCLUDED.contract_id ELSE a.contract_id END,
    checks_run = a.checks_run + EXCLUDED.checks_run,
    passed = a.passed + EXCLUDED.passed,
    failed = a.failed + EXCLUDED.failed,
    skipped = a.skipped + EXCLUDED.skipped,
    errored = a.errored + EXCLUDED.errored,
    within_s = a.within_s + EXCLUDED.within_s,
    breached_s = a.breached_s + EXCLUDED.breached_s,
    unknown_s = a.unknown_s + EXCLUDED.unknown_s,
    worst_severity_rank = GREATEST(a.worst_severity_rank, EXCLUDED.worst_severity_rank),
    metric_count = a.metric_count + EXCLUDED.metric_count,
    metric_sum = a.metric_sum + EXCLUDED.metric_sum,
    metric_min = LEAST(a.metric_min, EXCLUDED.metric_min),
    metric_max = GREATEST(a.metric_max, EXCLUDED.metric_max),
    updated_at = now()
"""

UPDATE_STATUS = """
UPDATE sla_status AS s SET contract_id = u.ci, contract_version = u.cv, last_result_id = u.rid, last_status = u.st,
    last_severity = u.sev, last_metric = u.m, last_evaluated_at = u.at, consecutive_failures = u.cf,
    last_pass_at = u.lp, last_fail_at = u.lf, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[],
    $9::timestamptz[], $10::int[], $11::timestamptz[], $12::timestamptz[])
    AS u(asset, check_type, ci, cv, rid, st, sev, m, at, cf, lp, lf)
WHERE s.asset = u.asset AND s.check_type = u.check_type
"""

LOCK_STATUS = """
SELECT s.* FROM sla_status s JOIN unnest($1::text[], $2::text[]) AS k(asset, check_type)
    ON s.asset = k.asset AND s.check_type = k.check_type
ORDER BY s.asset, s.check_type FOR UPDATE OF s
"""

# Recompute the days >= d_from of the given keys from the raw table (also used by rebuild-aggregates).
# The newest result before d_from is read too: its status holds into d_from.
RECOMPUTE = """
WITH k AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::date[]) AS k(asset, check_type, d_from)
), r AS (
    SELECT c.asset, c.check_type, c.contract_id, c.result_id, c.status, c.severity, c.metric, k.d_from,
           c.evaluated_at AT TIME ZONE 'UTC' AS ts,
           (LEAD(c.evaluated_at) OVER w) AT TIME ZONE 'UTC' AS nts
    FROM k JOIN check_results c ON c.asset = k.asset AND c.check_type = k.check_type
    WHERE c.evaluated_at >= COALESCE((
        SELECT max(p.evaluated_at) FROM check_results p
        WHERE p.asset = k.asset AND p.check_type = k.check_type
          AND p.evaluated_at < (k.d_from::timestamp AT TIME ZONE 'UTC')), '-infinity'::timestamptz)
    WINDOW w AS (PARTITION BY c.asset, c.check_type ORDER BY c.evaluated_at, c.result_id)
), counts AS (
    SELECT asset, check_type, ts::date AS day,
           (array_agg(contract_id ORDER BY ts DESC, result_id DESC))[1] AS contract_id,
           count(*)::int AS checks_run,
           (count(*) FILTER (WHERE status = 'pass'))::int AS passed,
           (count(*) FILTER (WHERE status = 'fail'))::int AS failed,
           (count(*) FILTER (WHERE status = 'skipped'))::int AS skipped,
           (count(*) FILTER (WHERE status NOT IN ('pass', 'fail', 'skipped')))::int AS errored,
           max(CASE severity WHEN 'info' THEN 0 WHEN 'warning' THEN 1 WHEN 'error' THEN 2
                             WHEN 'critical' THEN 3 END)::smallint AS worst,
           count(metric)::int AS metric_count, COALESCE(sum(metric), 0)::float8 AS metric_sum,
           min(metric) AS metric_min, max(metric) AS metric_max
    FROM r WHERE ts::date >= d_from
    GROUP BY 1, 2, 3
), spans AS (
    SELECT r.asset, r.check_type, r.contract_id, r.status, r.ts, r.result_id, r.d_from, g.day::date AS day,
           EXTRACT(EPOCH FROM (LEAST(r.nts, g.day + interval '1 day') - GREATEST(r.ts, g.day)))::float8 AS secs
    FROM r CROSS JOIN LATERAL generate_series(date_trunc('day', r.ts), date_trunc('day', r.nts), interval '1 day')
        AS g(day)
    WHERE r.nts IS NOT NULL
), times AS (
    SELECT asset, check_type, day,
           (array_agg(contract_id ORDER BY ts DESC, result_id DESC))[1] AS contract_id,
           COALESCE(sum(secs) FILTER (WHERE status = 'pass'), 0)::float8 AS within_s,
           COALESCE(sum(secs) FILTER (WHERE status = 'fail'), 0)::float8 AS breached_s,
           COALESCE(sum(secs) FILTER (WHERE status NOT IN ('pass', 'fail')), 0)::float8 AS unknown_s
    FROM spans WHERE secs > 0 AND day >= d_from
    GROUP BY 1, 2, 3
)
INSERT INTO daily_aggregates (asset, check_type, day, contract_id, checks_run, passed, failed, skipped, errored,
    within_s, breached_s, unknown_s, worst_severity_rank, metric_count, metric_sum, metric_min, metric_max)
SELECT COALESCE(c.asset, t.asset), COALESCE(c.check_type, t.check_type), COALESCE(c.day, t.day),
       COALESCE(c.contract_id, t.contract_id), COALESCE(c.checks_run, 0), COALESCE(c.passed, 0),
       COALESCE(c.failed, 0), COALESCE(c.skipped, 0), COALESCE(c.errored, 0), COALESCE(t.within_s, 0),
       COALESCE(t.breached_s, 0), COALESCE(t.unknown_s, 0), c.worst, COALESCE(c.metric_count, 0),
       COALESCE(c.metric_sum, 0), c.metric_min, c.metric_max
FROM counts c FULL JOIN times t ON c.asset = t.asset AND c.check_type = t.check_type AND c.day = t.day
"""

DELETE_DAYS = """
DELETE FROM daily_aggregates a USING unnest($1::text[], $2::text[], $3::date[]) AS k(asset, check_type, d_from)
WHERE a.asset = k.asset AND a.check_type = k.check_type AND a.day >= k.d_from
"""

REBUILD_STATUS = """
INSERT INTO sla_status (asset, check_type, contract_id, contract_version, last_result_id, last_status,
    last_severity, last_metric, last_evaluated_at, consecutive_failures, last_pass_at, last_fail_at)
SELECT l.asset, l.check_type, l.contract_id, l.contract_version, l.result_id, l.status, l.severity, l.metric,
       l.evaluated_at,
       (SELECT count(*) FROM check_results f
         WHERE f.asset = l.asset AND f.check_type = l.check_type AND f.status = 'fail'
           AND (lp.evaluated_at IS NULL OR (f.evaluated_at, f.result_id) > (lp.evaluated_at, lp.result_id)))::int,
       lp.evaluated_at,
       (SELECT max(evaluated_at) FROM check_results f
         WHERE f.asset = l.asset AND f.check_type = l.check_type AND f.status = 'fail')
FROM (
    SELECT DISTINCT ON (asset, check_type) * FROM check_results
    WHERE ($1::text[] IS NULL OR asset = ANY($1))
    ORDER BY asset, check_type, evaluated_at DESC, result_id DESC
) l
LEFT JOIN LATERAL (
    SELECT p.evaluated_at, p.result_id FROM check_results p
    WHERE p.asset = l.asset AND p.check_type = l.check_type AND p.status = 'pass'
    ORDER BY p.evaluated_at DESC, p.result_id DESC LIMIT 1
) lp ON true
"""


# --- the sink's write path: COPY into per-connection staging tables, then one set-based statement each ---------
# bench/sink.py (a): asyncpg encodes query array parameters element by element through ABC isinstance checks
# (~70 µs of CPU per result over the four statements); COPY's binary row encoder does not. The staging tables
# are temporary (this session only) and emptied at commit; each statement drains its table (DELETE … RETURNING),
# so two writes in one transaction stay independent. Same rows, same SQL semantics as INSERT_RESULTS /
# UPSERT_DAY / UPDATE_STATUS above (kept for `floe replay` and `floe db`).
STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS floe_stage_results (result_id text, asset text, contract_id text,
    contract_version text, check_type text, status text, severity text, evaluated_at timestamptz, trigger text,
    metric float8, sla_consumed float8, expected text, actual text, message text, source_event_id text)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS floe_stage_days (asset text, check_type text, day date, contract_id text,
    checks_run int, passed int, failed int, skipped int, errored int, within_s float8, breached_s float8,
    unknown_s float8, worst_severity_rank smallint, metric_count int, metric_sum float8, metric_min float8,
    metric_max float8) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS floe_stage_status (asset text, check_type text, ci text, cv text, rid text,
    st text, sev text, m float8, at timestamptz, cf int, lp timestamptz, lf timestamptz) ON COMMIT DELETE ROWS;
"""
RESULT_FIELDS = (
    "result_id", "asset", "contract_id", "contract_version", "check_type", "status", "severity", "evaluated_at",
    "trigger", "metric", "sla_consumed", "expected", "actual", "message", "source_event_id",
)  # fmt: skip
DAY_FIELDS = (
    "asset", "check_type", "day", "contract_id", "checks_run", "passed", "failed", "skipped", "errored",
    "within_s", "breached_s", "unknown_s", "worst_severity_rank", "metric_count", "metric_sum", "metric_min",
    "metric_max",
)  # fmt: skip
STATUS_FIELDS = ("asset", "check_type", "ci", "cv", "rid", "st", "sev", "m", "at", "cf", "lp", "lf")

INSERT_STAGED_RESULTS = f"""
WITH s AS (DELETE FROM floe_stage_results RETURNING *)
INSERT INTO check_results ({", ".join(RESULT_FIELDS)})
SELECT {", ".join(RESULT_FIELDS)} FROM s
ON CONFLICT (result_id) DO NOTHING
RETURNING result_id
"""
UPSERT_STAGED_DAYS = "WITH s AS (DELETE FROM floe_stage_days RETURNING *)" + UPSERT_DAY.replace(
    """SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[],
    $9::int[], $10::float8[], $11::float8[], $12::float8[], $13::smallint[], $14::int[], $15::float8[],
    $16::float8[], $17::float8[])""",
    "SELECT * FROM s",
)
assert "unnest" not in UPSERT_STAGED_DAYS
UPDATE_STAGED_STATUS = """
WITH u AS (DELETE FROM floe_stage_status RETURNING *)
UPDATE sla_status AS s SET contract_id = u.ci, contract_version = u.cv, last_result_id = u.rid, last_status = u.st,
    last_severity = u.sev, last_metric = u.m, last_evaluated_at = u.at, consecutive_failures = u.cf,
    last_pass_at = u.lp, last_fail_at = u.lf, updated_at = now()
FROM u WHERE s.asset = u.asset AND s.check_type = u.check_type
"""


def _result_row(r: CheckResult) -> tuple[Any, ...]:
    return (
        r.result_id,
        r.asset,
        r.contract_id,
        r.contract_version,
        r.check_type.value,
        r.status.value,
        r.severity.value if r.severity else None,
        r.evaluated_at,
        r.trigger,
        r.metric,
        r.sla_consumed,
        r.expected,
        r.actual,
        r.message,
        r.source_event_id,
    )


async def _stage(
    conn: asyncpg.Connection, table: str, fields: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    await conn.copy_records_to_table(table, records=rows, columns=list(fields), schema_name="pg_temp")


def result_columns(results: Sequence[CheckResult]) -> list[list[Any]]:
    """The rows of :func:`_result_row` as columns (one array parameter per column of ``INSERT_RESULTS``)."""
    cols: list[list[Any]] = [[] for _ in RESULT_FIELDS]
    for r in results:
        for c, v in zip(cols, _result_row(r), strict=True):
            c.append(v)
    return cols


def violation_columns(events: Sequence[ViolationCloudEvent]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(18)]
    for ev in events:
        d = ev.data
        if isinstance(d, ResolvedData):
            occurred, started, duration = d.resolved_at, d.opened_at, d.open_duration_s
            drift, element, expected, actual = None, None, None, None
        else:
            occurred, started, duration = d.detected_at, d.episode_started_at, None
            drift = d.drift_kind.value if d.drift_kind else None
            element, expected, actual = d.element, d.expected_value, d.actual_value
        row = (
            ev.id,
            ev.type,
            d.correlation_key,
            d.asset,
            d.contract_id,
            d.contract_name,
            d.contract_version,
            d.violation_type.value,
            drift,
            d.severity.value,
            d.message,
            element,
            expected,
            actual,
            occurred,
            started,
            duration,
            ev.model_dump_json(),
        )
        for c, v in zip(cols, row, strict=True):
            c.append(v)
    return cols


def _point(r: CheckResult) -> ResultPoint:
    return ResultPoint(
        result_id=r.result_id,
        status=r.status.value,
        at=r.evaluated_at,
        severity=r.severity.value if r.severity else None,
        metric=r.metric,
        contract_id=r.contract_id,
        contract_version=r.contract_version,
    )


def _last(row: asyncpg.Record) -> LastState | None:
    if row["last_evaluated_at"] is None:
        return None
    return LastState(
        result_id=row["last_result_id"],
        status=row["last_status"],
        at=row["last_evaluated_at"],
        consecutive_failures=row["consecutive_failures"],
        last_pass_at=row["last_pass_at"],
        last_fail_at=row["last_fail_at"],
        severity=row["last_severity"],
        metric=row["last_metric"],
        contract_id=row["contract_id"] or "",
        contract_version=row["contract_version"] or "",
    )


async def write_history(
    conn: asyncpg.Connection,
    results: Sequence[CheckResult],
    violations: Sequence[ViolationCloudEvent] = (),
    *,
    seen_contracts: set[tuple[str, str]] | None = None,
) -> tuple[int, int]:
    """Insert raw rows and maintain aggregates, status and episodes. Call inside a transaction.

    Returns (results inserted, violation events inserted); duplicates are ignored.
    """
    if not conn.is_in_transaction():  # the staging tables empty at commit: COPY and its statement share one
        async with conn.transaction():
            return await write_history(conn, results, violations, seen_contracts=seen_contracts)
    n_res = n_viol = 0
    if results:
        unique = list({r.result_id: r for r in results}.values())
        await conn.execute(STAGE_DDL)
        await _stage(conn, "floe_stage_results", RESULT_FIELDS, map(_result_row, unique))
        inserted = {r["result_id"] for r in await conn.fetch(INSERT_STAGED_RESULTS)}
        fresh = [r for r in unique if r.result_id in inserted]
        n_res = len(fresh)
        if fresh:
            await apply_results(conn, fresh)
            pairs = {(r.contract_id, r.contract_version) for r in fresh}
            if seen_contracts is not None:
                pairs -= seen_contracts
            if pairs:
                await conn.execute(
                    "INSERT INTO registered_contracts (contract_id, version, registered_by) "
                    "SELECT * , 'sink' FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                    [p[0] for p in pairs],
                    [p[1] for p in pairs],
                )
                if seen_contracts is not None:
                    seen_contracts |= pairs
    if violations:
        unique_v = list({v.id: v for v in violations}.values())
        inserted = {r["event_id"] for r in await conn.fetch(INSERT_VIOLATIONS, *violation_columns(unique_v))}
        fresh_v = [v for v in unique_v if v.id in inserted]
        n_viol = len(fresh_v)
        if fresh_v:
            await apply_episodes(conn, fresh_v)
    return n_res, n_viol


async def apply_results(conn: asyncpg.Connection, fresh: Sequence[CheckResult]) -> None:
    """Fold newly inserted results into ``sla_status`` and ``daily_aggregates`` (see the module docstring)."""
    by_key: dict[tuple[str, str], list[ResultPoint]] = defaultdict(list)
    for r in fresh:
        by_key[(r.asset, r.check_type.value)].append(_point(r))
    keys = sorted(by_key)
    assets, types = [k[0] for k in keys], [k[1] for k in keys]
    rows = await conn.fetch(LOCK_STATUS, assets, types)
    if len(rows) < len(keys):  # first results of a key: create its row, then lock it like the others
        have = {(r["asset"], r["check_type"]) for r in rows}
        missing = [k for k in keys if k not in have]
        await conn.execute(
            "INSERT INTO sla_status (asset, check_type) SELECT * FROM unnest($1::text[], $2::text[]) "
            "ON CONFLICT DO NOTHING",
            [k[0] for k in missing],
            [k[1] for k in missing],
        )
        rows = [*rows, *await conn.fetch(LOCK_STATUS, [k[0] for k in missing], [k[1] for k in missing])]
    current = {(r["asset"], r["check_type"]): _last(r) for r in rows}
    day_rows: list[tuple[str, str, date, DayDelta]] = []
    recompute: list[tuple[str, str, date]] = []
    status_rows: list[tuple[Any, ...]] = []
    for key in keys:
        before = current.get(key)
        applied = apply_points(before, by_key[key])
        if applied.out_of_order:
            recompute.append((key[0], key[1], day_of(min(p.at for p in applied.out_of_order))))
        else:
            for d, delta in applied.days.items():
                if not delta.contract_id:
                    delta.contract_id = (before.contract_id if before else "") or by_key[key][0].contract_id
                day_rows.append((key[0], key[1], d, delta))
        last = applied.last
        if last is not None and last is not before:
            status_rows.append(
                (
                    key[0],
                    key[1],
                    last.contract_id,
                    last.contract_version,
                    last.result_id,
                    last.status,
                    last.severity,
                    last.metric,
                    last.at,
                    last.consecutive_failures,
                    last.last_pass_at,
                    last.last_fail_at,
                )
            )
    if day_rows:
        await _stage(conn, "floe_stage_days", DAY_FIELDS, map(_day_row, day_rows))
        await conn.execute(UPSERT_STAGED_DAYS)
    if recompute:
        await recompute_days(conn, recompute)
    if status_rows:
        await _stage(conn, "floe_stage_status", STATUS_FIELDS, status_rows)
        await conn.execute(UPDATE_STAGED_STATUS)
    if recompute:  # an older result may change the failure streak / last pass: recompute those from raw
        await rebuild_status(conn, sorted({k[0] for k in recompute}))


def _day_row(row: tuple[str, str, date, DayDelta]) -> tuple[Any, ...]:
    asset, ct, d, x = row
    return (
        asset,
        ct,
        d,
        x.contract_id,
        x.checks_run,
        x.passed,
        x.failed,
        x.skipped,
        x.errored,
        x.within_s,
        x.breached_s,
        x.unknown_s,
        x.worst_rank,
        x.metric_count,
        x.metric_sum,
        x.metric_min,
        x.metric_max,
    )


def _day_columns(rows: Sequence[tuple[str, str, date, DayDelta]]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(17)]
    for r in rows:
        for c, v in zip(cols, _day_row(r), strict=True):
            c.append(v)
    return cols


async def pruned_before(conn: asyncpg.Connection) -> date | None:
    """The first day whose raw rows are complete after a prune (None: never pruned)."""
    horizon = await conn.fetchval("SELECT horizon FROM floe_maintenance WHERE job = 'prune'")
    return day_of(horizon) if horizon is not None else None


async def recompute_days(conn: asyncpg.Connection, keys: Sequence[tuple[str, str, date]]) -> None:
    """Replace the aggregates of each (asset, check type) from ``d_from`` onwards with a recomputation from raw.

    Never before the prune horizon: those days' raw rows are gone, their aggregates are the record (a result
    older than the retention arriving late does not change them).
    """
    floor = await pruned_before(conn)
    if floor is not None:
        keys = [(a, c, max(d, floor)) for a, c, d in keys]
    cols = [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]]
    await conn.execute(DELETE_DAYS, *cols)
    await conn.execute(RECOMPUTE, *cols)


async def apply_episodes(conn: asyncpg.Connection, events: Sequence[ViolationCloudEvent]) -> None:
    rows: list[tuple[Any, ...]] = []
    for ev in sorted(events, key=lambda e: (e.time, e.type)):
        d = ev.data
        if isinstance(d, ResolvedData):
            started, resolved_at, duration = d.opened_at, d.resolved_at, d.open_duration_s
        else:
            started, resolved_at, duration = d.episode_started_at, None, None
        rows.append(
            (
                d.correlation_key,
                started,
                d.asset,
                d.contract_id,
                d.violation_type.value,
                d.severity.value,
                SEVERITY_RANK[d.severity.value],
                d.message,
                resolved_at,
                duration,
            )
        )
    await conn.executemany(UPSERT_EPISODE, rows)


# --- rebuild, prune ------------------------------------------------------------------------------------
async def raw_horizon(conn: asyncpg.Connection) -> date | None:
    """The first day whose raw data is complete: the last prune's cutoff day, else the first raw day."""
    horizon = await conn.fetchval("SELECT horizon FROM floe_maintenance WHERE job = 'prune'")
    first = await conn.fetchval("SELECT min(evaluated_at) FROM check_results")
    if first is None:
        return None
    if horizon is not None:
        return max(day_of(horizon), day_of(first))
    return day_of(first)


async def rebuild_aggregates(
    conn: asyncpg.Connection, *, since: date | None = None, assets: Sequence[str] | None = None
) -> dict[str, Any]:
    """Recompute daily aggregates (days >= ``since``, default the raw horizon) and the SLA status from raw.

    Days before the raw horizon are left alone (their raw rows were pruned). Runs in one transaction.
    """
    async with conn.transaction():
        horizon = await raw_horizon(conn)
        if horizon is None:
            return {"since": None, "keys": 0, "days": 0}
        start = max(since, horizon) if since else horizon
        keys = await conn.fetch(
            "SELECT DISTINCT asset, check_type FROM check_results WHERE ($1::text[] IS NULL OR asset = ANY($1))",
            list(assets) if assets is not None else None,
        )
        await conn.execute(
            "DELETE FROM daily_aggregates WHERE day >= $1 AND ($2::text[] IS NULL OR asset = ANY($2))",
            start,
            list(assets) if assets is not None else None,
        )
        if keys:
            await conn.execute(
                RECOMPUTE, [k["asset"] for k in keys], [k["check_type"] for k in keys], [start] * len(keys)
            )
        await rebuild_status(conn, assets)
        days = await conn.fetchval("SELECT count(*) FROM daily_aggregates WHERE day >= $1", start)
        return {"since": start.isoformat(), "keys": len(keys), "days": int(days)}


async def rebuild_status(conn: asyncpg.Connection, assets: Sequence[str] | None = None) -> None:
    a = list(assets) if assets is not None else None
    await conn.execute("DELETE FROM sla_status WHERE ($1::text[] IS NULL OR asset = ANY($1))", a)
    await conn.execute(REBUILD_STATUS, a)


async def prune(conn: asyncpg.Connection, cutoff: datetime) -> dict[str, int]:
    """Delete raw check results and violation events older than ``cutoff`` (aggregates and episodes stay).

    The newest result per (asset, check type) before the cutoff is kept: its status holds past the cutoff.
    """
    async with conn.transaction():
        res = await conn.execute(
            """
            WITH keep AS (
                SELECT DISTINCT ON (asset, check_type) result_id FROM check_results WHERE evaluated_at < $1
                ORDER BY asset, check_type, evaluated_at DESC, result_id DESC
            )
            DELETE FROM check_results WHERE evaluated_at < $1 AND result_id NOT IN (SELECT result_id FROM keep)
            """,
            cutoff,
        )
        viol = await conn.execute("DELETE FROM violation_events WHERE occurred_at < $1", cutoff)
        await conn.execute(
            "INSERT INTO floe_maintenance (job, horizon, details) VALUES ('prune', $1, '{}') "
            "ON CONFLICT (job) DO UPDATE SET horizon = GREATEST(floe_maintenance.horizon, EXCLUDED.horizon), "
            "updated_at = now()",
            cutoff,
        )
    return {"check_results": int(res.split()[-1]), "violation_events": int(viol.split()[-1])}


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Midnight UTC ``retention_days`` before ``now`` (whole days are pruned)."""
    return midnight(day_of(now) - timedelta(days=retention_days))


async def daily_prune(conn: asyncpg.Connection, now: datetime, retention_days: int) -> dict[str, int] | None:
    """Prune once per UTC day across all replicas (advisory lock + the day recorded in floe_maintenance).

    Returns the counts when this call pruned, None when another replica holds the lock or today's prune ran.
    """
    today = day_of(now)
    got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", PRUNE_LOCK_ID)
    if not got:
        return None
    try:
        done = await conn.fetchval("SELECT last_run_on FROM floe_maintenance WHERE job = 'daily-prune'")
        if done is not None and done >= today:
            return None
        counts = await prune(conn, retention_cutoff(now, retention_days))
        await conn.execute(
            "INSERT INTO floe_maintenance (job, last_run_on, details) VALUES ('daily-prune', $1, $2::jsonb) "
            "ON CONFLICT (job) DO UPDATE SET last_run_on = EXCLUDED.last_run_on, details = EXCLUDED.details, "
            "updated_at = now()",
            today,
            json.dumps(counts),
        )
        log.info("daily prune (retention %d days): %s", retention_days, counts)
        return counts
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK_ID)


# --- contracts ------------------------------------------------------------------------------------------
def expected_intervals(asset: MonitoredAsset) -> dict[str, float]:
    """Seconds between expected checks per check type the asset has (coverage = executed / expected)."""
    out: dict[str, float] = {}
    if asset.freshness is not None:
        out["freshness"] = asset.freshness.threshold_s
    if asset.columns:
        out["schema_drift"] = DEFAULT_INTERVALS_S["schema_drift"]
    if asset.quality_rules:
        out["quality"] = DEFAULT_INTERVALS_S["quality"]
    if asset.availability is not None:
        out["availability"] = DEFAULT_INTERVALS_S["availability"]
    out.update(asset.floe.intervals)  # typed and validated (seconds) when the contract loaded
    return out


def sla_targets(asset: MonitoredAsset) -> dict[str, dict[str, Any]]:
    """Compliance targets (%) the contract itself states, per check type: the availability SLA
    (``availability: 99.5%``) and the SLO objectives of the ``floe`` property (``slo: {freshness: 99, quality:
    "95%"}``). Check types without one are judged against the configured default (FLOE_HISTORY__DEFAULT_TARGETS)."""
    out: dict[str, dict[str, Any]] = {}
    if asset.availability is not None:
        out["availability"] = {"pct": round(asset.availability.target_ratio * 100, 6), "source": "contract"}
    for k, pct in asset.floe.slo.items():  # typed and validated (0–100) when the contract loaded
        out[k] = {"pct": pct, "source": "slo"}
    return out


async def register_contracts(
    conn: asyncpg.Connection, contracts: Iterable[LoadedContract], *, by: str = "cli"
) -> tuple[int, int]:
    """Upsert contracts/versions and their assets (owner, team, expected intervals). Returns (contracts, assets).
    An asset registered by another contract that is not retired keeps its owner (a hijack changes nothing)."""
    n_c = n_a = 0
    async with conn.transaction():
        for c in contracts:
            await conn.execute(
                "INSERT INTO registered_contracts (contract_id, version, name, status, source, registered_by) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (contract_id, version) DO UPDATE SET "
                "name = EXCLUDED.name, status = EXCLUDED.status, source = EXCLUDED.source, updated_at = now()",
                c.contract_id,
                c.version,
                c.name,
                c.status,
                c.source,
                by,
            )
            n_c += 1
            rows = [
                (
                    a.asset_id,
                    a.contract_id,
                    a.contract_version,
                    a.contract_name,
                    a.owner,
                    a.team,
                    a.domain,
                    json.dumps(expected_intervals(a)),
                    json.dumps(sla_targets(a)),
                )
                for a in c.assets
            ]
            await conn.executemany(
                "INSERT INTO contract_assets (asset, contract_id, contract_version, contract_name, owner, team, "
                "domain, expected_intervals, targets) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb) "
                "ON CONFLICT (asset) DO UPDATE SET contract_id = EXCLUDED.contract_id, "
                "contract_version = EXCLUDED.contract_version, contract_name = EXCLUDED.contract_name, "
                "owner = EXCLUDED.owner, team = EXCLUDED.team, domain = EXCLUDED.domain, "
                "expected_intervals = EXCLUDED.expected_intervals, targets = EXCLUDED.targets, updated_at = now() "
                # the first owner keeps an asset (as the processors' registry does) until it is retired
                "WHERE contract_assets.contract_id = EXCLUDED.contract_id OR NOT EXISTS (SELECT 1 FROM "
                "registered_contracts r WHERE r.contract_id = contract_assets.contract_id AND r.status <> 'retired')",
                rows,
            )
            n_a += len(rows)
    return n_c, n_a


def now_utc() -> datetime:
    return datetime.now(UTC)
