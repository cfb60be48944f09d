"""The compliance engine against a brute-force recomputation from raw check results (SC-005: < 0.1 % error).

A generated 30-day history (four check types, skipped/error results, bursts, results straddling midnight,
out-of-order batches, duplicates) goes through the sink's write path into the real PostgreSQL; every figure of
the report (window summaries and bucket series) is recomputed here from the raw rows with plain loops.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from floe_stream.contracts.loader import load_contract_text
from floe_stream.reporting import store
from floe_stream.reporting.compliance import BucketPoint, CheckSummary, ComplianceReport, build_report
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.enums import CheckType, Severity
from floe_stream.topics.violation import (
    RESOLVED_TYPE,
    SOURCE,
    VIOLATION_TYPE,
    ResolvedData,
    ViolationCloudEvent,
    ViolationData,
)

pytestmark = [pytest.mark.postgres]

AS_OF = datetime(2026, 3, 31, 15, 17, 23, tzinfo=UTC)
START = AS_OF - timedelta(days=33)
ASSETS = ("sales.orders", "sales.customers", "ops.events")
TIME_TYPES = ("freshness", "availability")

CONTRACT = """
apiVersion: v3.1.0
kind: DataContract
id: acc-{i}
name: acc-{i}
version: 1.0.0
status: active
team:
  name: team-{i}
  members:
    - username: owner-{i}
      role: owner
schema:
  - name: t{i}
    physicalType: table
    customProperties:
      - property: floe
        value:
          asset: {asset}
    properties:
      - name: id
        logicalType: integer
        required: true
      - name: updated_at
        logicalType: timestamp
slaProperties:
  - property: latency
    value: 2
    unit: h
    element: t{i}.updated_at
"""


def generate(seed: int = 7) -> tuple[list[CheckResult], list[ViolationCloudEvent]]:
    rnd = random.Random(seed)
    results: list[CheckResult] = []
    events: list[ViolationCloudEvent] = []
    for ai, asset in enumerate(ASSETS):
        for ct in CheckType:
            t = START + timedelta(seconds=rnd.randint(0, 3600))
            status = "pass"
            i = 0
            while t < AS_OF - timedelta(minutes=5):
                # runs of the same status, occasional skipped/error, bursts and long gaps (across midnight)
                r = rnd.random()
                if r < 0.12:
                    status = "fail" if status == "pass" else "pass"
                elif r < 0.15:
                    status = rnd.choice(["skipped", "error"])
                elif status in ("skipped", "error"):
                    status = "pass"
                gap = rnd.choice([rnd.randint(5, 300), rnd.randint(600, 7200), rnd.randint(3600, 30000)])
                sev = (
                    None
                    if status == "pass"
                    else rnd.choice([None, Severity.WARNING, Severity.ERROR, Severity.CRITICAL])
                )
                metric = None if ct == CheckType.SCHEMA_DRIFT else round(rnd.uniform(0.5, 1.0), 4)
                results.append(CheckResult(
                    result_id=f"{asset}/{ct}/{i:05d}", asset=asset, contract_id=f"acc-{ai}", contract_version="1.0.0",
                    check_type=ct, status=status, severity=sev, evaluated_at=t, metric=metric,  # type: ignore[arg-type]
                ))  # fmt: skip
                if i % 40 == 5:  # an episode: opened now, escalated, resolved later (or left open)
                    events.extend(_episode(asset, f"acc-{ai}", ct, t, rnd))
                t += timedelta(seconds=gap)
                i += 1
    return results, events


def _episode(
    asset: str, contract: str, ct: CheckType, t: datetime, rnd: random.Random
) -> list[ViolationCloudEvent]:
    corr = f"{asset}/{ct}"
    common = {"correlation_key": corr, "contract_id": contract, "contract_name": contract, "contract_version": "1.0.0",
              "asset": asset, "violation_type": ct}  # fmt: skip
    sev = rnd.choice([Severity.WARNING, Severity.ERROR])
    out = [ViolationData(violation_id=f"v-{corr}-{t.isoformat()}", severity=sev, message="m", detected_at=t,
                         episode_started_at=t, **common)]  # type: ignore[arg-type]  # fmt: skip
    if rnd.random() < 0.5:
        t2 = t + timedelta(minutes=rnd.randint(1, 90))
        out.append(ViolationData(violation_id=f"v2-{corr}-{t.isoformat()}", severity=Severity.CRITICAL, message="m",
                                 detected_at=t2, episode_started_at=t, **common))  # type: ignore[arg-type]  # fmt: skip
        sev = Severity.CRITICAL
    if rnd.random() < 0.8:
        t3 = t + timedelta(minutes=rnd.randint(91, 600))
        out.append(ResolvedData(violation_id=f"r-{corr}-{t.isoformat()}", severity=sev, message="ok", opened_at=t,
                                resolved_at=t3, open_duration_s=(t3 - t).total_seconds(), **common))  # type: ignore[arg-type]  # fmt: skip
    return [
        ViolationCloudEvent(id=d.violation_id, source=SOURCE, type=RESOLVED_TYPE if isinstance(d, ResolvedData) else VIOLATION_TYPE,
                            subject=asset, time=d.resolved_at if isinstance(d, ResolvedData) else d.detected_at,
                            partitionkey=asset, data=d)
        for d in out
    ]  # fmt: skip


async def load_history(dsn: str, seed: int = 7) -> tuple[list[CheckResult], list[ViolationCloudEvent]]:
    """Write the generated history through the sink's write path: shuffled batches (out of order), duplicates."""
    results, events = generate(seed)
    rnd = random.Random(seed + 1)
    # mostly in order by time (like a partition), with some batches delivered late
    batches = [results[i : i + 250] for i in range(0, len(results), 250)]
    batches.sort(key=lambda b: min(r.evaluated_at for r in b))
    for _ in range(6):
        i, j = rnd.randrange(len(batches)), rnd.randrange(len(batches))
        batches[i], batches[j] = batches[j], batches[i]
    batches.append(results[100:400])  # a replayed batch: nothing may count twice
    conn = await asyncpg.connect(dsn)
    try:
        contracts = [
            load_contract_text(CONTRACT.format(i=i, asset=a), f"acc-{i}.yaml")
            for i, a in [*enumerate(ASSETS), (9, "idle.asset")]  # idle.asset never ran a check
        ]
        await store.register_contracts(conn, contracts)
        for k, b in enumerate(batches):
            async with conn.transaction():
                await store.write_history(conn, b, events if k == 3 else [])
        async with conn.transaction():
            assert await store.write_history(conn, [], events) == (0, 0)
    finally:
        await conn.close()
    return results, events


