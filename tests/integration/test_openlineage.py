"""The OpenLineage sink over the real broker: HTTP to a loopback Marquez emulator, a Kafka topic, DLQ.

Every event that leaves the sink is validated against the official OpenLineage schema and our facet schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.runtime.deployables.app import load_registry, openlineage_sink
from floe_stream.runtime.framework.kafka import make_producer
from floe_stream.settings import OpenLineageSettings, Settings
from floe_stream.sinks.openlineage.events import run_id
from floe_stream.sinks.openlineage.validate import LineageSchemas
from floe_stream.topics import ResolvedData, Severity, TopicKey, ViolationData
from floe_stream.topics.catalog import topic_name
from floe_stream.topics.enums import CheckType
from floe_stream.topics.violation import encode_violation
from tests.conftest import OPENLINEAGE_SCHEMAS, REPO, rdkafka_threads, wait_for
from tests.integration.helpers import Running, read_all, use_openlineage_yml

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
        sink = openlineage_sink(s, load_registry(s))
        m.fail_next = 10**6  # Marquez is down
        async with Running(sink):
            await publish_violations(s, [
                violation("test.fast", CheckType.FRESHNESS),
                violation("test.fast", CheckType.FRESHNESS, Severity.CRITICAL, detected_at=T0 + timedelta(minutes=1)),
                violation("test.fast", CheckType.QUALITY, element="amount"),
                resolved("test.fast", CheckType.FRESHNESS),
            ], raw=[b"{not a cloudevent"])  # fmt: skip
            await wait_for(lambda: m.requests >= 3 and sink.sink.degraded, timeout=30)
            assert (await sink.readiness())["transport"] is False  # /readyz: degraded while retrying
            committed = [await sink.consumer.committed(tp) for tp in sink.assigned]
            m.fail_next = 0  # Marquez is back
            await wait_for(lambda: len(m.events) >= 4, timeout=30)
            await wait_for(lambda: sink.batches > 0 and not sink.sink.degraded, timeout=10)
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
        sink = openlineage_sink(s)  # no contracts: datasets in namespace "floe"
        async with Running(sink):
            await publish_violations(s, [
                violation("test.fast", CheckType.SCHEMA_DRIFT, element="amount"),
                violation("test.slow", CheckType.FRESHNESS),
            ])  # fmt: skip
            await wait_for(lambda: sink.sink.dead == 1 and len(m.events) == 1, timeout=30)
        assert m.events[0]["job"]["name"] == "test-pipeline.test.slow.freshness"
        assert m.events[0]["inputs"][0]["namespace"] == "floe"
        assert schemas.errors(m.events[0]) == []
        dlq = await wait_for(lambda: read_all(s, TopicKey.DLQ), timeout=10)
        reason = dict(dlq[0].headers)["floe-dlq-reason"].decode()
        assert "HTTP 422" in reason


async def read_topic(s: Settings, topic: str, n: int) -> list[ConsumerRecord[bytes, bytes]]:
    """At least ``n`` records of ``topic`` (every partition, from the beginning), or what is there after ~10 s."""
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        recs: list[ConsumerRecord[bytes, bytes]] = []
        for _ in range(50):
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                recs.extend(batch)
            if len(recs) >= n:
                break
    finally:
        await consumer.stop()
    return recs


async def test_kafka_transport_writes_the_lineage_topic(
    broker_settings: Settings, schemas: LineageSchemas
) -> None:
    """The ``kafka`` shorthand (openlineage-python's KafkaTransport on floe's cluster), on Tansu and on
    Apache Kafka: the topic is created with floe's partitions, each run's events share a key (one partition)."""
    settings = broker_settings
    s = settings.model_copy(
        update={
            "openlineage": OpenLineageSettings(
                transport="kafka", topic=f"{settings.kafka.topic_prefix}openlineage"
            )
        }
    )
    threads = rdkafka_threads()
    sink = openlineage_sink(s)
    async with Running(sink):
        await publish_violations(
            s, [violation("test.fast", CheckType.AVAILABILITY), resolved("test.fast", CheckType.AVAILABILITY)]
        )
        await wait_for(lambda: sink.sink.emitted == 2, timeout=30)
        assert rdkafka_threads() > threads
    assert type(sink.sink.transport.transport).__name__ == "KafkaTransport"  # type: ignore[attr-defined]
    # the stopped sink's producer is gone, though the sink object lives on (here, in the test's frame)
    await wait_for(lambda: rdkafka_threads() <= threads, timeout=20)
    recs = await read_topic(s, s.openlineage.topic, 2)
    events = [json.loads(r.value) for r in sorted(recs, key=lambda r: r.offset)]
    assert [e["eventType"] for e in events] == ["FAIL", "COMPLETE"]
    assert {r.key for r in recs} == {
        b"run:floe-stream/test-pipeline.test.fast.availability"
    }  # same partition: ordered
    for ev in events:
        assert schemas.errors(ev) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap_servers)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([s.openlineage.topic])
    finally:
        await admin.close()
    assert len(meta["partitions"]) == s.kafka.partitions  # created by floe, not by the broker's auto-create


@contextlib.asynccontextmanager
async def tcp_proxy(port: int, target: str) -> AsyncIterator[None]:
    """127.0.0.1:``port`` forwarding to ``target`` (host:port) while the context is open."""
    host, _, tport = target.rpartition(":")

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(host, int(tport))
        await asyncio.gather(pipe(reader, uw), pipe(ur, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


@pytest.mark.slow
async def test_kafka_outage_is_retried_and_nothing_is_lost(
    settings: Settings, schemas: LineageSchemas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openlineage-python's KafkaTransport only logs a failed delivery; floe accounts for every message: while
    the broker cannot be reached the batch is retried (bounded flush = ``timeout_s``), nothing is committed, and
    once it is back every event arrives, in order. Configured the OpenLineage way (openlineage.yml); the broker is
    reached through a loopback port that is closed during the outage."""
    topic = f"{settings.kafka.topic_prefix}lineage-outage"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    use_openlineage_yml(
        monkeypatch,
        tmp_path,
        "transport:\n"
        "  type: kafka\n"
        f"  topic: {topic}\n"
        "  config:\n"
        f"    bootstrap.servers: 127.0.0.1:{port}\n"
        "    reconnect.backoff.max.ms: 200\n",
    )
    s = settings.model_copy(
        update={
            "openlineage": OpenLineageSettings(transport="openlineage", timeout_s=1.0, retry_backoff_s=0.05)
        }
    )
    sink = openlineage_sink(s)
    async with Running(sink):
        await publish_violations(
            s, [violation("test.fast", CheckType.FRESHNESS), resolved("test.fast", CheckType.FRESHNESS)]
        )
        await wait_for(lambda: sink.sink.degraded, timeout=30)  # the broker cannot be reached
        await asyncio.sleep(2.5)  # a few bounded flushes
        assert (await sink.readiness())["transport"] is False
        committed = [await sink.consumer.committed(tp) for tp in sink.assigned]
        assert sink.sink.emitted == 0 and sink.sink.dead == 0
        async with tcp_proxy(port, settings.kafka.bootstrap_servers):  # the broker is back
            await wait_for(lambda: sink.sink.emitted == 2 and not sink.sink.degraded, timeout=40)
    assert all(c is None for c in committed), committed  # nothing committed during the outage
    recs = await read_topic(s, topic, 2)
    events = [json.loads(r.value) for r in sorted(recs, key=lambda r: r.offset)]
    firsts = list(dict.fromkeys((e["eventType"], e["eventTime"]) for e in events))  # a re-send is identical
    assert [t for t, _ in firsts] == ["FAIL", "COMPLETE"]
    assert {r.key for r in recs} == {b"run:floe-stream/test-pipeline.test.fast.freshness"}
    for ev in events:
        assert schemas.errors(ev) == []
    assert (await read_all(s, TopicKey.DLQ)) == []


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
        sink = openlineage_sink(s)
        async with Running(sink):
            await publish_violations(s, [
                violation("test.fast", CheckType.FRESHNESS),
                violation("test.fast", CheckType.SCHEMA_DRIFT, element="amount"),
                resolved("test.fast", CheckType.FRESHNESS),
            ])  # fmt: skip
            await wait_for(lambda: sink.sink.dead == 1 and len(m.events) == 2, timeout=60)
        assert type(sink.sink.transport.transport).__name__ == "HttpTransport"  # type: ignore[attr-defined]
        assert [(e["eventType"], e["job"]["name"]) for e in m.events] == [
            ("FAIL", "test-pipeline.test.fast.freshness"),
            ("COMPLETE", "test-pipeline.test.fast.freshness"),
        ]
        for ev in m.events:
            assert schemas.errors(ev) == [], ev
        dlq = await wait_for(lambda: read_all(s, TopicKey.DLQ), timeout=10)
        assert "422" in dict(dlq[0].headers)["floe-dlq-reason"].decode()


