"""SLA compliance engine: library API returning typed models (the CLI and the renderers are shells over it).

* **Window summary** (rolling 24 h / 7 d / 30 d ending at ``as_of``) — the whole UTC days inside the window from
  the daily aggregates, the partial first and last day from the raw check results; exact to the second.
* **Bucket series** (calendar day / ISO week / month overlapping the window) — computed from the daily
  aggregates (kept forever) plus the still-open interval of each key's newest result (from ``sla_status``).
  Buckets are whole calendar buckets, so the first one may start before the window.
* Compliance % per check type: freshness and availability are *time-weighted* (share of observed time within
  SLA; a result's status holds until the next result, see :mod:`~floe_stream.reporting.timeline`), schema drift
  and quality count *evaluations* (passed / (passed + failed)). Skipped/error results count neither way.
* Coverage = checks run / checks expected, where expected = window length / the asset's expected interval
  (freshness: one arrival per SLA threshold; drift 1 h, quality 6 h, availability 5 min; contract overrides in
  ``floe.intervals``), capped at 100 %.
* Violations = episodes opened in the window (by type and highest severity); MTTR = mean duration of the
  episodes resolved in the window.
* Trend of a bucket series: see :func:`~floe_stream.reporting.timeline.trend` (least squares, ±2 pp).
* Overall compliance = mean of the per-(asset, check type) compliance figures that exist.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from floe_stream.durations import format_duration, parse_duration
from floe_stream.reporting.timeline import (
    RANK_SEVERITY,
    SEVERITY_RANK,
    Bucket,
    Trend,
    basis_of,
    bucket_label,
    bucket_start,
    buckets_between,
    compliance_pct,
    day_of,
    midnight,
    next_bucket,
    split_by_day,
    trend,
)
from floe_stream.settings import DEFAULT_TARGETS

WINDOWS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


Verdict = Literal["breaching", "at_risk", "ok", "no_data"]
TargetSource = Literal["contract", "slo", "default", "--fail-under"]
VERDICT_RANK: dict[str, int] = {"breaching": 0, "at_risk": 1, "ok": 2, "no_data": 3}
SORTS = ("status", "compliance", "budget", "asset")


class ReportError(Exception):
    """A report that cannot be produced (unknown filter value, empty history); the message says why."""


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BucketPoint(_M):
    start: date
    end: date = Field(description="exclusive")
    label: str
    compliance_pct: float | None
    checks_run: int
    passed: int
    failed: int
    minutes_observed: float
    minutes_within_sla: float
    uptime_ratio: float | None
    metric_avg: float | None
    metric_min: float | None
    metric_max: float | None
    worst_severity: str | None
    violations: int


class CheckSeries(_M):
    check_type: str
    basis: Literal["time", "evaluations"]
    points: list[BucketPoint]
    trend: Trend
    trend_change_pp: float


class CheckSummary(_M):
    check_type: str
    basis: Literal["time", "evaluations"]
    compliance_pct: float | None
    checks_run: int
    passed: int
    failed: int
    skipped: int
    errored: int
    minutes_observed: float = Field(description="time with a known status (pass or fail)")
    minutes_within_sla: float
    minutes_breached: float
    minutes_unknown: float
    uptime_ratio: float | None = Field(description="within / observed time")
    expected_checks: float | None
    coverage_pct: float | None
    worst_severity: str | None
    metric_avg: float | None = Field(description="quality score for quality, data age (s) for freshness …")
    metric_min: float | None
    metric_max: float | None
    violations: int = Field(description="episodes opened in the window")
    violations_by_severity: dict[str, int]
    episodes_resolved: int
    mttr_s: float | None
    current_status: str | None
    consecutive_failures: int
    trend: Trend
    trend_change_pp: float
    target_pct: float | None = Field(default=None, description="what compliance is judged against")
    target_source: TargetSource | None = None
    error_budget_left_pct: float | None = Field(
        default=None,
        description="share of the allowed non-compliance (100 - target) not yet used; < 0 = overspent",
    )
    status: Verdict = "no_data"
    below_target_pp: float | None = Field(default=None, description="target - compliance when breaching")
    since: datetime | None = Field(
        default=None, description="breaching or failing since (bucket start or last pass)"
    )
    reason: str = ""
    coverage_from: datetime | None = Field(
        default=None, description="first result, when after the window start: coverage counts from there"
    )


class AssetCompliance(_M):
    asset: str
    contract_id: str | None
    owner: str | None
    team: str | None
    compliance_pct: float | None
    checks: list[CheckSummary]
    series: list[CheckSeries]
    status: Verdict = "no_data"
    last_run_failed: str | None = Field(
        default=None,
        description="the producing run failed (an OpenLineage FAIL/ABORT) and the asset was not produced since, as "
        "its latest violation in the window says (context last_run.failed)",
    )


class Attention(_M):
    """One (asset, check) that breaches its target or is at risk: who, how far, since when, where to look."""

    asset: str
    owner: str | None
    contract_id: str | None
    check_type: str
    status: Verdict
    compliance_pct: float | None
    target_pct: float | None
    below_target_pp: float | None
    error_budget_left_pct: float | None
    since: datetime | None
    reason: str
    command: str
    last_run_failed: str | None = None


class ViolationCount(_M):
    check_type: str
    severity: str
    episodes: int


class GroupCompliance(_M):
    """A roll-up of assets by contract, owner or team: the mean of their (asset, check) compliance figures."""

    kind: Literal["contract", "owner", "team"]
    name: str
    assets: int
    compliance_pct: float | None
    checks_run: int
    violations: int
    lowest_asset: str | None
    lowest_pct: float | None


class ComplianceReport(_M):
    generated_at: datetime
    as_of: datetime
    window: str
    window_start: datetime
    window_end: datetime
    bucket: Bucket
    filters: dict[str, str]
    compliance_pct: float | None
    checks_run: int
    coverage_pct: float | None
    episodes_opened: int
    episodes_resolved: int
    mttr_s: float | None
    totals: list[CheckSummary]
    violations: list[ViolationCount]
    groups: list[GroupCompliance]
    assets: list[AssetCompliance]
    attention: list[Attention] = Field(default_factory=list, description="breaching first, then at risk")
    assets_total: int = Field(default=0, description="assets before --top / --only-failing")

    def failing(self) -> list[tuple[AssetCompliance, CheckSummary]]:
        """Every (asset, check) below its target (the ``--fail-under`` gate): ``(asset, CheckSummary)`` pairs."""
        return [(a, c) for a in self.assets for c in a.checks if c.status == "breaching"]

    def has_data(self) -> bool:
        return any(c.compliance_pct is not None for a in self.assets for c in a.checks)

    def lowest(self) -> tuple[str, str, float] | None:
        """The lowest (asset, check type, compliance %) — what ``--fail-under`` gates on."""
        worst: tuple[str, str, float] | None = None
        for a in self.assets:
            for c in a.checks:
                if c.compliance_pct is not None and (worst is None or c.compliance_pct < worst[2]):
                    worst = (a.asset, c.check_type, c.compliance_pct)
        return worst


_WINDOW_SQL = """
WITH keys AS (
    SELECT asset, check_type FROM sla_status
    WHERE last_evaluated_at IS NOT NULL AND ($3::text[] IS NULL OR asset = ANY($3))
), base AS (
    SELECT c.asset, c.check_type, c.contract_id, c.result_id, c.status, c.severity, c.metric, c.evaluated_at,
           true AS inside
    FROM check_results c
    WHERE c.evaluated_at >= $1 AND c.evaluated_at < $2 AND ($3::text[] IS NULL OR c.asset = ANY($3))
    UNION ALL
    SELECT p.*, false FROM keys k CROSS JOIN LATERAL (
        SELECT c.asset, c.check_type, c.contract_id, c.result_id, c.status, c.severity, c.metric, c.evaluated_at
        FROM check_results c
        WHERE c.asset = k.asset AND c.check_type = k.check_type AND c.evaluated_at < $1
        ORDER BY c.evaluated_at DESC, c.result_id DESC LIMIT 1
    ) p
), r AS (
    SELECT *, LEAD(evaluated_at) OVER (PARTITION BY asset, check_type ORDER BY evaluated_at, result_id) AS next_at
    FROM base
), s AS (
    SELECT *, EXTRACT(EPOCH FROM (LEAST(COALESCE(next_at, $2), $2) - GREATEST(evaluated_at, $1)))::float8 AS secs
    FROM r
)
SELECT asset, check_type,
       (array_agg(contract_id ORDER BY evaluated_at DESC, result_id DESC))[1] AS contract_id,
       (count(*) FILTER (WHERE inside))::int AS checks_run,
       (count(*) FILTER (WHERE inside AND status = 'pass'))::int AS passed,
       (count(*) FILTER (WHERE inside AND status = 'fail'))::int AS failed,
       (count(*) FILTER (WHERE inside AND status = 'skipped'))::int AS skipped,
       (count(*) FILTER (WHERE inside AND status NOT IN ('pass', 'fail', 'skipped')))::int AS errored,
       COALESCE(sum(secs) FILTER (WHERE secs > 0 AND status = 'pass'), 0)::float8 AS within_s,
       COALESCE(sum(secs) FILTER (WHERE secs > 0 AND status = 'fail'), 0)::float8 AS breached_s,
       COALESCE(sum(secs) FILTER (WHERE secs > 0 AND status NOT IN ('pass', 'fail')), 0)::float8 AS unknown_s,
       max(CASE severity WHEN 'info' THEN 0 WHEN 'warning' THEN 1 WHEN 'error' THEN 2 WHEN 'critical' THEN 3 END)
           FILTER (WHERE inside) AS worst,
       (count(metric) FILTER (WHERE inside))::int AS metric_count,
       COALESCE(sum(metric) FILTER (WHERE inside), 0)::float8 AS metric_sum,
       min(metric) FILTER (WHERE inside) AS metric_min,
       max(metric) FILTER (WHERE inside) AS metric_max
