"""The processor's state changelog on Apache Kafka with compaction really applied.

Tansu stores topic configs but never compacts; Kafka's log cleaner compacts closed segments only, so the test's
changelog topic rolls a segment every 200 ms (``segment.ms``) and is cleanable at once
(``min.cleanable.dirty.ratio``, ``min.compaction.lag.ms``). After several rounds of state changes and a
retired asset, the cleaner leaves one record per key (the retired asset: its tombstone only), and a new
processor rebuilds exactly the state the old one held.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from floe_stream.processors.model import AssetState
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.changelog import CHECKPOINT_KEY
from floe_stream.runtime.deployables.checks_runtime import publish_contracts, retire_contracts
from floe_stream.runtime.devtools.embedded import ApacheKafka
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.settings import Settings
from floe_stream.topics import ResolvedData, TopicKey, ViolationData
from floe_stream.topics.catalog import topic_name
from tests.conftest import make_settings, wait_for
from tests.integration.checks_support import write
from tests.integration.helpers import Running, publish, read_all, violations
from tests.integration.test_failover import N, commit, many_tables_contract

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

COMPACT_NOW = {
    "cleanup.policy": "compact",
    "segment.ms": "200",  # a segment closes (becomes cleanable) on the first append 200 ms after it opened
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
}
RETIRED = "test.retired"
RETIRED_CONTRACT = f"""apiVersion: v3.1.0
kind: DataContract
id: retire-me
name: retire-me
version: 1.0.0
status: active
schema:
  - name: retired
    physicalType: table
    customProperties: [{{property: floe, value: {{asset: {RETIRED}}}}}]
    properties:
      - {{name: id, logicalType: integer, physicalType: long, required: true}}
"""


async def _end_offsets(broker: ApacheKafka, topic: str, partitions: int) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def _count(s: Settings, kind: type, n: int) -> bool:
    return len({e.id for e in await violations(s) if isinstance(e.data, kind)}) >= n


def _latest(records: list) -> dict[str, str]:  # type: ignore[type-arg]
    """The state a rebuild would load: the last value per asset key, tombstones delete."""
    out: dict[str, str] = {}
    for r in records:
        if r.key == CHECKPOINT_KEY or r.key is None:
            continue
        if r.value:
            out[r.key.decode()] = AssetState.model_validate_json(r.value).model_dump_json()
        else:
            out.pop(r.key.decode(), None)
    return out


async def test_state_restored_from_a_compacted_changelog_equals_the_state_before(
    apache_kafka: ApacheKafka, pg_dsn: str, tmp_path: Path
) -> None:
    base = make_settings(apache_kafka, pg_dsn)
    k = base.kafka.model_copy(update={"commit_interval_ms": 0})  # a state write after every batch
    s = base.model_copy(update={"kafka": k, "contracts_dir": many_tables_contract(tmp_path / "contracts")})
    state_topic = topic_name(k.topic_prefix, TopicKey.PROCESSOR_STATE)
    admin = AIOKafkaAdminClient(bootstrap_servers=apache_kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(state_topic, k.partitions, 1, topic_configs=COMPACT_NOW)])
    finally:
        await admin.close()
    await ensure_topics(s.kafka)  # the other topics (the changelog exists: skipped)
    await publish_contracts(s, [write(tmp_path / "pub", "r.odcs.yaml", RETIRED_CONTRACT)])

    first = processor_service(s, load_registry(s))
    async with Running(first):
        await wait_for(lambda: first.ever_assigned, timeout=30)
        assert first.registry.get(RETIRED) is not None
        await publish(
            s,
            TopicKey.CATALOG_COMMITS,
            [(RETIRED, commit(0, 1, extra=True)[1].model_copy(update={"table": RETIRED}))],
        )
        # four rounds: every table gains a column (violation), loses it (resolved), gains, loses
        for rnd in range(1, 5):
            await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, rnd, extra=rnd % 2 == 1) for i in range(N)])
            kind = ViolationData if rnd % 2 else ResolvedData
            want = N * ((rnd + 1) // 2) + (kind is ViolationData)  # + the retired asset's violation
            await wait_for(lambda kind=kind, want=want: _count(s, kind, want), timeout=60)
        await retire_contracts(s, ["retire-me"])
        await wait_for(lambda: RETIRED not in first.pipeline.asset_ids(), timeout=30)

        async def tombstoned() -> bool:
            recs = [r for r in await read_all(s, TopicKey.PROCESSOR_STATE) if r.key == RETIRED.encode()]
            return bool(recs) and not recs[-1].value

        await wait_for(tombstoned, timeout=20)

        async def written_through() -> bool:  # the last commit's state write, of every asset's partition
            held = {a: st.model_dump_json() for a, st in first.pipeline.engine.states.items()}
            return _latest(await read_all(s, TopicKey.PROCESSOR_STATE)) == held

        with contextlib.suppress(AssertionError):
            await wait_for(written_through, timeout=20)
        before = {a: st.model_dump_json() for a, st in first.pipeline.engine.states.items()}
    written = await read_all(s, TopicKey.PROCESSOR_STATE)  # the cleaner may have compacted some already
    assert _latest(written) == before and len(before) == N
    appended = await _end_offsets(apache_kafka, state_topic, k.partitions)  # every record ever appended

    # roll the segments: one harmless tombstone per partition, after segment.ms (a rebuild ignores it)
    await asyncio.sleep(0.5)
    producer = AIOKafkaProducer(bootstrap_servers=apache_kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for p in range(k.partitions):
            await producer.send_and_wait(state_topic, None, key=b"__roll__", partition=p)
    finally:
        await producer.stop()

    async def compacted() -> list | None:  # type: ignore[type-arg]
        recs = await read_all(s, TopicKey.PROCESSOR_STATE)
        return recs if len(recs) == len({(r.partition, r.key) for r in recs}) else None

    left = await wait_for(compacted, timeout=60)  # the log cleaner ran: one record per key and partition
    assert len(left) < appended // 2, (len(left), appended)  # four rounds of N states, now one per asset
    assert [r.value for r in left if r.key == RETIRED.encode()] == [b""] or [
        r.value for r in left if r.key == RETIRED.encode()
    ] == [None]  # only the retired asset's tombstone (kept for delete.retention.ms)
    assert _latest(left) == before

    second = processor_service(s, load_registry(s))
    async with Running(second):
        await wait_for(lambda: second.ever_assigned, timeout=30)
        assert second.registry.get(RETIRED) is None  # the contracts topic is compacted too
        after = {a: st.model_dump_json() for a, st in second.pipeline.engine.states.items()}
    assert after == before