# --- brute force ------------------------------------------------------------------------------------------
@dataclass
class Raw:
    asset: str
    check_type: str
    status: str
    at: datetime
    result_id: str
    severity: str | None
    metric: float | None


def spans(rows: list[Raw], end: datetime) -> Iterator[tuple[Raw, datetime, datetime]]:
    """Each result's status holds from its time until the next result (or ``end``)."""
    for i, r in enumerate(rows):
        nxt = rows[i + 1].at if i + 1 < len(rows) else end
        yield r, r.at, min(nxt, end)


def brute(rows: list[Raw], lo: datetime, hi: datetime, as_of: datetime) -> dict[str, float | int | None]:
    inside = [r for r in rows if lo <= r.at < hi]
    within = breached = 0.0
    for r, a, b in spans(rows, as_of):
        s, e = max(a, lo), min(b, hi)
        if e > s:
            if r.status == "pass":
                within += (e - s).total_seconds()
            elif r.status == "fail":
                breached += (e - s).total_seconds()
    passed = sum(1 for r in inside if r.status == "pass")
    failed = sum(1 for r in inside if r.status == "fail")
    metrics = [r.metric for r in inside if r.metric is not None]
    if rows and rows[0].check_type in TIME_TYPES:
        pct = 100 * within / (within + breached) if within + breached else None
    else:
        pct = 100 * passed / (passed + failed) if passed + failed else None
    return {"pct": pct, "checks_run": len(inside), "passed": passed, "failed": failed, "within_min": within / 60,
            "observed_min": (within + breached) / 60, "metric_avg": sum(metrics) / len(metrics) if metrics else None,
            "metric_min": min(metrics, default=None), "metric_max": max(metrics, default=None)}  # fmt: skip