FROM s
GROUP BY asset, check_type
HAVING count(*) FILTER (WHERE inside OR secs > 0) > 0
"""

_DAYS_SQL = """
SELECT asset, check_type, (array_agg(contract_id ORDER BY day DESC))[1] AS contract_id,
       sum(checks_run)::int AS checks_run, sum(passed)::int AS passed, sum(failed)::int AS failed,
       sum(skipped)::int AS skipped, sum(errored)::int AS errored, sum(within_s)::float8 AS within_s,
       sum(breached_s)::float8 AS breached_s, sum(unknown_s)::float8 AS unknown_s, max(worst_severity_rank) AS worst,
       sum(metric_count)::int AS metric_count, sum(metric_sum)::float8 AS metric_sum,
       min(metric_min) AS metric_min, max(metric_max) AS metric_max
FROM daily_aggregates
WHERE day >= $1 AND day <= $2 AND ($3::text[] IS NULL OR asset = ANY($3))
GROUP BY 1, 2
"""

_SUMS = (
    "checks_run",
    "passed",
    "failed",
    "skipped",
    "errored",
    "within_s",
    "breached_s",
    "unknown_s",
    "metric_count",
    "metric_sum",
)


async def _window(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    assets: list[str] | None,
    status: dict[tuple[str, str], Any],
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (asset, check type) figures over ``[start, end)``: the whole UTC days inside the window from the daily
    aggregates, the partial first and last days from raw rows (exact to the second), plus the still-open interval
    of keys whose newest result is older than the last day. Scales with days, not with results."""
    d0, d1 = day_of(start), day_of(end - timedelta(microseconds=1))
    if (d1 - d0).days < 2:
        parts = [await conn.fetch(_WINDOW_SQL, start, end, assets)]
    else:
        inner_lo, inner_hi = midnight(d0 + timedelta(days=1)), midnight(d1)
        parts = [
            await conn.fetch(_WINDOW_SQL, start, inner_lo, assets),
            await conn.fetch(_DAYS_SQL, d0 + timedelta(days=1), d1 - timedelta(days=1), assets),
            await conn.fetch(_WINDOW_SQL, inner_hi, end, assets),
        ]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rows in parts:  # later parts win for the contract id
        for r in rows:
            x = out.setdefault(
                (r["asset"], r["check_type"]),
                {
                    **dict.fromkeys(_SUMS, 0),
                    "worst": None,
                    "metric_min": None,
                    "metric_max": None,
                    "contract_id": None,
                },
            )
            for f in _SUMS:
                x[f] += r[f] or 0
            for f, pick in (("worst", max), ("metric_max", max), ("metric_min", min)):
                if r[f] is not None:
                    x[f] = r[f] if x[f] is None else pick(x[f], r[f])
            x["contract_id"] = r["contract_id"] or x["contract_id"]
    if (d1 - d0).days >= 2:
        for key, st in status.items():
            if st["last_evaluated_at"] >= inner_hi:
                continue
            x = out.setdefault(
                key,
                {
                    **dict.fromkeys(_SUMS, 0),
                    "worst": None,
                    "metric_min": None,
                    "metric_max": None,
                    "contract_id": st["contract_id"],
                },
            )
            secs = (inner_hi - max(st["last_evaluated_at"], inner_lo)).total_seconds()
            field = {"pass": "within_s", "fail": "breached_s"}.get(st["last_status"], "unknown_s")
            x[field] += max(0.0, secs)
    for x in out.values():
        x["metric_avg"] = x["metric_sum"] / x["metric_count"] if x["metric_count"] else None
    return out


