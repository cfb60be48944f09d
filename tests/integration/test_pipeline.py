"""The walking skeleton end to end over each real broker (Tansu, Apache Kafka) and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from floe_stream.reporting.compliance import build_report
from floe_stream.runtime.deployables.app import load_registry, postgres_sink, processor_service
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import Settings
from floe_stream.topics import (
    CatalogCommitEvent,
    DriftKind,
    IcebergField,
    IcebergSchema,
    MaterializationEvent,
    ResolvedData,
    Severity,
    TopicKey,
    ViolationData,
)
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, publish, read_all, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FIXTURES = REPO / "tests" / "fixtures" / "contracts"


def commit(table: str, seq: int, fields: list[IcebergField]) -> CatalogCommitEvent:
    return CatalogCommitEvent(
        table=table, snapshot_id=1000 + seq, sequence_number=seq,
        timestamp_ms=int(datetime.now(UTC).timestamp() * 1000), operation="append",
        table_schema=IcebergSchema(fields=fields),
    )  # fmt: skip


GOOD_FAST = [
    IcebergField(id=1, name="id", required=True, type="long"),
    IcebergField(id=2, name="amount", type="double"),
    IcebergField(id=3, name="updated_at", type="timestamptz"),
]


@pytest.fixture
def pipeline_settings(broker_settings: Settings) -> Settings:
    """On each broker: test ids ``[tansu]`` / ``[kafka]``."""
    return broker_settings.model_copy(update={"contracts_dir": FIXTURES})


async def test_events_to_violations_to_postgres_to_report(pipeline_settings: Settings) -> None:
    s = pipeline_settings
    processor = processor_service(s, load_registry(s))
    sink = postgres_sink(s)
    async with Running(processor, sink, Ticker(s, ticker_id="t1")):
        await wait_for(lambda: processor.ever_assigned and sink.ever_assigned)
        now = datetime.now(UTC)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.fast", MaterializationEvent(event_id="m1", asset="test.fast", materialized_at=now, row_count=10)),
            ("test.slow", MaterializationEvent(event_id="m2", asset="test.slow", materialized_at=now)),
        ])  # fmt: skip
        drifted = [
            *GOOD_FAST[:1],
            IcebergField(id=2, name="amount", type="string"),
            IcebergField(id=4, name="extra", type="int"),
        ]
        await publish(s, TopicKey.CATALOG_COMMITS, [("test.fast", commit("test.fast", 1, drifted))])

        def kinds(evs: list) -> set:  # type: ignore[type-arg]
            return {
                (e.data.violation_type.value, e.data.drift_kind, e.data.severity)
                for e in evs
                if isinstance(e.data, ViolationData)
            }

        # absence: test.fast (2 s SLA) gets no further event → a freshness ERROR within a tick interval; the
        # commit's drifts before it
        want = {
            ("freshness", None, Severity.ERROR),
            ("schema_drift", DriftKind.TYPE_CHANGED, Severity.ERROR),
            ("schema_drift", DriftKind.COLUMN_REMOVED, Severity.ERROR),  # updated_at missing
            ("schema_drift", DriftKind.COLUMN_ADDED, Severity.WARNING),
        }
        with contextlib.suppress(AssertionError):
            await wait_for(lambda: _has(s, want, kinds), timeout=15)
        evs = await violations(s)
        assert want <= kinds(evs), kinds(evs)
        assert all(e.data.asset == "test.fast" for e in evs)  # test.slow (1 h SLA) stays quiet
        breach = next(
            e
            for e in evs
            if isinstance(e.data, ViolationData)
            and e.data.severity == Severity.ERROR
            and e.data.violation_type.value == "freshness"
        )
        assert breach.subject == "test.fast" and breach.type == "floe.contract.violation"
        assert breach.data.owner == "alice" and breach.data.team == "data-platform"

        # recovery: a fresh materialization resolves the freshness episode with the same correlation key
        await publish(
            s,
            TopicKey.MATERIALIZATIONS,
            [
                (
                    "test.fast",
                    MaterializationEvent(event_id="m3", asset="test.fast", materialized_at=datetime.now(UTC)),
                )
            ],
        )
        resolved = await wait_for(lambda: _resolved(s, breach.data.correlation_key), timeout=10)
        assert resolved[0].data.open_duration_s > 0

        async def results_of_m3() -> (
            list[Any] | None
        ):  # another topic than the violations': no order between them
            got = await read_all(s, TopicKey.CHECK_RESULTS)
            return got if any(b'"m3"' in (r.value or b"") for r in got) else None

        async def distinct_violations() -> int:
            return len({v.id for v in await violations(s)})

        async def check_results() -> int:
            return len(await read_all(s, TopicKey.CHECK_RESULTS))

        # the sink wrote every check result and violation exactly once
        await wait_for(results_of_m3, timeout=10)
        conn = await asyncpg.connect(s.database.dsn.get_secret_value())
        try:
            await wait_for(lambda: _count(conn, "violation_events", distinct_violations), timeout=10)
            await wait_for(lambda: _count(conn, "check_results", check_results), timeout=10)
            report = await build_report(conn, window="24h", as_of=datetime.now(UTC) + timedelta(seconds=1))
        finally:
            await conn.close()
    rows = {(a.asset, c.check_type): c for a in report.assets for c in a.checks}
    fresh = rows[("test.fast", "freshness")]
    assert fresh.basis == "time" and fresh.failed >= 1 and 0 < fresh.compliance_pct < 100  # type: ignore[operator]
    assert fresh.violations >= 1
    drift = rows[("test.fast", "schema_drift")]
    assert (drift.checks_run, drift.failed, drift.compliance_pct) == (1, 1, 0.0)
    assert rows[("test.slow", "freshness")].compliance_pct == 100.0


def _kinds(evs: list) -> set:  # type: ignore[type-arg]
    return {
        (e.data.violation_type.value, e.data.drift_kind, e.data.severity)
        for e in evs
        if isinstance(e.data, ViolationData)
    }


async def _has(s: Settings, wanted: set, kinds):  # type: ignore[no-untyped-def]
    evs = await violations(s)
    return evs if wanted <= kinds(evs) else None


async def _resolved(s: Settings, corr: str):  # type: ignore[no-untyped-def]
    evs = [
        e for e in await violations(s) if isinstance(e.data, ResolvedData) and e.data.correlation_key == corr
    ]
    return evs or None


async def _count(conn: asyncpg.Connection, table: str, events: Callable[[], Awaitable[int]]) -> bool:
    n = await conn.fetchval(f"SELECT count(*) FROM {table}")
    # the topic read after the rows: the ticker still runs, and an escalation it brings (a check result, a
    # breach) is then counted in the topic before it can be a row, never a row the count did not expect
    expected = await events()
    assert n <= expected, f"{table} has {n} rows, more than the {expected} distinct events"
    return bool(n == expected)


async def test_bad_input_goes_to_dlq_and_the_stream_goes_on(pipeline_settings: Settings) -> None:
    s = pipeline_settings
    processor = processor_service(s, load_registry(s))
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.fast", b"{not json"),
            ("test.fast", b'{"asset": "test.fast", "materialized_at": "yesterday"}'),
            ("test.fast", b'{"asset": "test.fast", "materialized_at": "2026-01-01T00:00:00Z", "surprise": 1}'),
        ], partition=0)  # fmt: skip
        await publish(s, TopicKey.TICKS, [(None, b"[]")], partition=0)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.slow", MaterializationEvent(event_id="ok", asset="test.slow", materialized_at=datetime.now(UTC)))
        ])  # fmt: skip
        dlq = await wait_for(lambda: _at_least(s, TopicKey.DLQ, 4))
        await wait_for(lambda: _at_least(s, TopicKey.CHECK_RESULTS, 1))
    reasons = sorted(dict(r.headers)["floe-dlq-reason"].decode() for r in dlq)
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("materialized_at" in r for r in reasons)
    assert any("surprise" in r and "Extra inputs" in r for r in reasons)
    assert any("expected a JSON object" in r for r in reasons)
    origin = {dict(r.headers)["floe-dlq-topic"].decode() for r in dlq}
    assert origin == {f"{s.kafka.topic_prefix}materializations", f"{s.kafka.topic_prefix}ticks"}
    assert {r.value for r in dlq} >= {b"{not json", b"[]"}  # the original bytes are kept


async def _at_least(s: Settings, key: TopicKey, n: int):  # type: ignore[no-untyped-def]
    recs = await read_all(s, key)
    return recs if len(recs) >= n else None


@pytest.mark.slow
async def test_two_tickers_do_not_double_any_effect(pipeline_settings: Settings) -> None:
    s = pipeline_settings
    processor = processor_service(s, load_registry(s))
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.fast", MaterializationEvent(event_id="m1", asset="test.fast", materialized_at=datetime.now(UTC)))
        ])  # fmt: skip
        await wait_for(lambda: _at_least(s, TopicKey.CHECK_RESULTS, 1))  # the update is in before time starts
        async with Running(Ticker(s, ticker_id="a"), Ticker(s, ticker_id="b")):
            await wait_for(lambda: _has(s, {("freshness", None, Severity.ERROR)}, _kinds), timeout=20)
            await asyncio.sleep(1)  # more duplicate ticks after the breach
    evs = await violations(s)
    ticks = await read_all(s, TopicKey.TICKS)
    from floe_stream.topics import Tick

    tickers = {Tick.model_validate_json(r.value).ticker_id for r in ticks}
    assert tickers == {"a", "b"}  # both tickers really published every tick time
    per_level = [(e.data.correlation_key, e.data.severity) for e in evs if isinstance(e.data, ViolationData)]
    detail = [
        (e.id[:8], e.data.severity.value, e.data.detected_at.isoformat())
        for e in evs
        if isinstance(e.data, ViolationData)
    ]
    assert len(per_level) == len(set(per_level)), (
        detail
    )  # each escalation level once, though every tick came twice
    assert ("test.fast/freshness", Severity.ERROR) in per_level
    assert len({e.id for e in evs}) == len(evs)


def test_example_contracts_resolve_their_assets() -> None:
    reg = load_registry(Settings(contracts_dir=Path(FIXTURES)))
    assert reg.resolve("TEST.FAST") is not None
    assert reg.resolve("fast") is not None


async def test_a_long_commit_interval_still_commits_when_the_stream_goes_quiet(
    pipeline_settings: Settings,
) -> None:
    """Offsets and the state checkpoint are written at most every ``commit_interval_ms``, and as soon as a
    fetch comes back empty: a quiet processor never sits on handled-but-uncommitted work."""
    k = pipeline_settings.kafka.model_copy(update={"commit_interval_ms": 600_000})
    s = pipeline_settings.model_copy(update={"kafka": k})
    processor = processor_service(s, load_registry(s))
    now = datetime.now(UTC)
    events = [
        ("test.fast", MaterializationEvent(event_id=f"q{i}", asset="test.fast", materialized_at=now))
        for i in range(20)
    ]
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned)
        await publish(s, TopicKey.MATERIALIZATIONS, events)
        results = await wait_for(lambda: _at_least(s, TopicKey.CHECK_RESULTS, 20))

        async def committed() -> bool:
            tps = [tp for tp in processor.assigned if tp.topic.endswith("materializations")]
            ends = await processor.consumer.end_offsets(tps)
            done = [(await processor.consumer.committed(tp) or 0) == ends[tp] for tp in tps]
            return bool(tps) and all(done)

        await wait_for(committed, timeout=10)  # long before the 10-minute interval
        changelog = await read_all(s, TopicKey.PROCESSOR_STATE)
    assert {r.key for r in changelog} >= {b"test.fast", b"__checkpoint__"}
    assert len({r.key for r in results}) == 1 and len(results) == 20  # one freshness result per event
