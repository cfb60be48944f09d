"""Records larger than a broker takes: an input over Kafka's ``message.max.bytes`` (1,048,588 by default) and a
5 MB input value. Each is dead-lettered once with a reason (the DLQ copy truncated so that it fits, the original
size in a header), the stream goes on and the processor never crash-loops. On each broker (ids tansu/kafka);
on Apache Kafka the input topic accepts large records by a topic override, as an operator would set it."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.devtools.embedded import Broker
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.topics import MaterializationEvent, TopicKey
from floe_stream.topics.catalog import topic_name
from tests.conftest import REPO, make_settings, wait_for
from tests.integration.helpers import Running, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

BIG_TOPIC = {"max.message.bytes": str(8 * 1024 * 1024)}


def _big_materialization(size: int) -> bytes:
    """A well-formed JSON materialization event of about ``size`` bytes (a huge label: over the label cap too,
    but the size is what refuses it first, before it is decoded)."""
    ev = {"event_id": f"big-{size}", "asset": "test.fast", "materialized_at": datetime.now(UTC).isoformat(),
          "labels": {"blob": "x" * size}}  # fmt: skip
    return orjson.dumps(ev)


async def test_oversized_inputs_are_dead_lettered_truncated_and_the_stream_goes_on(
    broker: Broker, pg_dsn: str
) -> None:
    s = make_settings(broker, pg_dsn).model_copy(
        update={"contracts_dir": REPO / "tests" / "fixtures" / "contracts"}
    )
    mat = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(mat, s.kafka.partitions, 1, topic_configs=BIG_TOPIC)])
    finally:
        await admin.close()
    await ensure_topics(s.kafka)
    over_broker_limit = _big_materialization(1_200_000)  # > message.max.bytes, < the topic's override
    five_mb = b'{"asset": "test.fast", "blob": "' + b"y" * (5 * 1024 * 1024) + b'"}'
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=8 * 1024 * 1024)
    await producer.start()
    processor = processor_service(s, load_registry(s))
    try:
        async with Running(processor):
            await wait_for(lambda: processor.ever_assigned, timeout=30)
            for value in (over_broker_limit, five_mb):
                await producer.send_and_wait(mat, value, key=b"test.fast", partition=0)
            ok = MaterializationEvent(event_id="ok", asset="test.fast", materialized_at=datetime.now(UTC))
            await producer.send_and_wait(mat, ok.model_dump_json(by_alias=True).encode(), key=b"test.fast")

            async def done() -> list | None:  # type: ignore[type-arg]
                dlq = await read_all(s, TopicKey.DLQ)
                results = await read_all(s, TopicKey.CHECK_RESULTS)
                return dlq if len(dlq) >= 2 and results else None

            dlq = await wait_for(done, timeout=40)  # the event after them is evaluated: the stream goes on
            assert processor.batches > 0
    finally:
        await producer.stop()
    assert len(dlq) == 2  # once each: no crash, no replay loop
    for rec, original in zip(dlq, (over_broker_limit, five_mb), strict=True):
        h = dict(rec.headers)
        reason = h["floe-dlq-reason"].decode()
        assert reason.startswith(f"record too large: {len(original)} bytes > ")
        assert int(h["floe-dlq-truncated"]) == len(original)
        assert rec.value is not None and len(rec.value) < 100_000 and original.startswith(rec.value)
    results = await read_all(s, TopicKey.CHECK_RESULTS)
    assert any(orjson.loads(r.value)["asset"] == "test.fast" for r in results if r.value)