_BUCKET_SQL = """
SELECT asset, check_type, date_trunc($1, day::timestamp)::date AS b,
       sum(checks_run)::int AS checks_run, sum(passed)::int AS passed, sum(failed)::int AS failed,
       sum(within_s)::float8 AS within_s, sum(breached_s)::float8 AS breached_s,
       max(worst_severity_rank) AS worst, sum(metric_count)::int AS metric_count,
       sum(metric_sum)::float8 AS metric_sum, min(metric_min) AS metric_min, max(metric_max) AS metric_max
FROM daily_aggregates
WHERE day >= $2 AND day <= $3 AND ($4::text[] IS NULL OR asset = ANY($4))
GROUP BY 1, 2, 3
"""


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


async def _resolve_assets(
    conn: asyncpg.Connection,
    contract: str | None,
    wanted: list[str],
    owner: str | None,
    team: str | None,
    allow_unknown: bool = False,
) -> list[str] | None:
    sets: list[set[str]] = []
    if contract:
        rows = await conn.fetch(
            "SELECT asset FROM contract_assets WHERE contract_id = $1 "
            "UNION SELECT asset FROM sla_status WHERE contract_id = $1",
            contract,
        )
        known = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM registered_contracts WHERE contract_id = $1)", contract
        )
        if not rows and not known:
            names = [
                r[0]
                for r in await conn.fetch(
                    "SELECT contract_id FROM registered_contracts UNION SELECT contract_id FROM sla_status "
                    "WHERE contract_id IS NOT NULL ORDER BY 1 LIMIT 20"
                )
            ]
            raise ReportError(
                f"unknown contract {contract!r}" + (f" (known: {', '.join(names)})" if names else "")
            )
        sets.append({r[0] for r in rows})
    for col, value in (("owner", owner), ("team", team)):
        if value:
            rows = await conn.fetch(
                f"SELECT asset FROM contract_assets WHERE lower({col}) = lower($1)", value
            )
            if not rows:
                names = [
                    r[0]
                    for r in await conn.fetch(
                        f"SELECT DISTINCT {col} FROM contract_assets WHERE {col} IS NOT NULL ORDER BY 1 LIMIT 20"
                    )
                ]
                hint = (
                    f" (known: {', '.join(names)})"
                    if names
                    else " (no contracts registered: `floe contracts register DIR`)"
                )
                raise ReportError(f"no asset with {col} {value!r}{hint}")
            sets.append({r[0] for r in rows})
    if wanted:
        found = {
            r[0]
            for r in await conn.fetch(
                "SELECT asset FROM sla_status WHERE asset = ANY($1) UNION SELECT asset FROM contract_assets "
                "WHERE asset = ANY($1)",
                wanted,
            )
        }
        missing = [a for a in wanted if a not in found]
        if missing and not allow_unknown:
            near = await _near_assets(conn, missing[0])
            raise ReportError(
                f"unknown asset {', '.join(map(repr, missing))}: no check results and no registered contract "
                "mention it" + (f" (did you mean {', '.join(near)}?)" if near else "")
            )
        sets.append(set(wanted) - set(missing))
    if not sets:
        return None
    out = set.intersection(*sets)
    return sorted(out)


