"""Faults: a receiver answering 500 / 429 + Retry-After / hanging; a sink killed between delivery and
commit; two sink replicas over the same violations; dead letters replayed. No duplicate, nothing lost."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from prometheus_client import generate_latest

from floe_stream.runtime.deployables.app import alerts_sink
from floe_stream.settings import Settings
from floe_stream.sinks.alerts.config import parse_config
from floe_stream.sinks.alerts.replay import replay_dead_letters
from floe_stream.telemetry.metrics import setup_metrics
from floe_stream.topics.catalog import TopicKey
from tests.conftest import wait_for
from tests.integration.helpers import Running, read_all
from tests.integration.receivers import HttpReceiver, Reply, publish_violations
from tests.unit.alert_factory import violation

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def hook_cfg(url: str, **channel: Any) -> Any:
    return parse_config(
        {
            "policy": {"group_wait_s": 0, "rate_limit": {"max_alerts": 1000}},
            "channels": [
                {"name": "hook", "type": "webhook", "url": url, "backoff_initial_s": 0.1, **channel}
            ],
            "routes": [{"channel": "hook"}],
        }
    )


async def ledger(settings: Settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database.dsn.get_secret_value())
    try:
        return list(await conn.fetch("SELECT * FROM alert_deliveries ORDER BY claimed_at"))
    finally:
        await conn.close()


async def test_500_then_429_with_retry_after_are_retried_into_one_delivery(settings: Settings) -> None:
    script = [Reply(500, b"boom"), Reply(429, b"slow down", {"Retry-After": "1"}), Reply(200)]
    async with HttpReceiver(script=script) as hook:
        sink = alerts_sink(settings, hook_cfg(hook.url))
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await publish_violations(settings, [violation("orders.v1", at=datetime.now(UTC))])
            await wait_for(lambda: sink.sink.delivered == 1, timeout=30)
        assert len(hook.requests) == 3
        assert len({r.json()["id"] for r in hook.requests}) == 1  # the same CloudEvent id on every retry
        assert hook.requests[2].at - hook.requests[1].at >= 0.95  # Retry-After honoured
        rows = await ledger(settings)
        assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 3)]


async def test_hanging_receiver_goes_to_dlq_without_delaying_others_and_replay_resends(
    settings: Settings,
) -> None:
    setup_metrics("floe-test")  # the process's Prometheus exposition (/metrics)
    # names of their own: the metrics registry is the process's, earlier tests' channels are in it too
    wh, sl = f"hook-{uuid.uuid4().hex[:8]}", f"slack-{uuid.uuid4().hex[:8]}"
    async with HttpReceiver(handler=lambda r: Reply(hang=True)) as hook, HttpReceiver() as slack:
        cfg = parse_config(
            {
                "policy": {"group_wait_s": 0},
                "channels": [
                    {"name": wh, "type": "webhook", "url": hook.url, "timeout_s": 0.5, "max_attempts": 2,
                     "backoff_initial_s": 0.1},
                    {"name": sl, "type": "slack", "url": slack.url},
                ],
                "routes": [{"channels": [wh, sl]}],
            }
        )  # fmt: skip
        sink = alerts_sink(settings, cfg)
        v = violation("orders.v1", at=datetime.now(UTC))
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await publish_violations(settings, [v])
            await wait_for(lambda: sink.sink.dead_lettered == 1 and sink.sink.delivered == 1, timeout=30)
        assert len(hook.requests) == 2
        assert slack.requests[0].at < hook.requests[1].at  # slack did not wait for the dead webhook
        dead = [json.loads(r.value) for r in await read_all(settings, TopicKey.ALERTS_DLQ)]
        assert len(dead) == 1
        assert dead[0]["channel"] == wh
        assert "timed out" in dead[0]["reason"]
        metrics = generate_latest().decode()
        assert any(
            line.startswith("floe_alert_delivery_failures_total{") and f'channel="{wh}"' in line
            for line in metrics.splitlines()
        )
        assert any(
            line.startswith("floe_alert_delivery_latency_seconds_count{") and f'channel="{sl}"' in line
            for line in metrics.splitlines()
        )
        assert dead[0]["notification"]["alerts"][0]["event_id"] == v.violation_id

        hook.handler = lambda r: Reply(200)  # the receiver is back
        report = await replay_dead_letters(settings, cfg)
        assert (report.read, report.delivered) == (1, 1)
        assert hook.requests[-1].json()["id"] == v.violation_id
        again = await replay_dead_letters(settings, cfg)  # committed: nothing left to replay
        assert again.read == 0
        assert len(hook.requests) == 3
        assert len(slack.requests) == 1


@pytest.mark.slow
async def test_sink_killed_between_delivery_and_commit_does_not_deliver_twice(
    broker_settings: Settings,
) -> None:
    """On each broker (ids tansu/kafka): the same group replays the uncommitted batch, the ledger dedupes."""
    settings = broker_settings
    async with HttpReceiver() as hook:
        first = alerts_sink(settings, hook_cfg(hook.url))

        async def die(*a: Any, **k: Any) -> None:
            raise RuntimeError("killed before commit")

        first.consumer.commit = die  # type: ignore[method-assign]
        task = asyncio.create_task(first.run())
        await wait_for(lambda: first.ever_assigned, timeout=30)
        v = violation("orders.v1", at=datetime.now(UTC))
        await publish_violations(settings, [v])
        with pytest.raises(RuntimeError, match="killed before commit"):
            await asyncio.wait_for(task, 30)
        assert len(hook.requests) == 1

        second = alerts_sink(settings, hook_cfg(hook.url))  # same group: replays the uncommitted batch
        marker = violation("orders.v2", element="marker", at=datetime.now(UTC))
        async with Running(second):
            await publish_violations(settings, [marker])
            await wait_for(
                lambda: any(r.json()["id"] == marker.violation_id for r in hook.requests), timeout=30
            )
        assert [r.json()["id"] for r in hook.requests] == [v.violation_id, marker.violation_id]


async def test_two_replicas_over_the_same_violations_deliver_each_once(broker_settings: Settings) -> None:
    """On each broker (ids tansu/kafka)."""
    settings = broker_settings
    async with HttpReceiver() as hook:
        # the worst case of overlapping ownership: two groups, so both replicas see every violation
        other = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"group_prefix": "other"})}
        )
        a, b = alerts_sink(settings, hook_cfg(hook.url)), alerts_sink(other, hook_cfg(hook.url))
        now = datetime.now(UTC)
        items = [violation(f"asset.{i}", contract=f"c{i % 3}", at=now) for i in range(12)]
        async with Running(a, b):
            await wait_for(lambda: a.ever_assigned and b.ever_assigned, timeout=30)
            # every violation twice, as a processor replaying after a crash re-emits the same ids
            await publish_violations(settings, items + items[::-1])
            await wait_for(lambda: len(hook.requests) >= 12, timeout=30)
            # both replicas have handled all 24 records (each saw every violation): only then count
            await wait_for(lambda: a.sink.alerts_seen >= 24 and b.sink.alerts_seen >= 24, timeout=30)
        ids = [r.json()["id"] for r in hook.requests]
        assert sorted(ids) == sorted(v.violation_id for v in items)
        assert a.sink.delivered + b.sink.delivered == 12
        assert a.sink.delivered > 0 or b.sink.delivered > 0
