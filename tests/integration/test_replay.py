"""`floe replay`: retained inputs → a fresh engine → the SLA history, deterministic and with nothing notified."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from floe_stream.replay import replay
from floe_stream.runtime.deployables.app import load_registry
from floe_stream.settings import Settings
from floe_stream.topics import MaterializationEvent, TopicKey
from floe_stream.topics.catalog import topic_name
from floe_stream.topics.tick import Tick
from tests.conftest import REPO
from tests.integration.helpers import floe_env, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

BASE = datetime(2026, 1, 10, 23, 59, 50, tzinfo=UTC)  # the replayed day straddles midnight
TABLES = {
    "check_results": "SELECT result_id, asset, check_type, status, severity, evaluated_at, trigger, metric, "
                     "source_event_id FROM check_results ORDER BY result_id",
    "violation_events": "SELECT event_id, event_type, correlation_key, severity, occurred_at, payload "
                        "FROM violation_events ORDER BY event_id",
    "violation_episodes": "SELECT correlation_key, opened_at, severity, escalations, resolved_at, duration_s "
                          "FROM violation_episodes ORDER BY 1, 2",
    "daily_aggregates": "SELECT asset, check_type, day, checks_run, passed, failed, within_s, breached_s, "
                        "worst_severity_rank FROM daily_aggregates ORDER BY 1, 2, 3",
    "sla_status": "SELECT asset, check_type, last_result_id, last_status, last_evaluated_at, consecutive_failures "
                  "FROM sla_status ORDER BY 1, 2",
}  # fmt: skip


async def seed_inputs(s: Settings) -> None:
    """A past timeline: test.fast (2 s SLA) materialized, then silent (absence breach), then back; ticks every
    second on every partition (duplicates across partitions); one undecodable record."""
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        mats = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
        ticks = topic_name(s.kafka.topic_prefix, TopicKey.TICKS)

        async def mat(i: int, asset: str, at: datetime) -> None:
            ev = MaterializationEvent(event_id=f"m{i}", asset=asset, materialized_at=at, row_count=i)
            await producer.send_and_wait(mats, ev.model_dump_json().encode(), key=asset.encode(),
                                         timestamp_ms=int(at.timestamp() * 1000))  # fmt: skip

        await mat(1, "test.fast", BASE)
        await mat(2, "test.slow", BASE)
        # the processor's re-routed copy of an input (it is in the topic already): replay skips it
        copy = MaterializationEvent(event_id="m1", asset="test.fast", materialized_at=BASE)
        await producer.send_and_wait(mats, copy.model_dump_json().encode(), key=b"test.fast",
                                     headers=[("floe-rerouted", b"test.fast")],
                                     timestamp_ms=int(BASE.timestamp() * 1000) + 5000)  # fmt: skip
        await producer.send_and_wait(
            mats, b"{broken", key=b"test.fast", timestamp_ms=int(BASE.timestamp() * 1000) + 1
        )
        for k in range(1, 21):
            t = BASE + timedelta(seconds=k)
            for p in range(3):
                tick = Tick(tick_time=t, interval_s=1, ticker_id="t")
                await producer.send_and_wait(ticks, tick.model_dump_json().encode(), partition=p,
                                             timestamp_ms=int(t.timestamp() * 1000))  # fmt: skip
            if k == 12:
                await mat(3, "test.fast", t)
    finally:
        await producer.stop()


async def snapshot(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in TABLES.items()}
    finally:
        await conn.close()


async def test_replay_is_deterministic_and_mutes_notifications(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"contracts_dir": REPO / "tests" / "fixtures" / "contracts"})
    await seed_inputs(s)
    dsn = s.database.dsn.get_secret_value()

    first = await replay(s, load_registry(s), start="earliest")
    assert first.skipped == 1 and first.ticks == 20 and first.updates == 3
    one = await snapshot(dsn)
    results = one["check_results"]
    assert results and all(r[6] == "replay" for r in results)
    fresh_fail = [r for r in results if r[1] == "test.fast" and r[2] == "freshness" and r[3] == "fail"]
    assert fresh_fail, "the silence of test.fast (2 s SLA) is a freshness breach"
    assert any(e[1] == "floe.contract.violation.resolved" for e in one["violation_events"])  # back at k=12
    assert {d[2].isoformat() for d in one["daily_aggregates"]} == {"2026-01-10", "2026-01-11"}
    assert one["violation_episodes"] and one["sla_status"]

    # the second run, through the CLI with its progress bar: identical tables
    env = floe_env(s, FLOE_LOG_FORMAT="text")
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "floe"), "replay", "--from", "earliest", "--format", "json",
        env={**env, "COLUMNS": "120"}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["records"] == first.records and summary["results"] == first.results
    assert "read" in err.decode() and "evaluate" in err.decode()  # the progress bar (stderr)
    assert await snapshot(dsn) == one

    # nothing was produced: no violation reached the violations topic, so no channel was notified
    assert await read_all(s, TopicKey.VIOLATIONS) == []
    assert await read_all(s, TopicKey.CHECK_RESULTS) == []

    # a changed contract (freshness SLA 2 s → 1 h) rewrites the history of its assets
    changed = tmp_path / "contracts"
    changed.mkdir()
    text = (s.contracts_dir / "pipeline.odcs.yaml").read_text()
    (changed / "pipeline.odcs.yaml").write_text(
        text.replace("value: 2\n    unit: s", "value: 1\n    unit: h")
    )
    s2 = s.model_copy(update={"contracts_dir": changed})
    await replay(s2, load_registry(s2), start=BASE - timedelta(seconds=1), contract_ids={"test-pipeline"})
    two = await snapshot(dsn)
    assert not [r for r in two["check_results"] if r[2] == "freshness" and r[3] == "fail"]
    assert two["violation_events"] == [] and two["violation_episodes"] == []