async def _first_seen(
    conn: asyncpg.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], datetime]:
    """The first result of each key (raw rows, else the first aggregated day once raw rows are pruned)."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT k.asset, k.check_type, "
        "(SELECT min(c.evaluated_at) FROM check_results c WHERE c.asset = k.asset AND c.check_type = k.check_type) "
        "AS first_at, (SELECT min(d.day) FROM daily_aggregates d WHERE d.asset = k.asset AND "
        "d.check_type = k.check_type) AS first_day FROM unnest($1::text[], $2::text[]) AS k(asset, check_type)",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    out: dict[tuple[str, str], datetime] = {}
    for r in rows:
        first_at, first_day = r["first_at"], r["first_day"]
        if first_at is not None and (first_day is None or day_of(first_at) <= first_day):
            out[(r["asset"], r["check_type"])] = first_at
        elif first_day is not None:  # raw rows of the first days pruned: the first aggregated day
            out[(r["asset"], r["check_type"])] = midnight(first_day)
    return out


async def _near_assets(conn: asyncpg.Connection, name: str) -> list[str]:
    import difflib

    known = [
        r[0] for r in await conn.fetch("SELECT asset FROM sla_status UNION SELECT asset FROM contract_assets")
    ]
    return difflib.get_close_matches(name, known, n=3, cutoff=0.6)


async def build_report(
    conn: asyncpg.Connection,
    *,
    window: str | timedelta = "30d",
    by: Bucket = "day",
    as_of: datetime | None = None,
    contract: str | None = None,
    asset: str | Sequence[str] | None = None,
    owner: str | None = None,
    team: str | None = None,
    default_targets: dict[str, float] | None = None,
    fail_under: float | None = None,
    at_risk_budget_pct: float = 25.0,
    allow_unknown: bool = False,
) -> ComplianceReport:
    """The compliance report over the rolling ``window`` ending at ``as_of`` (default now), with bucket series:
    :func:`fetch_history` (PostgreSQL) → :func:`summarize` (per asset and check type) → :func:`roll_up`.

    Each (asset, check type) is judged against ``fail_under`` when given, else its contract's target, else
    ``default_targets[check type]`` (:data:`~floe_stream.settings.DEFAULT_TARGETS`). Assets come worst first.
    ``allow_unknown``: an asset id nothing knows yields an empty report instead of a :class:`ReportError`.
    """
    if isinstance(window, timedelta):
        span, window = window, format_duration(window, "exact")
    elif window in WINDOWS:
        span = WINDOWS[window]
    else:
        try:
            span = parse_duration(window)
        except ValueError as exc:
            raise ReportError(f"window: {exc}") from None
    end = (as_of or datetime.now(UTC)).astimezone(UTC)
    wanted = [asset] if isinstance(asset, str) else list(asset or [])
    filters = {
        k: v
        for k, v in (("contract", contract), ("asset", ",".join(wanted)), ("owner", owner), ("team", team))
        if v
    }
    history = await fetch_history(
        conn,
        end - span,
        end,
        by,
        contract=contract,
        assets=wanted,
        owner=owner,
        team=team,
        allow_unknown=allow_unknown,
    )
    targets = Targets(
        fail_under=fail_under,
        defaults=DEFAULT_TARGETS if default_targets is None else default_targets,
        at_risk_budget_pct=at_risk_budget_pct,
    )
    return roll_up(
        history,
        summarize(history),
        targets,
        window=window,
        by=by,
        filters=filters,
        generated_at=datetime.now(UTC),
    )


Key = tuple[str, str]
"""(asset, check type)"""


@dataclass(frozen=True)
class History:
    """What a report reads from the SLA history for ``[start, end)``, as stored: no judgement yet."""

    start: datetime
    end: datetime
    meta: dict[str, Mapping[str, Any]]
    """asset → its registered contract (contract_id, owner, team, expected_intervals, targets)"""
    status: dict[Key, Mapping[str, Any]]
    """the current SLA status (the newest result)"""
    window: dict[Key, dict[str, Any]]
    """figures over the window (:func:`_window`)"""
    opened: dict[Key, dict[str, int]]
    """episodes opened in the window, by severity"""
    resolved: dict[Key, tuple[int, float | None]]
    """episodes resolved in the window and their mean time to repair"""
    series: dict[Key, CheckSeries]
    """the bucket series"""
    first_seen: dict[Key, datetime]
    """the first result of each key"""
    run_failed: dict[str, str] = field(default_factory=dict)
    """asset → what its newest violation in the window says of its producing run (context last_run.failed)"""

    def all_keys(self) -> list[Key]:
        """Every key with figures, a series, or an expected cadence: registered assets whose checks never ran in
        the window still show up (coverage 0 %, compliance n/a)."""
        expected = {
            (a, ct)
            for a, m in self.meta.items()
            if m["expected_intervals"]
            for ct in json.loads(m["expected_intervals"])
        }
        return sorted(set(self.window) | set(self.series) | expected)


async def fetch_history(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    by: Bucket,
    *,
    contract: str | None = None,
    assets: list[str] | None = None,
    owner: str | None = None,
    team: str | None = None,
    allow_unknown: bool = False,
) -> History:
    """One read per table for the report's assets (all when no filter is given); :class:`ReportError` when the
    history is empty or a filter names nothing known."""
    has_data = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM check_results) OR EXISTS (SELECT 1 FROM daily_aggregates)"
    )
    if not has_data:
        raise ReportError(
            "the SLA history is empty: no check results recorded yet (is `floe run sink postgres` running?)"
        )
    chosen = await _resolve_assets(conn, contract, assets or [], owner, team, allow_unknown)
    meta = {
        r["asset"]: r
        for r in await conn.fetch(
            "SELECT asset, contract_id, owner, team, expected_intervals, targets FROM contract_assets "
            "WHERE ($1::text[] IS NULL OR asset = ANY($1))",
            chosen,
        )
    }
    status = {
        (r["asset"], r["check_type"]): r
        for r in await conn.fetch(
            "SELECT * FROM sla_status WHERE last_evaluated_at IS NOT NULL AND ($1::text[] IS NULL OR asset = ANY($1))",
            chosen,
        )
    }
    win = await _window(conn, start, end, chosen, status)
    opened: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in await conn.fetch(
        "SELECT asset, violation_type, severity, count(*)::int AS n FROM violation_episodes "
        "WHERE opened_at >= $1 AND opened_at < $2 AND ($3::text[] IS NULL OR asset = ANY($3)) GROUP BY 1, 2, 3",
        start,
        end,
        chosen,
    ):
        opened[(r["asset"], r["violation_type"])][r["severity"]] += r["n"]
    resolved = {
        (r["asset"], r["violation_type"]): (r["n"], r["mttr"])
        for r in await conn.fetch(
            "SELECT asset, violation_type, count(*)::int AS n, avg(duration_s) AS mttr FROM violation_episodes "
            "WHERE resolved_at >= $1 AND resolved_at < $2 AND ($3::text[] IS NULL OR asset = ANY($3)) GROUP BY 1, 2",
            start,
            end,
            chosen,
        )
    }
    series = await _series(conn, start, end, by, chosen, status)
    run_failed = {
        r["asset"]: r["failed"]
        for r in await conn.fetch(
            "SELECT DISTINCT ON (asset) asset, payload->'data'->'context'->>'last_run.failed' AS failed "
            "FROM violation_events WHERE event_type = 'floe.contract.violation' AND occurred_at >= $1 "
            "AND occurred_at < $2 AND ($3::text[] IS NULL OR asset = ANY($3)) ORDER BY asset, occurred_at DESC",
            start,
            end,
            chosen,
        )
        if r["failed"]
    }
    history = History(
        start, end, meta, status, win, opened, resolved, series, first_seen={}, run_failed=run_failed
    )
    keys = [k for k in history.all_keys() if k in win or k in status]
    return replace(history, first_seen=await _first_seen(conn, keys))


@dataclass(frozen=True)
class Summary:
    """Every (asset, check type) summarized, by asset, and the contract each asset belongs to."""

    checks: dict[str, list[CheckSummary]]
    contract_of: dict[str, str | None]


def summarize(h: History) -> Summary:
    """The :class:`CheckSummary` of every key of the history (pure)."""
    per_asset: dict[str, list[CheckSummary]] = defaultdict(list)
    contract_of: dict[str, str | None] = {}
    for key in h.all_keys():
        a = key[0]
        w, st, m = h.window.get(key), h.status.get(key), h.meta.get(a)
        contract_of.setdefault(
            a,
            (w["contract_id"] if w else None)
            or (st["contract_id"] if st else None)
            or (m["contract_id"] if m else None),
        )
        per_asset[a].append(_summary(h, key, w, st, m))
    return Summary(per_asset, contract_of)


def _summary(
    h: History,
    key: Key,
    w: Mapping[str, Any] | None,
    st: Mapping[str, Any] | None,
    m: Mapping[str, Any] | None,
) -> CheckSummary:
    ct = key[1]
    basis = basis_of(ct)
    within = float(w["within_s"]) if w else 0.0
    breached = float(w["breached_s"]) if w else 0.0
    unknown = float(w["unknown_s"]) if w else 0.0
    passed = int(w["passed"]) if w else 0
    failed = int(w["failed"]) if w else 0
    checks_run = int(w["checks_run"]) if w else 0
    intervals = json.loads(m["expected_intervals"]) if m and m["expected_intervals"] else {}
    interval = intervals.get(ct)
    # expected checks over the time the key existed in the window: 3 days of data in a 7-day window is not
    # 43 % coverage; a key that never ran is expected over the whole window
    since = max(h.start, h.first_seen[key]) if key in h.first_seen else h.start
    expected = (h.end - since).total_seconds() / float(interval) if interval and since < h.end else None
    coverage = min(100.0, 100.0 * checks_run / expected) if expected else None
    by_sev = dict(sorted(h.opened.get(key, {}).items(), key=lambda kv: SEVERITY_RANK.get(kv[0], 9)))
    n_res, mttr = h.resolved.get(key, (0, None))
    s = h.series.get(key)
    observed = within + breached
    return CheckSummary(
        check_type=ct,
        basis=basis,
        compliance_pct=_r(compliance_pct(basis, within, breached, passed, failed)),
        checks_run=checks_run,
        passed=passed,
        failed=failed,
        skipped=int(w["skipped"]) if w else 0,
        errored=int(w["errored"]) if w else 0,
        minutes_observed=round(observed / 60, 4),
        minutes_within_sla=round(within / 60, 4),
        minutes_breached=round(breached / 60, 4),
        minutes_unknown=round(unknown / 60, 4),
        uptime_ratio=_r(within / observed, 6) if observed > 0 else None,
        expected_checks=_r(expected, 2),
        coverage_pct=_r(coverage, 2),
        coverage_from=since if since > h.start else None,
        worst_severity=RANK_SEVERITY.get(w["worst"]) if w and w["worst"] is not None else None,
        metric_avg=_r(w["metric_avg"], 6) if w else None,
        metric_min=_r(w["metric_min"], 6) if w else None,
        metric_max=_r(w["metric_max"], 6) if w else None,
        violations=sum(by_sev.values()),
        violations_by_severity=by_sev,
        episodes_resolved=n_res,
        mttr_s=_r(mttr, 3),
        current_status=st["last_status"] if st else None,
        consecutive_failures=int(st["consecutive_failures"]) if st else 0,
        trend=s.trend if s else "stable",
        trend_change_pp=s.trend_change_pp if s else 0.0,
    )


@dataclass(frozen=True)
class Targets:
    """What each (asset, check type) is judged against: ``fail_under`` for all, else the contract's target,
    else ``defaults[check type]`` (99 % for a type without one)."""

    fail_under: float | None = None
    defaults: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    at_risk_budget_pct: float = 25.0

    def of(self, check_type: str, stated: Mapping[str, Any]) -> tuple[float, str]:
        """(target %, where it comes from) given the contract's stated targets."""
        if self.fail_under is not None:
            return self.fail_under, "--fail-under"
        if check_type in stated:
            return float(stated[check_type]["pct"]), stated[check_type].get("source", "contract")
        return self.defaults.get(check_type, 99.0), "default"


