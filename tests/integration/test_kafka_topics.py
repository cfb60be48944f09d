"""Topics on Apache Kafka, whose ``auto.create.topics.enable`` is true by default: aiokafka's metadata requests
allow auto-creation, and a floe topic created that way gets the broker's ``num.partitions`` (1), which breaks
co-partitioning. No floe client may ever cause that; start-up refuses with one clear message instead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from floe_stream.client import FloeClient, PublishError
from floe_stream.runtime.deployables.app import alerts_sink, build
from floe_stream.runtime.devtools.embedded import ApacheKafka, Broker
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.settings import ConfigError, DatabaseSettings, Settings
from floe_stream.sinks.alerts.config import parse_config
from floe_stream.topics.catalog import TopicKey, topic_name
from tests.conftest import REPO, fast_kafka, wait_for
from tests.integration.helpers import floe_env, start_floe

ALERTS = parse_config(
    {
        "channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/"}],
        "routes": [{"channel": "hook"}],
    }
)

pytestmark = [pytest.mark.kafka]


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _fresh(broker: Broker, pg_dsn: str) -> Settings:
    prefix = f"ac{uuid.uuid4().hex[:8]}."
    return Settings(
        kafka=fast_kafka(broker.bootstrap, prefix, broker=broker),
        database=DatabaseSettings(dsn=pg_dsn),  # type: ignore[arg-type]
        contracts_dir=REPO / "examples" / "contracts",
        health_port=-1,
    )


async def test_the_broker_really_auto_creates_topics(apache_kafka: ApacheKafka) -> None:
    """The control: without floe's guard a plain aiokafka client gets a 1-partition topic created."""
    name = f"control-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(name, bootstrap_servers=apache_kafka.bootstrap, group_id=None)
    await consumer.start()
    try:
        # the broker creates it on the consumer's metadata request, in its own time
        async def created() -> bool:
            return name in await _topics(apache_kafka.bootstrap)

        with contextlib.suppress(AssertionError):
            await wait_for(created, timeout=10)
    finally:
        await consumer.stop()
    assert name in await _topics(apache_kafka.bootstrap)


@pytest.mark.parametrize("kind", ["processor", "ticker", "sink-postgres", "sink-alerts", "sink-openlineage"])
async def test_no_deployable_gets_a_floe_topic_auto_created(
    apache_kafka: ApacheKafka, pg_dsn: str, kind: str
) -> None:
    """(source-iceberg checks its topic the same way before producing, but needs a catalog to get that far.)"""
    s = _fresh(apache_kafka, pg_dsn)
    svc = alerts_sink(s, ALERTS) if kind == "sink-alerts" else build(kind, s)
    with pytest.raises(ConfigError, match=r"do not exist: run `floe topics create`"):
        await asyncio.wait_for(svc.run(), 30)
    await asyncio.sleep(0.5)  # a background metadata refresh would have landed by now
    created = {t for t in await _topics(apache_kafka.bootstrap) if t.startswith(s.kafka.topic_prefix)}
    assert created == set()


async def test_the_client_never_gets_its_topic_auto_created(apache_kafka: ApacheKafka, pg_dsn: str) -> None:
    s = _fresh(apache_kafka, pg_dsn)
    async with FloeClient(s.kafka.bootstrap_servers, topic_prefix=s.kafka.topic_prefix, retries=3) as client:
        with pytest.raises(PublishError, match=r"does not exist at .*: run `floe topics create`"):
            await client.apublish_materialization("sales.orders", row_count=1)
        created = {t for t in await _topics(apache_kafka.bootstrap) if t.startswith(s.kafka.topic_prefix)}
        assert created == set()
        await ensure_topics(s.kafka)  # `floe topics create`: the right partition count, then the client works
        await client.apublish_materialization("sales.orders", row_count=1)
    parts = await _partitions(
        apache_kafka.bootstrap, topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    )
    assert parts == s.kafka.partitions


async def _partitions(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (d,) = await admin.describe_topics([topic])
        return len(d["partitions"])
    finally:
        await admin.close()


async def test_co_partitioned_inputs_with_different_counts_refuse_to_start(
    broker: Broker, pg_dsn: str, tmp_path: Path
) -> None:
    """On each broker: `floe run processor` stops at once with one line naming every input's partition count."""
    s = _fresh(broker, pg_dsn)
    mat = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(mat, 2, 1)])  # created by hand, not by `floe topics create`
    finally:
        await admin.close()
    await ensure_topics(s.kafka)  # the rest: 3 partitions
    proc = await start_floe(["run", "processor"], floe_env(s), tmp_path / "p.log")
    rc = await asyncio.wait_for(proc.wait(), 60)
    out = (tmp_path / "p.log").read_text()
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert rc == 1, out
    assert lines[-1].startswith("Error: input topics must be co-partitioned (same partition count): "), out
    assert f"{mat}=2" in lines[-1] and f"{topic_name(s.kafka.topic_prefix, TopicKey.TICKS)}=3" in lines[-1]
    assert "Traceback" not in out and " ERROR " not in out  # no unclosed client either


async def test_the_client_does_not_retry_a_record_the_broker_will_never_take(
    kafka_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Kafka refuses a 2 MB record (message.max.bytes); retrying the same bytes is pointless: one clear error."""
    k = kafka_settings.kafka
    caplog.set_level(logging.WARNING, logger="floe_stream.client")
    async with FloeClient(kafka=k, retries=5, backoff_s=2.0) as client:
        with pytest.raises(PublishError, match=r"the record \(2000000 bytes\) is larger than the broker"):
            await client.apublish_raw(TopicKey.MATERIALIZATIONS, "test.fast", b"x" * 2_000_000)
    retries = [
        r.getMessage() for r in caplog.records if r.name == "floe_stream.client" and "retry" in r.getMessage()
    ]
    assert retries == []  # not retried (each retry logs "publish to … failed (…), retry n/5")