async def test_composite_http_and_file_configured_by_openlineage_yml(
    settings: Settings, schemas: LineageSchemas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing floe-specific: an ``openlineage.yml`` named by OPENLINEAGE_CONFIG sends every event to Marquez
    and to a file (openlineage-python's composite transport, stopping at the first failure); floe retries a
    Marquez outage and dead-letters the event Marquez rejects, which then reaches neither destination."""
    async with marquez() as m:
        m.reject_job_containing = "schema_drift"
        m.fail_next = 8  # more 503s than openlineage-python's own HTTP retries absorb
        ol_file = tmp_path / "lineage" / "events.jsonl"
        ol_file.parent.mkdir()
        use_openlineage_yml(
            monkeypatch,
            tmp_path,
            "transport:\n"
            "  type: composite\n"
            "  continue_on_failure: false\n"
            "  transports:\n"
            "    marquez:\n"
            "      type: http\n"
            f"      url: http://127.0.0.1:{m.port}\n"
            "      retry: {total: 2, backoff_factor: 0.01}\n"
            "    archive:\n"
            "      type: file\n"
            f"      log_file_path: {ol_file}\n"
            "      append: true\n",
        )
        s = settings.model_copy(
            update={"openlineage": OpenLineageSettings(retry_backoff_s=0.05)}
        )  # the default
        assert s.openlineage.transport == "openlineage"
        sink = openlineage_sink(s)
        async with Running(sink):
            await publish_violations(s, [
                violation("test.fast", CheckType.FRESHNESS),
                violation("test.fast", CheckType.SCHEMA_DRIFT, element="amount"),
                resolved("test.fast", CheckType.FRESHNESS),
            ])  # fmt: skip
            await wait_for(lambda: sink.sink.dead == 1 and sink.sink.emitted == 2, timeout=60)
            assert sink.sink.transport.describe() == "composite (http, file)"  # type: ignore[attr-defined]
        expected = [
            ("FAIL", "test-pipeline.test.fast.freshness"),
            ("COMPLETE", "test-pipeline.test.fast.freshness"),
        ]
        assert [(e["eventType"], e["job"]["name"]) for e in m.events] == expected
        lines = [json.loads(line) for line in ol_file.read_text().splitlines()]
        assert lines == m.events  # the same events, once each
        for ev in lines:
            assert schemas.errors(ev) == [], ev
        dlq = await wait_for(lambda: read_all(s, TopicKey.DLQ), timeout=10)
        assert "HTTP 422" in dict(dlq[0].headers)["floe-dlq-reason"].decode()


@pytest.mark.slow
async def test_file_and_console_shorthands(
    settings: Settings, schemas: LineageSchemas, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``file`` appends JSON lines (openlineage-python's FileTransport, append mode); ``console`` is its
    ConsoleTransport: each event logged at INFO by ``openlineage.client.transport.console``."""
    ol_file = tmp_path / "out" / "lineage.jsonl"
    items = [violation("test.fast", CheckType.FRESHNESS), resolved("test.fast", CheckType.FRESHNESS)]
    s = settings.model_copy(update={"openlineage": OpenLineageSettings(transport="file", file=ol_file)})
    sink = openlineage_sink(s)
    async with Running(sink):
        await publish_violations(s, items)
        await wait_for(lambda: sink.sink.emitted == 2, timeout=30)
    written = [json.loads(line) for line in ol_file.read_text().splitlines()]
    assert [e["eventType"] for e in written] == ["FAIL", "COMPLETE"]
    for ev in written:
        assert schemas.errors(ev) == [], ev

    caplog.set_level(logging.INFO, logger="openlineage.client.transport.console")
    s = settings.model_copy(update={"openlineage": OpenLineageSettings(transport="console")})
    sink = openlineage_sink(s)
    async with Running(sink):
        await publish_violations(
            s, items
        )  # the same two violations again (the group committed the first two)
        await wait_for(lambda: sink.sink.emitted == 2, timeout=30)
    printed = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "openlineage.client.transport.console"
    ]
    assert printed == written  # deterministic events: the same on every transport


async def test_async_http_failures_are_retried_until_every_event_arrives(
    settings: Settings, schemas: LineageSchemas, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``OPENLINEAGE__TRANSPORT__TYPE=async_http`` delivers in the background and only counts failures: floe
    waits for each batch and retries it when any event failed (here: its own retries off, Marquez down for the
    first requests). Nothing is lost; an event that had gone out may arrive twice (identical)."""
    async with marquez() as m:
        m.fail_next = 3
        monkeypatch.delenv("OPENLINEAGE_CONFIG", raising=False)
        monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "async_http")
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", f"http://127.0.0.1:{m.port}")
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY", '{"total": 0}')
        s = settings.model_copy(update={"openlineage": OpenLineageSettings(retry_backoff_s=0.05)})
        sink = openlineage_sink(s)
        degraded = []
        async with Running(sink):
            await publish_violations(s, [
                violation("test.fast", CheckType.FRESHNESS),
                violation("test.fast", CheckType.QUALITY, element="amount"),
                resolved("test.fast", CheckType.FRESHNESS),
            ])  # fmt: skip
            await wait_for(lambda: degraded.append(sink.sink.degraded) or sink.sink.emitted == 3, timeout=60)
            assert sink.sink.transport.describe() == "async_http"  # type: ignore[attr-defined]
        assert True in degraded and sink.sink.dead == 0
        got = list(dict.fromkeys((e["eventType"], e["job"]["name"]) for e in m.events))
        assert sorted(got) == sorted([
            ("FAIL", "test-pipeline.test.fast.freshness"),
            ("FAIL", "test-pipeline.test.fast.quality"),
            ("COMPLETE", "test-pipeline.test.fast.freshness"),
        ])  # fmt: skip
        for ev in m.events:
            assert schemas.errors(ev) == [], ev