def roll_up(
    h: History,
    summary: Summary,
    targets: Targets,
    *,
    window: str,
    by: Bucket,
    filters: dict[str, str],
    generated_at: datetime,
) -> ComplianceReport:
    """Judge every check against its target, then roll up per asset, per check type and overall (pure)."""
    asset_rows = sorted(
        (
            _asset_row(h, a, summary.checks[a], summary.contract_of.get(a), targets)
            for a in sorted(summary.checks)
        ),
        key=asset_order("status"),
    )
    all_pcts = [c.compliance_pct for a in asset_rows for c in a.checks if c.compliance_pct is not None]
    violations = [
        ViolationCount(check_type=ct, severity=sev, episodes=n)
        for (ct, sev), n in sorted(
            _sum_violations(h.opened).items(), key=lambda kv: (kv[0][0], SEVERITY_RANK.get(kv[0][1], 9))
        )
    ]
    n_resolved = sum(n for n, _ in h.resolved.values())
    mttr_all = (
        sum(n * float(m) for n, m in h.resolved.values() if m is not None) / n_resolved
        if n_resolved
        else None
    )
    expected_total = sum(c.expected_checks or 0 for a in asset_rows for c in a.checks)
    run_total = sum(c.checks_run for a in asset_rows for c in a.checks if c.expected_checks)
    return ComplianceReport(
        generated_at=generated_at,
        as_of=h.end,
        window=window,
        window_start=h.start,
        window_end=h.end,
        bucket=by,
        filters=filters,
        compliance_pct=_r(sum(all_pcts) / len(all_pcts)) if all_pcts else None,
        checks_run=sum(c.checks_run for a in asset_rows for c in a.checks),
        coverage_pct=_r(min(100.0, 100.0 * run_total / expected_total), 2) if expected_total else None,
        episodes_opened=sum(v.episodes for v in violations),
        episodes_resolved=n_resolved,
        mttr_s=_r(mttr_all, 3),
        totals=_totals(asset_rows, by),
        violations=violations,
        groups=_groups(asset_rows),
        assets=asset_rows,
        attention=_attention(asset_rows, window),
        assets_total=len(asset_rows),
    )


