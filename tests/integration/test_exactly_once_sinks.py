"""processing_guarantee=exactly_once for the sinks on Apache Kafka: a `floe run sink …` process killed (SIGKILL)
with a transaction open, while malformed records are interleaved with good ones; a second process takes over.
A read_committed reader of the dead-letter topics sees each dead letter exactly once: the PostgreSQL sink's
`dlq` (undecodable input), the alerts sink's `alerts-dlq` (a notification its channel refused)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.runtime.deployables.app import postgres_sink
from floe_stream.runtime.devtools.embedded import EmbeddedKafka
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.settings import ConfigError, Settings
from floe_stream.topics import Severity, TopicKey, ViolationData, topic_name
from floe_stream.topics.violation import encode_violation
from tests.conftest import make_settings, wait_for
from tests.integration.helpers import floe_env, start_floe, stop_process
from tests.integration.receivers import HttpReceiver, Reply

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

COMMIT_INTERVAL_MS = 3000  # long: a killed sink leaves dead letters in a transaction not committed yet


async def read_topic(s: Settings, key: TopicKey, isolation: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of the topic up to its end (the last stable offset for read_committed)."""
    topic = topic_name(s.kafka.topic_prefix, key)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.kafka.bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        isolation_level=isolation,
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set(range(s.kafka.partitions))
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(r for r in recs if r.offset < end[TopicPartition(r.topic, r.partition)])
        return out
    finally:
        await consumer.stop()


def violation_record(i: int) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    now = datetime.now(UTC)
    v = ViolationData(
        violation_id=f"v-{i}", correlation_key=f"t{i}.asset/freshness", contract_id="c", contract_name="c",
        contract_version="1.0.0", asset=f"t{i}.asset", violation_type="freshness", severity=Severity.ERROR,
        message="late", detected_at=now, episode_started_at=now,
    )  # type: ignore[arg-type]  # fmt: skip
    return encode_violation(v)


class Feed:
    """Publishes violations to the sink's input, every ``every``-th followed by a malformed record, until
    stopped; ``bad`` counts the malformed ones."""

    def __init__(self, s: Settings, every: int) -> None:
        self.s, self.every = s, every
        self.sent = self.bad = 0
        self.flowing = asyncio.Event()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.s.kafka.bootstrap_servers, linger_ms=0)
        await producer.start()
        topic = topic_name(self.s.kafka.topic_prefix, TopicKey.VIOLATIONS)
        try:
            while not self.stop.is_set():
                key, value, headers = violation_record(self.sent)
                await producer.send_and_wait(topic, value, key=key, headers=headers)
                self.sent += 1
                if self.sent % self.every == 0:
                    await producer.send_and_wait(topic, b"{broken %d" % self.bad, key=key)
                    self.bad += 1
                self.flowing.set()
                await asyncio.sleep(0.01)
        finally:
            await producer.stop()


async def kill_with_an_open_transaction(
    proc: asyncio.subprocess.Process, uncommitted_ahead: Callable[[], Awaitable[bool]]
) -> None:
    """SIGKILL ``proc`` while it has records in a transaction it has not committed; frozen (SIGSTOP) while we
    look, so no commit slips in between the look and the kill."""
    deadline = asyncio.get_running_loop().time() + 90
    while True:
        proc.send_signal(signal.SIGSTOP)
        # still ahead a moment later: not a commit already on its way (the broker finishes that one while the
        # process is stopped), but a transaction it cannot end any more
        if await uncommitted_ahead() and not await asyncio.sleep(0.5) and await uncommitted_ahead():
            break
        proc.send_signal(signal.SIGCONT)
        assert asyncio.get_running_loop().time() < deadline, "the sink never had an open transaction"
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # no commit, no abort, no goodbye
    await proc.wait()


async def ahead(s: Settings, key: TopicKey) -> bool:
    dirty = await read_topic(s, key, "read_uncommitted")
    clean = await read_topic(s, key, "read_committed")
    return len(dirty) > len(clean)


