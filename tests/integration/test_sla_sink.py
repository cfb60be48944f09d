"""The PostgreSQL sink over the real broker: aggregates, SLA status, episodes, contract registry, daily prune."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from floe_stream.reporting import store
from floe_stream.runtime.deployables.app import postgres_sink
from floe_stream.settings import Settings
from floe_stream.topics import TopicKey
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.enums import CheckType, Severity
from floe_stream.topics.tick import Tick
from floe_stream.topics.violation import ResolvedData, ViolationData, encode_violation
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, publish, read_all
from tests.integration.test_sla_accuracy import raw_rows, spans

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

AGG = ("SELECT asset, check_type, day, checks_run, passed, failed, round(within_s::numeric, 3) AS w, "
       "round(breached_s::numeric, 3) AS b FROM daily_aggregates ORDER BY 1, 2, 3")  # fmt: skip


def result(i: int, at: datetime, status: str = "pass", asset: str = "sales.orders") -> CheckResult:
    return CheckResult(
        result_id=f"r{i}", asset=asset, contract_id="sales-orders", contract_version="2.1.0",
        check_type=CheckType.FRESHNESS, status=status, evaluated_at=at, metric=float(i),  # type: ignore[arg-type]
    )  # fmt: skip


async def test_sink_maintains_history_idempotently_and_prunes_daily(settings: Settings) -> None:
    s = settings.model_copy(update={"history": settings.history.model_copy(update={"retention_days": 30})})
    now = datetime.now(UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    old = [result(900 + i, now - timedelta(days=200 - i), "fail" if i % 2 else "pass") for i in range(3)]
    conn = await asyncpg.connect(s.database.dsn.get_secret_value())
    try:
        async with conn.transaction():
            await store.write_history(conn, old)  # history from before the retention
        old_days = await conn.fetch(AGG)

        # results straddling midnight, one arriving late (out of order), one duplicate
        live = [
            result(1, midnight - timedelta(hours=3), "pass"),
            result(2, midnight - timedelta(hours=1), "fail"),
            result(4, midnight + timedelta(minutes=30), "pass"),
            result(3, midnight - timedelta(minutes=10), "fail"),  # late
            result(2, midnight - timedelta(hours=1), "fail"),  # duplicate
        ]
        opened = midnight - timedelta(hours=1)
        common = {"correlation_key": "sales.orders/freshness", "contract_id": "sales-orders",
                  "contract_name": "sales-orders", "contract_version": "2.1.0", "asset": "sales.orders",
                  "violation_type": CheckType.FRESHNESS}  # fmt: skip
        evs = [
            ViolationData(violation_id="v1", severity=Severity.ERROR, message="stale", detected_at=opened,
                          episode_started_at=opened, **common),  # type: ignore[arg-type]
            ViolationData(violation_id="v2", severity=Severity.CRITICAL, message="stale", detected_at=opened + timedelta(minutes=20),
                          episode_started_at=opened, **common),  # type: ignore[arg-type]
            ResolvedData(violation_id="v3", severity=Severity.CRITICAL, message="ok", opened_at=opened,
                         resolved_at=midnight + timedelta(minutes=30), open_duration_s=5400, **common),  # type: ignore[arg-type]
        ]  # fmt: skip
        sink = postgres_sink(s)
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await publish(s, TopicKey.CHECK_RESULTS, [("sales.orders", r) for r in live[:3]])
            await wait_for(
                lambda: _count(conn, "SELECT count(*) FROM check_results WHERE result_id = 'r4'", 1),
                timeout=30,
            )
            await publish(s, TopicKey.CHECK_RESULTS, [("sales.orders", r) for r in live[3:]])
            for v in evs:
                key, value, _ = encode_violation(v)
                await publish(s, TopicKey.VIOLATIONS, [(key.decode(), value)])
            await wait_for(
                lambda: _count(
                    conn, "SELECT count(*) FROM check_results WHERE asset = 'sales.orders'", 4 + 3
                ),
                timeout=30,
            )
            await wait_for(
                lambda: _count(
                    conn, "SELECT count(*) FROM violation_episodes WHERE resolved_at IS NOT NULL", 1
                ),
                timeout=30,
            )
            # a record the database refuses (NUL in text) is dead-lettered; the rest of its batch is written
            bad = result(7, midnight + timedelta(minutes=40)).model_copy(update={"message": "bad\x00byte"})
            await publish(
                s,
                TopicKey.CHECK_RESULTS,
                [("sales.orders", bad), ("sales.orders", result(6, midnight + timedelta(minutes=35)))],
            )
            dlq = await wait_for(lambda: _dlq(s), timeout=30)
            assert b"CharacterNotInRepertoire" in dict(dlq[0].headers)["floe-dlq-reason"]
            await wait_for(
                lambda: _count(conn, "SELECT count(*) FROM check_results WHERE result_id = 'r6'", 1),
                timeout=30,
            )
            # a contract published on the contracts topic is registered (owner/team for the report filters)
            doc = (REPO / "tests" / "fixtures" / "contracts" / "pipeline.odcs.yaml").read_bytes()
            await publish(s, TopicKey.CONTRACTS, [("test-pipeline", doc)])
            await wait_for(
                lambda: _count(conn, "SELECT count(*) FROM contract_assets WHERE team = 'data-platform'", 2),
                timeout=30,
            )
            # a tick drives the daily prune
            await publish(
                s, TopicKey.TICKS, [(None, Tick(tick_time=now, interval_s=10, ticker_id="t"))], partition=0
            )
            await wait_for(lambda: sink.sink.last_prune is not None, timeout=30)
            # replaying everything changes nothing (a second copy of every record)
            await publish(s, TopicKey.CHECK_RESULTS, [("sales.orders", r) for r in live])
            await publish(
                s, TopicKey.CHECK_RESULTS, [("sales.orders", result(5, midnight + timedelta(hours=1)))]
            )
            await wait_for(
                lambda: _count(conn, "SELECT count(*) FROM check_results WHERE result_id = 'r5'", 1),
                timeout=30,
            )

        # the prune deleted raw rows older than 30 days except the newest one, kept every old aggregate
        assert sink.sink.last_prune == {"check_results": 2, "violation_events": 0}
        assert {r["result_id"] for r in await conn.fetch("SELECT result_id FROM check_results")} == {
            "r902", "r1", "r2", "r3", "r4", "r5", "r6"
        }  # fmt: skip
        agg = await conn.fetch(AGG)
        last_old = old_days[-1]["day"]
        assert [r for r in agg if r["day"] < last_old] == [r for r in old_days if r["day"] < last_old]
        # r902's status (pass) held from its day until r1 months later: one aggregate row per day in between
        assert len([r for r in agg if last_old <= r["day"] < (midnight - timedelta(days=1)).date()]) >= 160
        # the day before midnight: the interval of r2 (fail) is cut by the late r3 (fail) — 3 h of history
        rows = await raw_rows(conn)
        before = (midnight - timedelta(days=1)).date()
        day = next(r for r in agg if r["day"] == before)
        want_w = want_b = 0.0
        for r, a, b in spans(rows[("sales.orders", "freshness")], midnight + timedelta(hours=1)):
            lo, hi = max(a, midnight - timedelta(days=1)), min(b, midnight)
            if hi > lo:
                if r.status == "pass":
                    want_w += (hi - lo).total_seconds()
                else:
                    want_b += (hi - lo).total_seconds()
        assert (day["checks_run"], day["passed"], day["failed"]) == (3, 1, 2)
        assert float(day["w"]) == pytest.approx(want_w) and float(day["b"]) == pytest.approx(want_b)
        assert float(day["b"]) == 3600.0  # r2 → r3 (50 min, fail) + r3 → midnight (10 min, fail)
        # incremental == rebuilt from raw (for the days whose raw rows are complete)
        horizon = await store.raw_horizon(conn)
        assert horizon is not None
        kept = [r for r in agg if r["day"] >= horizon]
        await store.rebuild_aggregates(conn)
        assert [r for r in await conn.fetch(AGG) if r["day"] >= horizon] == kept

        status = await conn.fetchrow(
            "SELECT * FROM sla_status WHERE asset = 'sales.orders' AND check_type = 'freshness'"
        )
        assert (status["last_result_id"], status["last_status"], status["consecutive_failures"]) == (
            "r5",
            "pass",
            0,
        )
        ep = await conn.fetchrow("SELECT * FROM violation_episodes")
        assert (ep["first_severity"], ep["severity"], ep["escalations"], ep["duration_s"]) == (
            "error",
            "critical",
            1,
            5400,
        )
        registered = {
            (r["contract_id"], r["registered_by"])
            for r in await conn.fetch("SELECT * FROM registered_contracts")
        }
        assert ("sales-orders", "sink") in registered and ("inventory-stock", "sink") in registered
        assert ("test-pipeline", "topic") in registered
        owner = await conn.fetchval("SELECT owner FROM contract_assets WHERE asset = 'sales.orders'")
        assert owner
    finally:
        await conn.close()


async def _dlq(s: Settings) -> list:  # type: ignore[type-arg]
    return await read_all(s, TopicKey.DLQ)


async def _count(conn: asyncpg.Connection, sql: str, expected: int) -> bool:
    n = await conn.fetchval(sql)
    assert n <= expected, f"{sql}: {n} > {expected}"
    return bool(n == expected)


async def test_a_backlog_is_written_in_few_large_writes_bounded_by_flush_max_records(
    kafka_settings: Settings,
) -> None:
    """Catching up on a backlog, the sink collects several fetches into one write (``sink.flush_max_records``),
    which is what makes it fast (bench.sink); every result is still written exactly once and committed."""
    s = kafka_settings.model_copy(
        update={
            "kafka": kafka_settings.kafka.model_copy(update={"max_batch_records": 200}),
            "sink": kafka_settings.sink.model_copy(update={"flush_max_records": 1_000}),
        }
    )
    at = datetime(2026, 1, 5, tzinfo=UTC)
    backlog = [(f"a{i % 50}", result(i, at + timedelta(seconds=i), asset=f"a{i % 50}")) for i in range(2_000)]
    await publish(s, TopicKey.CHECK_RESULTS, backlog)
    sink = postgres_sink(s)
    conn = await asyncpg.connect(s.database.dsn.get_secret_value())
    try:
        async with Running(sink):
            await wait_for(lambda: _count(conn, "SELECT count(*) FROM check_results", 2_000), timeout=60)
        # fetches of 200 would make 10 writes; collected, at most 1,000 per write: 2 when the whole backlog
        # is already fetched, a few more when a partition's fetch lands late
        assert 2 <= sink.batches < 10, sink.batches
        assert await conn.fetchval("SELECT sum(checks_run) FROM daily_aggregates") == 2_000
    finally:
        await conn.close()