def _asset_row(
    h: History, a: str, summaries: list[CheckSummary], contract_id: str | None, targets: Targets
) -> AssetCompliance:
    m = h.meta.get(a)
    stated = json.loads(m["targets"]) if m and m["targets"] else {}
    checks = sorted(
        (
            judge(
                c,
                *targets.of(c.check_type, stated),
                h.series.get((a, c.check_type)),
                h.status.get((a, c.check_type)),
                targets.at_risk_budget_pct,
            )
            for c in summaries
        ),
        key=_check_order,
    )
    pcts = [c.compliance_pct for c in checks if c.compliance_pct is not None]
    return AssetCompliance(
        asset=a,
        contract_id=contract_id,
        owner=m["owner"] if m else None,
        team=m["team"] if m else None,
        compliance_pct=_r(sum(pcts) / len(pcts)) if pcts else None,
        checks=checks,
        series=[h.series[(a, c.check_type)] for c in checks if (a, c.check_type) in h.series],
        status=min((c.status for c in checks), key=VERDICT_RANK.__getitem__, default="no_data"),
        last_run_failed=h.run_failed.get(a),
    )


def judge(
    c: CheckSummary,
    target: float,
    source: str,
    series: CheckSeries | None,
    st: Any,
    at_risk_budget_pct: float = 25.0,
) -> CheckSummary:
    """The verdict of one (asset, check) against its target: breaching (below target), at risk (error budget
    nearly spent, degrading trend, or failing right now), ok, or no data; with how far, since when and why."""
    pct = c.compliance_pct
    upd: dict[str, Any] = {"target_pct": target, "target_source": source}
    if pct is None:
        return c.model_copy(update={**upd, "status": "no_data", "reason": "no result in the window"})
    allowed, used = 100.0 - target, 100.0 - pct
    left = 100.0 * (allowed - used) / allowed if allowed > 0 else (100.0 if used <= 0 else -100.0)
    upd["error_budget_left_pct"] = round(max(left, -999.0), 2)
    failing_now = c.current_status == "fail"
    since: datetime | None = None
    if pct < target:
        below = target - pct
        upd.update(status="breaching", below_target_pp=round(below, 4))
        reason = f"{_p(pct)} < target {_p(target)} ({below:.1f} pp below)"
        since = _below_since(series, target)
    elif left < at_risk_budget_pct or c.trend == "degrading" or failing_now:
        upd["status"] = "at_risk"
        parts = []
        if left < at_risk_budget_pct:
            parts.append(f"{max(left, 0):.0f} % of the error budget left")
        if c.trend == "degrading":
            parts.append(f"degrading ({c.trend_change_pp:+.1f} pp)")
        if failing_now:
            parts.append(f"failing now ({c.consecutive_failures} in a row)")
        reason = ", ".join(parts)
    else:
        upd["status"] = "ok"
        reason = f"{_p(pct)} ≥ target {_p(target)}"
    if failing_now and st is not None:
        since = since or st["last_pass_at"] or None
        reason += f"; failing now ({c.consecutive_failures} in a row)" if "failing now" not in reason else ""
    upd.update(reason=reason, since=since)
    return c.model_copy(update=upd)


def _p(x: float) -> str:
    return f"{x:.1f} %" if round(x, 1) != 100.0 or x == 100.0 else f"{x:.2f} %"


def _below_since(series: CheckSeries | None, target: float) -> datetime | None:
    """Start of the trailing run of buckets below target (else of the first bucket below target)."""
    if series is None:
        return None
    pts = [p for p in series.points if p.compliance_pct is not None]
    run: date | None = None
    for p in reversed(pts):
        if p.compliance_pct is not None and p.compliance_pct < target:
            run = p.start
        else:
            break
    if run is None:
        run = next((p.start for p in pts if p.compliance_pct is not None and p.compliance_pct < target), None)
    return midnight(run) if run else None


