"""The OpenLineage sink over the real broker: HTTP to a loopback Marquez emulator, a Kafka topic, DLQ.

Every event that leaves the sink is validated against the official OpenLineage schema and our facet schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from floe_stream.runtime.app import load_registry
from floe_stream.runtime.kafka import make_producer
from floe_stream.settings import OpenLineageSettings, Settings
from floe_stream.sinks.openlineage.events import run_id
from floe_stream.sinks.openlineage.sink import OpenLineageSink
from floe_stream.sinks.openlineage.validate import LineageSchemas
from floe_stream.topics import ResolvedData, Severity, TopicKey, ViolationData
from floe_stream.topics.catalog import topic_name
from floe_stream.topics.enums import CheckType
from floe_stream.topics.violation import encode_violation
from tests.conftest import OPENLINEAGE_SCHEMAS, REPO, wait_for
from tests.integration.helpers import Running, read_all

pytestmark = [pytest.mark.kafka]

FIXTURES = REPO / "tests" / "fixtures" / "contracts"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


@pytest.fixture(scope="module")
def schemas() -> LineageSchemas:
    return LineageSchemas(
        [
            *sorted(OPENLINEAGE_SCHEMAS.rglob("*.json")),
            REPO / "topics" / "ContractViolationRunFacet.json",
        ]
    )


@dataclass
class Marquez:
    """A loopback HTTP server answering POST /api/v1/lineage like Marquez (201), or failing on demand."""

    events: list[dict] = field(default_factory=list)  # type: ignore[type-arg]
    fail_next: int = 0
    fail_status: int = 503
    reject_job_containing: str | None = None
    port: int = 0
    requests: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length)
            self.requests += 1
            status = 201
            if not request.startswith("POST /api/v1/lineage "):
                status = 404
            elif self.fail_next > 0:
                self.fail_next -= 1
                status = self.fail_status
            else:
                ev = json.loads(body)
                if self.reject_job_containing and self.reject_job_containing in ev["job"]["name"]:
                    status = 422
                else:
                    self.events.append(ev)
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def marquez() -> AsyncIterator[Marquez]:
    m = Marquez()
    server = await asyncio.start_server(m.handle, "127.0.0.1", 0)
    m.port = server.sockets[0].getsockname()[1]
    try:
        yield m
    finally:
        server.close()


def violation(
    asset: str, check: CheckType, sev: Severity = Severity.ERROR, element: str | None = None, **kw: object
) -> ViolationData:
    base: dict[str, object] = {
        "violation_id": f"v-{asset}-{check}-{sev}", "correlation_key": f"{asset}/{check}", "contract_id": "test-pipeline",
        "contract_name": "test-pipeline", "contract_version": "1.2.0", "asset": asset, "violation_type": check,
        "severity": sev, "message": f"{check} violated", "element": element, "detected_at": T0, "episode_started_at": T0,
    }  # fmt: skip
    base.update(kw)
    return ViolationData.model_validate(base)


def resolved(asset: str, check: CheckType) -> ResolvedData:
    return ResolvedData(
        violation_id=f"r-{asset}-{check}", correlation_key=f"{asset}/{check}", contract_id="test-pipeline",
        contract_name="test-pipeline", contract_version="1.2.0", asset=asset, violation_type=check,
        severity=Severity.ERROR, message="resolved", opened_at=T0, resolved_at=T0 + timedelta(minutes=3), open_duration_s=180,
    )  # fmt: skip


async def publish_violations(
    s: Settings, items: list[ViolationData | ResolvedData], raw: list[bytes] = ()
) -> None:  # type: ignore[assignment]
    producer = make_producer(s.kafka, linger_ms=0)
    await producer.start()
    try:
        topic = topic_name(s.kafka.topic_prefix, TopicKey.VIOLATIONS)
        for d in items:
            key, value, headers = encode_violation(d)
            await producer.send_and_wait(topic, value, key=key, headers=headers)
        for r in raw:
            await producer.send_and_wait(topic, r, key=b"test.fast")
    finally:
        await producer.stop()


async def test_http_transport_fail_then_complete_through_an_outage(
    settings: Settings, schemas: LineageSchemas
) -> None:
    async with marquez() as m:
        s = settings.model_copy(update={
            "contracts_dir": FIXTURES,
            "openlineage": OpenLineageSettings(transport="http", url=f"http://127.0.0.1:{m.port}", retry_backoff_s=0.05),
        })  # fmt: skip
        sink = OpenLineageSink(s, load_registry(s))
        m.fail_next = 10**6  # Marquez is down
        async with Running(sink):
            await publish_violations(s, [
                violation("test.fast", CheckType.FRESHNESS),
                violation("test.fast", CheckType.FRESHNESS, Severity.CRITICAL, detected_at=T0 + timedelta(minutes=1)),
                violation("test.fast", CheckType.QUALITY, element="amount"),
                resolved("test.fast", CheckType.FRESHNESS),
            ], raw=[b"{not a cloudevent"])  # fmt: skip
            await wait_for(lambda: m.requests >= 3 and sink.degraded, timeout=30)
            assert (await sink.readiness())["transport"] is False  # /readyz: degraded while retrying
            committed = [await sink.consumer.committed(tp) for tp in sink.assigned]
            m.fail_next = 0  # Marquez is back
            await wait_for(lambda: len(m.events) >= 4, timeout=30)
            await wait_for(lambda: sink.batches > 0 and not sink.degraded, timeout=10)
            ready = await sink.readiness()
        assert ready["transport"] is True
        assert all(c is None for c in committed), committed  # nothing committed during the outage
        types = [(e["eventType"], e["job"]["name"]) for e in m.events]
        assert types == [
            ("FAIL", "test-pipeline.test.fast.freshness"),
            ("OTHER", "test-pipeline.test.fast.freshness"),
            ("FAIL", "test-pipeline.test.fast.quality"),
            ("COMPLETE", "test-pipeline.test.fast.freshness"),
        ]
        fresh = [e for e in m.events if e["job"]["name"].endswith("freshness")]
        assert {e["run"]["runId"] for e in fresh} == {run_id("test.fast/freshness", T0)}
        for ev in m.events:
            assert schemas.errors(ev) == [], ev
        quality = m.events[2]
        assert (
            quality["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]["success"] is False
        )
        assert quality["run"]["facets"]["contractViolation"]["contractVersion"] == "1.2.0"
        dlq = await read_all(s, TopicKey.DLQ)
        assert [dict(r.headers)["floe-dlq-reason"].decode()[:27] for r in dlq] == [
            "undecodable violation event"
        ]


async def test_rejected_event_is_dead_lettered_and_the_rest_delivered(
    settings: Settings, schemas: LineageSchemas
) -> None:
    async with marquez() as m:
        m.reject_job_containing = "schema_drift"
        s = settings.model_copy(
            update={"openlineage": OpenLineageSettings(transport="http", url=f"http://127.0.0.1:{m.port}")}
        )
        sink = OpenLineageSink(s)  # no contracts: datasets in namespace "floe"
        async with Running(sink):
            await publish_violations(s, [
                violation("test.fast", CheckType.SCHEMA_DRIFT, element="amount"),
                violation("test.slow", CheckType.FRESHNESS),
            ])  # fmt: skip
            await wait_for(lambda: sink.dead == 1 and len(m.events) == 1, timeout=30)
        assert m.events[0]["job"]["name"] == "test-pipeline.test.slow.freshness"
        assert m.events[0]["inputs"][0]["namespace"] == "floe"
        assert schemas.errors(m.events[0]) == []
        dlq = await wait_for(lambda: read_all(s, TopicKey.DLQ), timeout=10)
        reason = dict(dlq[0].headers)["floe-dlq-reason"].decode()
        assert "HTTP 422" in reason


async def test_kafka_transport_writes_the_lineage_topic(settings: Settings, schemas: LineageSchemas) -> None:
    s = settings.model_copy(
        update={
            "openlineage": OpenLineageSettings(
                transport="kafka", topic=f"{settings.kafka.topic_prefix}openlineage"
            )
        }
    )
    sink = OpenLineageSink(s)
    async with Running(sink):
        await publish_violations(
            s, [violation("test.fast", CheckType.AVAILABILITY), resolved("test.fast", CheckType.AVAILABILITY)]
        )
        await wait_for(lambda: sink.emitted == 2, timeout=30)
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        topic = s.openlineage.topic
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        recs = []
        for _ in range(50):
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                recs.extend(batch)
            if len(recs) >= 2:
                break
    finally:
        await consumer.stop()
    events = [json.loads(r.value) for r in sorted(recs, key=lambda r: r.offset)]
    assert [e["eventType"] for e in events] == ["FAIL", "COMPLETE"]
    assert {r.key for r in recs} == {
        b"run:floe-stream/test-pipeline.test.fast.availability"
    }  # same partition: ordered
    for ev in events:
        assert schemas.errors(ev) == []


async def test_openlineage_python_transport_configured_from_the_environment(
    settings: Settings, schemas: LineageSchemas, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``transport: openlineage``: openlineage-python's own HTTP transport, configured the OpenLineage way
    (``OPENLINEAGE_URL``); floe's retries (a Marquez outage) and dead-lettering (a 422) stay around it."""
    async with marquez() as m:
        monkeypatch.delenv("OPENLINEAGE_CONFIG", raising=False)
        monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{m.port}")
        m.reject_job_containing = "schema_drift"
        m.fail_next = 2  # Marquez briefly down
        s = settings.model_copy(
            update={"openlineage": OpenLineageSettings(transport="openlineage", retry_backoff_s=0.05)}
        )
        sink = OpenLineageSink(s)
        async with Running(sink):
            await publish_violations(s, [
                violation("test.fast", CheckType.FRESHNESS),
                violation("test.fast", CheckType.SCHEMA_DRIFT, element="amount"),
                resolved("test.fast", CheckType.FRESHNESS),
            ])  # fmt: skip
            await wait_for(lambda: sink.dead == 1 and len(m.events) == 2, timeout=60)
        assert type(sink.transport.client.transport).__name__ == "HttpTransport"  # type: ignore[attr-defined]
        assert [(e["eventType"], e["job"]["name"]) for e in m.events] == [
            ("FAIL", "test-pipeline.test.fast.freshness"),
            ("COMPLETE", "test-pipeline.test.fast.freshness"),
        ]
        for ev in m.events:
            assert schemas.errors(ev) == [], ev
        dlq = await wait_for(lambda: read_all(s, TopicKey.DLQ), timeout=10)
        assert "422" in dict(dlq[0].headers)["floe-dlq-reason"].decode()