async def test_sink_killed_with_an_open_transaction_each_dead_letter_is_seen_once(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    s = kafka_settings
    env = floe_env(
        s,
        FLOE_KAFKA__PROCESSING_GUARANTEE="exactly_once",
        FLOE_KAFKA__COMMIT_INTERVAL_MS=str(COMMIT_INTERVAL_MS),
    )
    feed = Feed(s, every=3)
    a = await start_floe(["run", "sink", "postgres"], env, tmp_path / "a.log")
    b = None
    feeding = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(feed.flowing.wait(), timeout=30)
        await kill_with_an_open_transaction(a, lambda: ahead(s, TopicKey.DLQ))
        b = await start_floe(["run", "sink", "postgres"], env, tmp_path / "b.log")
        more = feed.bad + 20  # B takes over while malformed records keep coming
        await wait_for(lambda: feed.bad >= more, timeout=60)
        feed.stop.set()
        await feeding

        async def all_dead_lettered() -> bool:
            return len(await read_topic(s, TopicKey.DLQ, "read_committed")) >= feed.bad

        await wait_for(all_dead_lettered, timeout=120)
    finally:
        feed.stop.set()
        await feeding
        for p in (a, b):
            if p is not None:
                await stop_process(p)
    committed = await read_topic(s, TopicKey.DLQ, "read_committed")
    origins = Counter(
        (h[b"floe-dlq-topic"], h[b"floe-dlq-partition"], h[b"floe-dlq-offset"])
        for h in ({k.encode(): v for k, v in r.headers} for r in committed)
    )
    doubled = {o: n for o, n in origins.items() if n > 1}
    assert not doubled, f"dead letters seen more than once by a read_committed reader: {doubled}"
    assert len(committed) == feed.bad  # every malformed input once, none lost
    assert sorted(r.value for r in committed) == sorted(b"{broken %d" % i for i in range(feed.bad))
    # the drill really happened: A's uncommitted dead letters are in the log (aborted), replayed by B
    assert len(await read_topic(s, TopicKey.DLQ, "read_uncommitted")) > feed.bad


async def test_alerts_sink_killed_with_an_open_transaction_each_undelivered_alert_is_dead_lettered_once(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The alerts sink's only channel refuses every notification (HTTP 400: dead-lettered at once, to
    alerts-dlq). Killed with a transaction open, the ledger has not recorded those failures (it does so after
    the commit): the successor finds them claimed by a dead sink, takes them over once the claim is older than
    the channel's retry budget, and dead-letters them again in its own transaction."""
    s = kafka_settings
    async with HttpReceiver(handler=lambda r: Reply(400, b"no such hook")) as hook:
        config = tmp_path / "floe.yaml"
        config.write_text(
            json.dumps(
                {
                    "alerts": {
                        "policy": {"group_wait_s": 0, "rate_limit": {"max_alerts": 100000}},
                        "channels": [
                            {
                                "name": "hook",
                                "type": "webhook",
                                "url": hook.url,
                                "max_attempts": 1,
                                "timeout_s": 1,
                            }
                        ],
                        "routes": [{"channel": "hook"}],
                    }
                }
            )
        )
        env = floe_env(
            s,
            FLOE_KAFKA__PROCESSING_GUARANTEE="exactly_once",
            FLOE_KAFKA__COMMIT_INTERVAL_MS=str(COMMIT_INTERVAL_MS),
            FLOE_CONFIG_FILE=str(config),
        )
        feed = Feed(s, every=1_000_000)  # good violations only: each one is an alert the channel refuses
        a = await start_floe(["run", "sink", "alerts"], env, tmp_path / "a.log")
        b = None
        feeding = asyncio.create_task(feed.run())
        try:
            await asyncio.wait_for(feed.flowing.wait(), timeout=30)
            await kill_with_an_open_transaction(a, lambda: ahead(s, TopicKey.ALERTS_DLQ))
            b = await start_floe(["run", "sink", "alerts"], env, tmp_path / "b.log")
            more = feed.sent + 50  # B takes over while violations keep coming
            await wait_for(lambda: feed.sent >= more, timeout=60)
            feed.stop.set()
            await feeding

            async def all_dead_lettered() -> bool:
                return len(await read_topic(s, TopicKey.ALERTS_DLQ, "read_committed")) >= feed.sent

            await wait_for(all_dead_lettered, timeout=120)
        finally:
            feed.stop.set()
            await feeding
            for p in (a, b):
                if p is not None:
                    await stop_process(p)
    committed = await read_topic(s, TopicKey.ALERTS_DLQ, "read_committed")
    per_alert = Counter(
        a["event_id"] for r in committed for a in json.loads(r.value)["notification"]["alerts"]
    )
    doubled = {e: n for e, n in per_alert.items() if n > 1}
    assert not doubled, f"alerts dead-lettered more than once for a read_committed reader: {doubled}"
    assert len(per_alert) == feed.sent  # every refused alert is in alerts-dlq, none lost
    assert len(await read_topic(s, TopicKey.ALERTS_DLQ, "read_uncommitted")) > len(committed)


async def test_exactly_once_sink_refuses_inputs_that_are_not_co_partitioned(
    kafka: EmbeddedKafka, pg_dsn: str
) -> None:
    """One transaction per partition number needs every input of the sink to have the same partition count."""
    s = make_settings(kafka, pg_dsn)
    s = s.model_copy(update={"kafka": s.kafka.model_copy(update={"processing_guarantee": "exactly_once"})})
    violations = topic_name(s.kafka.topic_prefix, TopicKey.VIOLATIONS)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(violations, 2, 1)]
        )  # created by hand, not by `floe topics create`
    finally:
        await admin.close()
    await ensure_topics(s.kafka)  # the rest: 3 partitions
    with pytest.raises(ConfigError) as err:
        await postgres_sink(s).start()  # refused: it closes what it opened
    msg = str(err.value)
    assert msg.startswith(
        "kafka.processing_guarantee=exactly_once: the input topics of sink-postgres must be co-"
    )
    assert f"{violations}=2" in msg and f"{topic_name(s.kafka.topic_prefix, TopicKey.CHECK_RESULTS)}=3" in msg