def _check_order(c: CheckSummary) -> tuple[Any, ...]:
    return (VERDICT_RANK[c.status], -(c.below_target_pp or 0.0), _budget(c), c.check_type)


def _budget(c: CheckSummary) -> float:
    return c.error_budget_left_pct if c.error_budget_left_pct is not None else 1e9


def asset_order(sort: str) -> Callable[[AssetCompliance], tuple[Any, ...]]:
    """Sort keys of ``--sort``: status (worst first), compliance (lowest first), budget (least left), asset."""
    if sort == "asset":
        return lambda a: (a.asset,)
    if sort == "compliance":
        return lambda a: (a.compliance_pct is None, a.compliance_pct or 0.0, a.asset)
    if sort == "budget":
        return lambda a: (min((_budget(c) for c in a.checks), default=1e9), a.asset)
    return lambda a: (
        VERDICT_RANK[a.status],
        -max((c.below_target_pp or 0.0 for c in a.checks), default=0.0),
        min((_budget(c) for c in a.checks), default=1e9),
        a.asset,
    )


def _attention(assets: list[AssetCompliance], window: str) -> list[Attention]:
    out = []
    for a in assets:
        for c in a.checks:
            if c.status in ("breaching", "at_risk"):
                out.append(
                    Attention(
                        asset=a.asset,
                        owner=a.owner or a.team,
                        contract_id=a.contract_id,
                        check_type=c.check_type,
                        status=c.status,
                        compliance_pct=c.compliance_pct,
                        target_pct=c.target_pct,
                        below_target_pp=c.below_target_pp,
                        error_budget_left_pct=c.error_budget_left_pct,
                        since=c.since,
                        reason=c.reason,
                        last_run_failed=a.last_run_failed,
                        command=f"floe sla report --asset {shlex.quote(a.asset)} --window {window} --by day",
                    )
                )
    out.sort(
        key=lambda x: (
            VERDICT_RANK[x.status],
            -(x.below_target_pp or 0.0),
            x.error_budget_left_pct if x.error_budget_left_pct is not None else 1e9,
            x.asset,
        )
    )
    return out


def arrange(
    report: ComplianceReport, sort: str = "status", top: int | None = None, only_failing: bool = False
) -> ComplianceReport:
    """The assets to show: ``--sort``, ``--only-failing`` (breaching assets), ``--top N``. Totals, groups and the
    "needs attention" list still cover every selected asset."""
    if sort not in SORTS:
        raise ReportError(f"unknown sort {sort!r} (use {', '.join(SORTS)})")
    rows = sorted(report.assets, key=asset_order(sort))
    if only_failing:
        rows = [a for a in rows if a.status == "breaching"]
    if top is not None:
        rows = rows[:top]
    return report.model_copy(update={"assets": rows})


def _groups(assets: list[AssetCompliance]) -> list[GroupCompliance]:
    members: dict[tuple[str, str], list[AssetCompliance]] = defaultdict(list)
    for a in assets:
        for kind, name in (("contract", a.contract_id), ("owner", a.owner), ("team", a.team)):
            if name:
                members[(kind, name)].append(a)
    out = []
    for (kind, name), group in sorted(members.items()):
        pcts = [c.compliance_pct for a in group for c in a.checks if c.compliance_pct is not None]
        scored = [a for a in group if a.compliance_pct is not None]
        low = min(scored, key=lambda a: a.compliance_pct or 0.0, default=None)
        out.append(
            GroupCompliance(
                kind=kind,
                name=name,
                assets=len(group),  # type: ignore[arg-type]
                compliance_pct=_r(sum(pcts) / len(pcts)) if pcts else None,
                checks_run=sum(c.checks_run for a in group for c in a.checks),
                violations=sum(c.violations for a in group for c in a.checks),
                lowest_asset=low.asset if low else None,
                lowest_pct=low.compliance_pct if low else None,
            )
        )
    return out


