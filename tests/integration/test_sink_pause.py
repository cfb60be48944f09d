"""A sink whose destination is down for longer than ``kafka.max_poll_interval_ms`` pauses its partitions and
stays in its consumer group (Apache Kafka, the OpenLineage sink against a loopback Marquez that answers 503).

Without the pause, aiokafka's member leaves the group once it has not polled for max_poll_interval_ms: after
the outage the group rebalances, the batch's commit fails and the batch is delivered a second time.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from aiokafka.structs import TopicPartition

from floe_stream.runtime.deployables.app import load_registry, openlineage_sink
from floe_stream.settings import OpenLineageSettings, Settings
from floe_stream.telemetry.metrics import setup_metrics
from floe_stream.topics import TopicKey
from floe_stream.topics.catalog import topic_name
from floe_stream.topics.enums import CheckType
from tests.conftest import wait_for
from tests.integration.helpers import Running
from tests.integration.test_observability import scrape, total
from tests.integration.test_openlineage import FIXTURES, T0, marquez, publish_violations, violation

pytestmark = [pytest.mark.kafka]

MAX_POLL_INTERVAL_MS = 2_000
OUTAGE_S = 3 * MAX_POLL_INTERVAL_MS / 1000


async def readyz(port: int) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    return r.status_code, r.json()


async def test_an_outage_longer_than_max_poll_interval_pauses_the_partitions_without_a_rebalance(
    kafka_settings: Settings,
) -> None:
    setup_metrics("floe-test")
    async with marquez() as m:
        s = kafka_settings.model_copy(update={
            "contracts_dir": FIXTURES, "health_port": 0, "health_host": "127.0.0.1",
            "kafka": kafka_settings.kafka.model_copy(update={"max_poll_interval_ms": MAX_POLL_INTERVAL_MS}),
            "openlineage": OpenLineageSettings(transport="http", url=f"http://127.0.0.1:{m.port}", retry_backoff_s=0.05),
        })  # fmt: skip
        sink = openlineage_sink(s, load_registry(s))
        assignments: list[list[TopicPartition]] = []
        revocations: list[list[TopicPartition]] = []

        async def on_assigned(tps: list[TopicPartition]) -> None:
            assignments.append(tps)

        async def on_revoked(tps: list[TopicPartition]) -> None:
            if tps:
                revocations.append(tps)

        sink.on_assigned = on_assigned  # type: ignore[method-assign]
        sink.on_revoked = on_revoked  # type: ignore[method-assign]
        m.fail_next = 10**6  # Marquez is down
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned and sink.health is not None, timeout=30)
            port = sink.health.port  # type: ignore[union-attr]
            assigned = set(sink.assigned)
            items = [
                violation(f"test.asset{i}", CheckType.FRESHNESS, detected_at=T0 + timedelta(minutes=i))
                for i in range(6)
            ]
            await publish_violations(s, items)  # type: ignore[arg-type]
            await wait_for(lambda: sink.sink.degraded and sink.paused, timeout=20)

            loop = asyncio.get_running_loop()
            down_until = loop.time() + OUTAGE_S  # three max_poll_intervals without a successful write
            seen_paused: set[int] = set()
            while loop.time() < down_until:
                code, body = await readyz(port)
                assert code == 503 and body["checks"]["transport"] is False
                seen_paused.add(body["details"]["paused_partitions"])
                assert sink.consumer.paused() == assigned  # nothing fetched while the batch waits
                await asyncio.sleep(0.5)
            assert seen_paused == {len(assigned)}
            m_down = await scrape(port)
            assert total(m_down, "floe_consumer_paused_partitions", group=sink.group_id) == len(assigned)
            committed = [await sink.consumer.committed(tp) for tp in assigned]
            assert all(c is None for c in committed), committed  # the batch in hand is not committed
            assert m.events == []

            m.fail_next = 0  # Marquez is back
            topic = topic_name(s.kafka.topic_prefix, TopicKey.VIOLATIONS)
            ends = await sink.consumer.end_offsets([tp for tp in assigned if tp.topic == topic])

            async def all_committed() -> bool:
                return all([await sink.consumer.committed(tp) == end for tp, end in ends.items()])

            await wait_for(lambda: len(m.events) >= len(items) and not sink.paused, timeout=30)
            await wait_for(all_committed, timeout=30)
            await asyncio.sleep(1.0)  # a replay (after a rebalance) would deliver again in this time
            code, body = await readyz(port)
            assert code == 200 and "paused_partitions" not in body.get("details", {})
            assert sink.consumer.paused() == set()
            m_up = await scrape(port)
            assert total(m_up, "floe_consumer_paused_partitions", group=sink.group_id) == 0
            assert set(sink.assigned) == assigned

        assert len(assignments) == 1 and revocations == []  # the member never left the group
        jobs = sorted(e["job"]["name"] for e in m.events)  # every violation delivered exactly once
        assert jobs == sorted(f"test-pipeline.test.asset{i}.freshness" for i in range(6))


async def test_an_alert_channel_backing_off_pauses_the_partitions_and_keeps_the_member(
    kafka_settings: Settings,
) -> None:
    """The alerts sink's channel retries (their own backoff, not the runtime's) pause the partitions too: a
    webhook answering 503 for three max_poll_intervals, then 200: one delivery, no rebalance."""
    from datetime import UTC, datetime

    from floe_stream.runtime.deployables.app import alerts_sink
    from tests.integration.receivers import HttpReceiver, Reply
    from tests.integration.receivers import publish_violations as publish_alerts
    from tests.integration.test_alerts_faults import hook_cfg
    from tests.unit.alert_factory import violation as alert_violation

    s = kafka_settings.model_copy(update={
        "kafka": kafka_settings.kafka.model_copy(update={"max_poll_interval_ms": MAX_POLL_INTERVAL_MS}),
    })  # fmt: skip
    loop = asyncio.get_running_loop()
    up_at = float("inf")

    def reply(_: object) -> Reply:
        return Reply(200) if loop.time() >= up_at else Reply(503, b"down")

    async with HttpReceiver(handler=reply) as hook:
        cfg = hook_cfg(hook.url, max_attempts=100, backoff_initial_s=0.2, backoff_max_s=0.5)
        sink = alerts_sink(s, cfg)
        assignments: list[list[TopicPartition]] = []

        async def on_assigned(tps: list[TopicPartition]) -> None:
            assignments.append(tps)

        sink.on_assigned = on_assigned  # type: ignore[method-assign]
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            assigned = set(sink.assigned)
            up_at = loop.time() + OUTAGE_S
            await publish_alerts(s, [alert_violation("orders.v1", at=datetime.now(UTC))])
            await wait_for(lambda: sink.paused, timeout=20)
            while loop.time() < up_at - 0.5:
                assert sink.consumer.paused() == assigned
                assert sink.health_details().get("paused_partitions") == len(assigned)
                await asyncio.sleep(0.5)
            await wait_for(lambda: sink.sink.delivered == 1 and not sink.paused, timeout=30)
            await asyncio.sleep(1.0)  # a replay after a rebalance would deliver a second time
            assert sink.consumer.paused() == set()
        assert len(assignments) == 1  # the member never left the group
        assert sink.sink.delivered == 1
        assert (
            sum(1 for r in hook.requests if r.at >= up_at) == 1
        )  # delivered once, when the webhook was back