def close(a: float | None, b: float | None, what: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, f"{what}: {a} vs {b}"
        return
    assert abs(a - b) <= max(1e-3 * abs(b), 1e-3), f"{what}: report {a} vs brute force {b}"


def check_summary(c: CheckSummary | BucketPoint, b: dict[str, float | int | None], what: str) -> None:
    close(c.compliance_pct, b["pct"], f"{what} compliance")  # type: ignore[arg-type]
    assert (c.checks_run, c.passed, c.failed) == (b["checks_run"], b["passed"], b["failed"]), what
    close(c.minutes_within_sla, b["within_min"], f"{what} minutes within")  # type: ignore[arg-type]
    close(c.minutes_observed, b["observed_min"], f"{what} minutes observed")  # type: ignore[arg-type]
    if b["metric_avg"] is not None or c.metric_avg is not None:
        close(c.metric_avg, b["metric_avg"], f"{what} metric avg")  # type: ignore[arg-type]
        close(c.metric_min, b["metric_min"], f"{what} metric min")  # type: ignore[arg-type]
        close(c.metric_max, b["metric_max"], f"{what} metric max")  # type: ignore[arg-type]


async def raw_rows(conn: asyncpg.Connection) -> dict[tuple[str, str], list[Raw]]:
    by_key: dict[tuple[str, str], list[Raw]] = defaultdict(list)
    for r in await conn.fetch("SELECT * FROM check_results"):
        by_key[(r["asset"], r["check_type"])].append(
            Raw(
                r["asset"],
                r["check_type"],
                r["status"],
                r["evaluated_at"],
                r["result_id"],
                r["severity"],
                r["metric"],
            )
        )
    for rows in by_key.values():
        rows.sort(key=lambda x: (x.at, x.result_id))
    return by_key


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


async def verify(
    conn: asyncpg.Connection, report: ComplianceReport, events: list[ViolationCloudEvent]
) -> int:
    """Every figure of ``report`` against the brute force; returns the number of figures compared."""
    by_key = await raw_rows(conn)
    lo, hi = report.window_start, report.window_end
    n = 0
    seen = set()
    for a in report.assets:
        for c in a.checks:
            seen.add((a.asset, c.check_type))
            check_summary(c, brute(by_key[(a.asset, c.check_type)], lo, hi, hi), f"{a.asset}/{c.check_type}")
            n += 1
        for s in a.series:
            for p in s.points:
                check_summary(p, brute(by_key[(a.asset, s.check_type)], _midnight(p.start), _midnight(p.end), hi),
                              f"{a.asset}/{s.check_type}/{p.label}")  # fmt: skip
                n += 1
    assert seen >= set(by_key), "every (asset, check type) with history is in the report"
    idle = next(a for a in report.assets if a.asset == "idle.asset")
    assert {(c.check_type, c.checks_run, c.coverage_pct, c.compliance_pct) for c in idle.checks} == {
        ("freshness", 0, 0.0, None),
        ("schema_drift", 0, 0.0, None),
    }
    # roll-ups by contract / owner / team: the mean of their members' (asset, check) figures
    owners = {a.asset: (a.contract_id, a.owner, a.team) for a in report.assets}
    for g in report.groups:
        idx = {"contract": 0, "owner": 1, "team": 2}[g.kind]
        members = [a for a, meta in owners.items() if meta[idx] == g.name]
        pcts = [brute(rows, lo, hi, hi)["pct"] for (a, _), rows in by_key.items() if a in members]
        vals = [float(p) for p in pcts if p is not None]
        close(g.compliance_pct, sum(vals) / len(vals) if vals else None, f"group {g.kind} {g.name}")
        n += 1
    assert {g.kind for g in report.groups} == {"contract", "owner", "team"}
    # violations: episodes opened in the window, by type and highest severity; MTTR of episodes resolved in it
    opened: dict[tuple[str, str], str] = {}
    resolved: dict[tuple[str, str], float] = {}
    rank = {"info": 0, "warning": 1, "error": 2, "critical": 3}
    for ev in events:
        d = ev.data
        start = d.opened_at if isinstance(d, ResolvedData) else d.episode_started_at
        key = (d.correlation_key, start.isoformat())
        if lo <= start < hi and rank[d.severity] >= rank.get(opened.get(key, "info"), 0):
            opened[key] = d.severity.value
        if isinstance(d, ResolvedData) and lo <= d.resolved_at < hi:
            resolved[key] = d.open_duration_s
    want: dict[tuple[str, str], int] = defaultdict(int)
    for (corr, _), sev in opened.items():
        want[(corr.split("/", 1)[1], sev)] += 1
    assert {(v.check_type, v.severity): v.episodes for v in report.violations} == dict(want)
    assert report.episodes_resolved == len(resolved)
    close(report.mttr_s, sum(resolved.values()) / len(resolved) if resolved else None, "MTTR")
    return n + len(want) + 2


async def test_report_matches_brute_force_on_30_days(pg_dsn: str) -> None:
    _, events = await load_history(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        compared = 0
        for window, by in (("30d", "day"), ("7d", "week"), ("30d", "month"), ("24h", "day")):
            report = await build_report(conn, window=window, by=by, as_of=AS_OF)  # type: ignore[arg-type]
            compared += await verify(conn, report, events)
        assert compared > 500
        # a window ending in the past, with newer results after it: the window figures stay exact
        past = AS_OF - timedelta(days=5, hours=7, minutes=13)
        by_key = await raw_rows(conn)
        for window in ("30d", "7d", "24h"):
            report = await build_report(conn, window=window, as_of=past)
            for a in report.assets:
                for c in a.checks:
                    if (a.asset, c.check_type) in by_key:
                        want = brute(by_key[(a.asset, c.check_type)], report.window_start, past, past)
                        check_summary(c, want, f"past {window} {a.asset}/{c.check_type}")
        # coverage: checks run vs expected from the configured intervals (freshness: one per 2 h SLA)
        report = await build_report(conn, window="7d", as_of=AS_OF, asset="sales.orders")
        fresh = next(c for c in report.assets[0].checks if c.check_type == "freshness")
        assert fresh.expected_checks == pytest.approx(7 * 24 / 2)
        assert fresh.coverage_pct == pytest.approx(
            min(100.0, 100 * fresh.checks_run / (7 * 24 / 2)), abs=0.01
        )
        # owner/team filters come from the registered contracts
        by_owner = await build_report(conn, window="7d", as_of=AS_OF, owner="owner-1")
        assert [a.asset for a in by_owner.assets] == ["sales.customers"]
        assert by_owner.assets[0].team == "team-1"
    finally:
        await conn.close()


async def test_incremental_aggregates_equal_a_rebuild_and_survive_prune(pg_dsn: str) -> None:
    await load_history(pg_dsn, seed=11)
    conn = await asyncpg.connect(pg_dsn)
    q = ("SELECT asset, check_type, day, contract_id, checks_run, passed, failed, skipped, errored, "
         "round(within_s::numeric, 3) w, round(breached_s::numeric, 3) b, round(unknown_s::numeric, 3) u, "
         "worst_severity_rank, metric_count, round(metric_sum::numeric, 6) s, metric_min, metric_max "
         "FROM daily_aggregates ORDER BY 1, 2, 3")  # fmt: skip
    sq = ("SELECT asset, check_type, last_result_id, last_status, last_evaluated_at, consecutive_failures, "
          "last_pass_at, last_fail_at FROM sla_status ORDER BY 1, 2")  # fmt: skip
    try:
        incremental, status = await conn.fetch(q), await conn.fetch(sq)
        assert len(incremental) >= len(ASSETS) * 4 * 30
        await store.rebuild_aggregates(conn)
        assert await conn.fetch(q) == incremental
        assert await conn.fetch(sq) == status
        before = await build_report(conn, window="7d", by="day", as_of=AS_OF)

        # prune everything older than 10 days: raw rows go, aggregates and episodes stay
        n_raw = await conn.fetchval("SELECT count(*) FROM check_results")
        counts = await store.prune(conn, store.retention_cutoff(AS_OF, 10))
        assert counts["check_results"] > 0
        assert await conn.fetchval("SELECT count(*) FROM check_results") == n_raw - counts["check_results"]
        assert await conn.fetch(q) == incremental
        # a rebuild after the prune only touches days with complete raw data, and gives the same numbers
        out = await store.rebuild_aggregates(conn)
        assert out["since"] == (AS_OF - timedelta(days=10)).date().isoformat()
        assert await conn.fetch(q) == incremental
        after = await build_report(conn, window="7d", by="day", as_of=AS_OF)
        assert after.model_dump(exclude={"generated_at"}) == before.model_dump(exclude={"generated_at"})
        # a result older than the prune horizon arriving late cannot wipe the days whose raw rows are gone
        late = CheckResult(result_id="late", asset=ASSETS[0], contract_id="acc-0", contract_version="1.0.0",
                           check_type=CheckType.FRESHNESS, status="fail", evaluated_at=AS_OF - timedelta(days=20))  # type: ignore[arg-type]  # fmt: skip
        async with conn.transaction():
            assert await store.write_history(conn, [late]) == (1, 0)
        assert await conn.fetch(q) == incremental
        # the daily prune runs once per UTC day, whoever asks
        assert await store.daily_prune(conn, AS_OF, 5) is not None
        assert await store.daily_prune(conn, AS_OF + timedelta(hours=1), 5) is None
        assert await conn.fetch(q) == incremental
    finally:
        await conn.close()