def _sum_violations(opened: dict[tuple[str, str], dict[str, int]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for (_, ct), sev in opened.items():
        for s, n in sev.items():
            out[(ct, s)] += n
    return out


async def _series(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    by: Bucket,
    assets: list[str] | None,
    status: dict[tuple[str, str], Any],
) -> dict[tuple[str, str], CheckSeries]:
    last_day = day_of(end - timedelta(microseconds=1))
    starts = buckets_between(day_of(start), last_day, by)
    first = starts[0]
    acc: dict[tuple[str, str], dict[date, dict[str, Any]]] = defaultdict(dict)

    def slot(key: tuple[str, str], b: date) -> dict[str, Any]:
        return acc[key].setdefault(
            b,
            {
                "checks_run": 0,
                "passed": 0,
                "failed": 0,
                "within_s": 0.0,
                "breached_s": 0.0,
                "worst": None,
                "metric_count": 0,
                "metric_sum": 0.0,
                "metric_min": None,
                "metric_max": None,
                "violations": 0,
            },
        )

    for r in await conn.fetch(_BUCKET_SQL, by, first, last_day, assets):
        slot((r["asset"], r["check_type"]), r["b"]).update(r.items())
    # the newest result's status still holds: from its time to `end`
    for key, st in status.items():
        t0 = max(st["last_evaluated_at"], midnight(first))
        if t0 >= end:
            continue
        for d, secs in split_by_day(t0, end):
            x = slot(key, bucket_start(d, by))
            if st["last_status"] == "pass":
                x["within_s"] += secs
            elif st["last_status"] == "fail":
                x["breached_s"] += secs
    trunc = {"day": "day", "week": "week", "month": "month"}[by]
    for r in await conn.fetch(
        "SELECT asset, violation_type, date_trunc($1, opened_at AT TIME ZONE 'UTC')::date AS b, count(*)::int AS n "
        "FROM violation_episodes WHERE opened_at >= $2 AND opened_at < $3 AND ($4::text[] IS NULL OR asset = ANY($4)) "
        "GROUP BY 1, 2, 3",
        trunc,
        midnight(first),
        end,
        assets,
    ):
        key = (r["asset"], r["violation_type"])
        if key in acc:
            slot(key, r["b"])["violations"] += r["n"]

    out: dict[tuple[str, str], CheckSeries] = {}
    ends = {b: next_bucket(b, by) for b in starts}
    labels = {b: bucket_label(b, by) for b in starts}
    for key, by_bucket in acc.items():
        basis = basis_of(key[1])
        points = []
        for b in starts:
            got = by_bucket.get(b)
            if got is None:
                points.append(
                    BucketPoint(
                        start=b,
                        end=ends[b],
                        label=labels[b],
                        compliance_pct=None,
                        checks_run=0,
                        passed=0,
                        failed=0,
                        minutes_observed=0.0,
                        minutes_within_sla=0.0,
                        uptime_ratio=None,
                        metric_avg=None,
                        metric_min=None,
                        metric_max=None,
                        worst_severity=None,
                        violations=0,
                    )
                )
                continue
            x = got
            observed = x["within_s"] + x["breached_s"]
            points.append(
                BucketPoint(
                    start=b,
                    end=ends[b],
                    label=labels[b],
                    compliance_pct=_r(
                        compliance_pct(basis, x["within_s"], x["breached_s"], x["passed"], x["failed"])
                    ),
                    checks_run=x["checks_run"],
                    passed=x["passed"],
                    failed=x["failed"],
                    minutes_observed=round(observed / 60, 4),
                    minutes_within_sla=round(x["within_s"] / 60, 4),
                    uptime_ratio=_r(x["within_s"] / observed, 6) if observed > 0 else None,
                    metric_avg=_r(x["metric_sum"] / x["metric_count"], 6) if x["metric_count"] else None,
                    metric_min=_r(x["metric_min"], 6),
                    metric_max=_r(x["metric_max"], 6),
                    worst_severity=RANK_SEVERITY.get(x["worst"]) if x["worst"] is not None else None,
                    violations=x["violations"],
                )
            )
        direction, change = trend([p.compliance_pct for p in points])
        out[key] = CheckSeries(
            check_type=key[1], basis=basis, points=points, trend=direction, trend_change_pp=change
        )
    return out


def _totals(assets: list[AssetCompliance], by: Bucket) -> list[CheckSummary]:
    """Per check type across assets: time-weighted types pool the minutes, evaluation types pool the counts."""
    groups: dict[str, list[CheckSummary]] = defaultdict(list)
    series: dict[str, list[CheckSeries]] = defaultdict(list)
    for a in assets:
        for c in a.checks:
            groups[c.check_type].append(c)
        for s in a.series:
            series[s.check_type].append(s)
    out = []
    for ct in sorted(groups):
        cs = groups[ct]
        basis = basis_of(ct)
        within = sum(c.minutes_within_sla for c in cs)
        breached = sum(c.minutes_breached for c in cs)
        passed, failed = sum(c.passed for c in cs), sum(c.failed for c in cs)
        by_sev: dict[str, int] = defaultdict(int)
        for c in cs:
            for k, v in c.violations_by_severity.items():
                by_sev[k] += v
        n_res = sum(c.episodes_resolved for c in cs)
        mttr = sum(c.episodes_resolved * (c.mttr_s or 0) for c in cs) / n_res if n_res else None
        expected = sum(c.expected_checks or 0 for c in cs)
        run_exp = sum(c.checks_run for c in cs if c.expected_checks)
        # series of the pooled compliance per bucket
        pooled: list[float | None] = []
        for i in range(max((len(s.points) for s in series[ct]), default=0)):
            pts = [s.points[i] for s in series[ct] if i < len(s.points)]
            w = sum(p.minutes_within_sla for p in pts)
            o = sum(p.minutes_observed for p in pts)
            pooled.append(
                compliance_pct(basis, w, o - w, sum(p.passed for p in pts), sum(p.failed for p in pts))
            )
        direction, change = trend(pooled)
        metrics = [c for c in cs if c.metric_avg is not None]
        runs = sum(c.checks_run for c in metrics)
        out.append(
            CheckSummary(
                check_type=ct,
                basis=basis,
                compliance_pct=_r(compliance_pct(basis, within, breached, passed, failed)),
                checks_run=sum(c.checks_run for c in cs),
                passed=passed,
                failed=failed,
                skipped=sum(c.skipped for c in cs),
                errored=sum(c.errored for c in cs),
                minutes_observed=round(within + breached, 4),
                minutes_within_sla=round(within, 4),
                minutes_breached=round(breached, 4),
                minutes_unknown=round(sum(c.minutes_unknown for c in cs), 4),
                uptime_ratio=_r(within / (within + breached), 6) if within + breached > 0 else None,
                expected_checks=_r(expected, 2) if expected else None,
                coverage_pct=_r(min(100.0, 100.0 * run_exp / expected), 2) if expected else None,
                worst_severity=max(
                    (c.worst_severity for c in cs if c.worst_severity),
                    key=lambda s: SEVERITY_RANK.get(s, -1),
                    default=None,
                ),
                metric_avg=_r(sum((c.metric_avg or 0) * c.checks_run for c in metrics) / runs, 6)
                if runs
                else None,
                metric_min=min((c.metric_min for c in cs if c.metric_min is not None), default=None),
                metric_max=max((c.metric_max for c in cs if c.metric_max is not None), default=None),
                violations=sum(by_sev.values()),
                violations_by_severity=dict(by_sev),
                episodes_resolved=n_res,
                mttr_s=_r(mttr, 3),
                current_status=None,
                consecutive_failures=0,
                trend=direction,
                trend_change_pp=change,
            )
        )
    return out
