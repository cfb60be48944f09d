"""processing_guarantee=exactly_once on Apache Kafka: a processor killed (SIGKILL) with a transaction open,
a second takes over — a read_committed reader sees every violation record, and every dead letter of the
malformed input interleaved with it, exactly once. On Tansu the processor refuses to start with one clear
message."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import BaseModel

from floe_stream.contracts.registry import ContractRegistry
from floe_stream.processors.ids import stable_id
from floe_stream.runtime.deployables.app import postgres_sink, processor_service
from floe_stream.runtime.devtools.embedded import ApacheKafka, EmbeddedKafka
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.settings import ConfigError, Settings
from floe_stream.topics import ResolvedData, TopicKey, ViolationData, topic_name
from floe_stream.topics.enums import CheckType, Severity
from floe_stream.topics.violation import ViolationCloudEvent, decode_violation, encode_violation
from tests.conftest import fast_kafka, wait_for
from tests.integration.helpers import Running, floe_env, publish, start_floe, stop_process
from tests.integration.test_failover import commit, many_tables_contract

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

N = 40


@pytest.fixture
async def apache_kafka_settings(apache_kafka: ApacheKafka, tmp_path: Path) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    k = fast_kafka(apache_kafka.bootstrap, prefix, broker=apache_kafka)
    s = Settings(kafka=k, contracts_dir=tmp_path, health_port=-1, clock_skew_s=0.0, tick_interval_s=0.5)
    await ensure_topics(s.kafka)
    return s


async def read_violations(
    s: Settings, isolation: str, key: TopicKey = TopicKey.VIOLATIONS
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of the violations topic (or ``key``'s) up to its end (the last stable offset for
    read_committed)."""
    topic = topic_name(s.kafka.topic_prefix, key)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.kafka.bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        isolation_level=isolation,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(s.kafka.partitions)]
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


def decoded(recs: list[ConsumerRecord[bytes, bytes]]) -> list[ViolationCloudEvent]:
    return [decode_violation(dict(r.headers), r.key, r.value) for r in recs]


async def committed_count(s: Settings, kind: type) -> bool | int:
    return sum(isinstance(e.data, kind) for e in decoded(await read_violations(s, "read_committed")))


async def test_killed_with_an_open_transaction_each_violation_is_seen_exactly_once(
    apache_kafka_settings: Settings, tmp_path: Path
) -> None:
    s = apache_kafka_settings.model_copy(
        update={"contracts_dir": many_tables_contract(tmp_path / "contracts")}
    )
    # a long commit interval: A's outputs sit in an open transaction when it is killed
    env = floe_env(s, FLOE_KAFKA__COMMIT_INTERVAL_MS="3000", FLOE_KAFKA__PROCESSING_GUARANTEE="exactly_once")

    async def uncommitted_ahead() -> bool:
        dirty = await read_violations(s, "read_uncommitted")
        clean = await read_violations(s, "read_committed")
        return len(dirty) > len(clean)

    flowing = asyncio.Event()  # the noise runs: A's fetches never come back empty from now on

    async def noise(stop: asyncio.Event) -> None:
        """Commits of an unmonitored table, every few ms: A's fetches never come back empty, so it
        commits on its interval only (an idle processor commits at once) — transactions stay open."""
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, linger_ms=0)
        await producer.start()
        topic = topic_name(s.kafka.topic_prefix, TopicKey.CATALOG_COMMITS)
        try:
            seq = 0
            while not stop.is_set():
                seq += 1
                ev = commit(0, seq, extra=False)[1].model_copy(update={"table": "test.noise"})
                await producer.send_and_wait(
                    topic, ev.model_dump_json(by_alias=True).encode(), key=b"test.noise"
                )
                flowing.set()
                await asyncio.sleep(0.005)
        finally:
            await producer.stop()

    a = await start_floe(["run", "processor"], env, tmp_path / "a.log")
    b = None
    quiet = asyncio.Event()
    noisy = asyncio.create_task(noise(quiet))
    try:
        # round 1: every table gains a column → one column_added violation each. Published one table at a
        # time while we look, so that A keeps opening transactions with violations in them (an idle A, or
        # one that has committed the last of them, has nothing open to be killed with)
        await asyncio.wait_for(flowing.wait(), timeout=30)
        sent = 0
        # kill A while it has produced violations inside a transaction not committed yet; frozen
        # (SIGSTOP) while we look, so no commit slips in between the look and the kill
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            if sent < N - 1:  # at least one table is left for B
                await publish(s, TopicKey.CATALOG_COMMITS, [commit(sent, 1, extra=True)])
                sent += 1
                await asyncio.sleep(0.2)  # A evaluates it inside its open transaction
            a.send_signal(signal.SIGSTOP)
            # still ahead a moment later: not a commit A had already sent (the broker finishes that one
            # while A is stopped), but a transaction A cannot end any more
            if await uncommitted_ahead() and not await asyncio.sleep(0.5) and await uncommitted_ahead():
                break
            a.send_signal(signal.SIGCONT)
            assert asyncio.get_running_loop().time() < deadline, "A never had an open transaction"
            await asyncio.sleep(0.05)
        a.send_signal(signal.SIGKILL)  # no commit, no abort, no goodbye
        await a.wait()
        quiet.set()
        await noisy
        b = await start_floe(["run", "processor"], env, tmp_path / "b.log")
        await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 1, extra=True) for i in range(sent, N)])
        await wait_for(lambda: _at_least(s, ViolationData, N), timeout=90)
        # round 2 on the survivor: the column is dropped again → every episode resolves
        await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 2, extra=False) for i in range(N)])
        await wait_for(lambda: _at_least(s, ResolvedData, N), timeout=60)
    finally:
        quiet.set()
        await noisy
        for p in (a, b):
            if p is not None:
                await stop_process(p)
    committed = await read_violations(s, "read_committed")
    events = decoded(committed)
    fired = [e for e in events if isinstance(e.data, ViolationData)]
    resolved = [e for e in events if isinstance(e.data, ResolvedData)]
    assert len(committed) == 2 * N  # the expected number of records, no more
    assert len({e.id for e in events}) == 2 * N  # each id once
    assert len({(r.key, r.value) for r in committed}) == 2 * N  # and no record twice
    assert sorted(e.data.asset for e in fired) == sorted(f"test.t{i:02d}" for i in range(N))
    assert sorted(e.data.asset for e in resolved) == sorted(f"test.t{i:02d}" for i in range(N))
    # the drill really happened: A's uncommitted violations are in the log (aborted), replayed by B
    everything = await read_violations(s, "read_uncommitted")
    assert len(everything) > 2 * N


async def _at_least(s: Settings, kind: type, n: int) -> bool:
    return int(await committed_count(s, kind)) >= n


def _malformed(start: int, n: int) -> list[tuple[str, bytes]]:
    return [(f"bad{j}", f"{{not json {j}".encode()) for j in range(start, start + n)]


async def _dead_letters(s: Settings, isolation: str) -> list[ConsumerRecord[bytes, bytes]]:
    return await read_violations(s, isolation, TopicKey.DLQ)


async def _group_committed(s: Settings) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{s.kafka.group_prefix}-processor")
    finally:
        await admin.close()
    return any(m.offset > 0 for m in offsets.values())


async def test_killed_mid_stream_with_malformed_input_each_dead_letter_is_seen_exactly_once(
    apache_kafka_settings: Settings, tmp_path: Path
) -> None:
    """Malformed records interleaved with valid ones; A is killed while handling them, B takes over a backlog
    (its first fetch arrives while it is still fencing A and restoring the state). Every dead letter is in
    the transaction of the input that caused it: a read_committed reader sees each bad input's dead letter
    once, and each violation once (issue 24: 2,082–2,175 dead letters for 1,811 bad inputs)."""
    s = apache_kafka_settings.model_copy(
        update={"contracts_dir": many_tables_contract(tmp_path / "contracts")}
    )
    env = floe_env(s, FLOE_KAFKA__PROCESSING_GUARANTEE="exactly_once")

    def interleaved(seq: int, extra: bool, bad_from: int) -> list[tuple[str | None, BaseModel | bytes]]:
        out: list[tuple[str | None, BaseModel | bytes]] = []
        for (k, v), good in zip(
            _malformed(bad_from, N), [commit(i, seq, extra) for i in range(N)], strict=True
        ):
            out.extend([(k, v), good])
        return out

    a = await start_floe(["run", "processor"], env, tmp_path / "a.log")
    b = None
    try:
        # round 1, committed by A: the group has offsets and A a checkpoint to be taken over from
        await publish(s, TopicKey.CATALOG_COMMITS, interleaved(1, True, 0))
        await wait_for(lambda: _count(_dead_letters(s, "read_committed"), N), timeout=90)
        await wait_for(lambda: _group_committed(s), timeout=30)
        # round 2: A is killed (no commit, no abort) once it has handled some of it
        await publish(s, TopicKey.CATALOG_COMMITS, interleaved(2, False, N))
        await wait_for(lambda: _count(_dead_letters(s, "read_uncommitted"), N + 1), timeout=60)
        a.send_signal(signal.SIGKILL)
        await a.wait()
        # round 3 while nobody consumes: B starts with a backlog
        await publish(s, TopicKey.CATALOG_COMMITS, interleaved(3, False, 2 * N))
        b = await start_floe(["run", "processor"], env, tmp_path / "b.log")
        await wait_for(lambda: _count(_dead_letters(s, "read_committed"), 3 * N), timeout=120)
        await wait_for(lambda: _at_least(s, ResolvedData, N), timeout=60)
    finally:
        for p in (a, b):
            if p is not None:
                await stop_process(p)
    dead = await _dead_letters(s, "read_committed")
    origins = [
        (int(dict(r.headers)["floe-dlq-partition"]), int(dict(r.headers)["floe-dlq-offset"])) for r in dead
    ]
    assert len(dead) == 3 * N  # one per bad input, no more
    assert len(set(origins)) == 3 * N  # each bad input once
    assert sorted(r.value for r in dead) == sorted(v for _, v in _malformed(0, 3 * N))
    events = decoded(await read_violations(s, "read_committed"))
    fired = [e for e in events if isinstance(e.data, ViolationData)]
    resolved = [e for e in events if isinstance(e.data, ResolvedData)]
    assert len({e.id for e in events}) == len(events) == 2 * N  # opened, then resolved: once each
    assert len(fired) == N and len(resolved) == N


async def _count(read: Awaitable[list[ConsumerRecord[bytes, bytes]]], n: int) -> bool:
    return len(await read) >= n


async def test_exactly_once_is_refused_on_tansu_with_one_message(
    kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    k = fast_kafka(kafka.bootstrap, prefix).model_copy(update={"processing_guarantee": "exactly_once"})
    s = Settings(kafka=k, contracts_dir=tmp_path, health_port=-1)
    await ensure_topics(k)
    svc = processor_service(s, ContractRegistry())
    with pytest.raises(ConfigError) as err:
        await svc.setup()
    msg = str(err.value)
    assert "\n" not in msg
    assert "exactly_once needs a broker with Kafka transactions" in msg
    assert "FLOE_KAFKA__PROCESSING_GUARANTEE=at_least_once" in msg


async def test_floe_run_processor_refuses_exactly_once_on_tansu(kafka: EmbeddedKafka, tmp_path: Path) -> None:
    s = Settings(kafka=fast_kafka(kafka.bootstrap, f"t{uuid.uuid4().hex[:8]}."), contracts_dir=tmp_path)
    await ensure_topics(s.kafka)
    env = floe_env(s, FLOE_KAFKA__PROCESSING_GUARANTEE="exactly_once")
    proc = await start_floe(["run", "processor"], env, tmp_path / "p.log")
    rc = await proc.wait()
    text = (tmp_path / "p.log").read_text()
    assert rc != 0, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "exactly_once needs a broker with Kafka transactions" in errors[0], text


async def test_scale_out_and_back_hands_partitions_over_without_a_duplicate(
    apache_kafka_settings: Settings, tmp_path: Path
) -> None:
    """1 → 2 → 1 exactly_once processors: each handover commits the leaver's transactions (revocation) and
    the joiner fences and restores; a read_committed reader sees every record once."""
    s = apache_kafka_settings.model_copy(
        update={"contracts_dir": many_tables_contract(tmp_path / "contracts")}
    )
    env = floe_env(s, FLOE_KAFKA__COMMIT_INTERVAL_MS="500", FLOE_KAFKA__PROCESSING_GUARANTEE="exactly_once")
    a = await start_floe(["run", "processor"], env, tmp_path / "a.log")
    b = None
    try:
        for i in range(N // 2):
            await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 1, extra=True)])
        await wait_for(lambda: _at_least(s, ViolationData, 1), timeout=60)
        b = await start_floe(["run", "processor"], env, tmp_path / "b.log")  # 1 → 2: a rebalance
        await wait_for(
            lambda: _assignments(tmp_path / "a.log") >= 2 and _assignments(tmp_path / "b.log") >= 1, 60
        )
        for i in range(N // 2, N):
            await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 1, extra=True)])
        await wait_for(lambda: _at_least(s, ViolationData, N), timeout=90)
        await stop_process(a)  # 2 → 1: SIGTERM, A commits and leaves; B owns everything
        a = None
        await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 2, extra=False) for i in range(N)])
        await wait_for(lambda: _at_least(s, ResolvedData, N), timeout=90)
    finally:
        for p in (a, b):
            if p is not None:
                await stop_process(p)
    committed = await read_violations(s, "read_committed")
    events = decoded(committed)
    assert len(committed) == 2 * N
    assert len({e.id for e in events}) == 2 * N
    assert sorted(e.data.asset for e in events if isinstance(e.data, ResolvedData)) == sorted(
        f"test.t{i:02d}" for i in range(N)
    )


def _assignments(log: Path) -> int:
    return log.read_text().count("assigned partitions") if log.exists() else 0


async def test_sinks_never_store_a_violation_of_an_aborted_transaction(kafka_settings: Settings) -> None:
    """exactly_once makes every floe consumer read read_committed: the PostgreSQL sink skips the record of an
    aborted transaction (a killed processor's) and stores the committed one after it."""
    s = kafka_settings.model_copy(
        update={"kafka": kafka_settings.kafka.model_copy(update={"processing_guarantee": "exactly_once"})}
    )
    topic = topic_name(s.kafka.topic_prefix, TopicKey.VIOLATIONS)
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, transactional_id=f"{topic}-t")
    await producer.start()
    try:
        for asset, commit_it in (("test.aborted", False), ("test.committed", True)):
            await producer.begin_transaction()
            key, value, headers = encode_violation(_violation(asset))
            await producer.send_and_wait(topic, value, key=key, headers=headers, partition=0)
            if commit_it:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    conn = await asyncpg.connect(s.database.dsn.get_secret_value())
    try:
        async with Running(postgres_sink(s)):
            # same partition, later offset: once the committed one is stored, the aborted one was passed
            await wait_for(lambda: _stored(conn, "test.committed"), timeout=30)
        assert not await _stored(conn, "test.aborted")
    finally:
        await conn.close()


def _violation(asset: str) -> ViolationData:
    now = datetime.now(UTC)
    return ViolationData(
        violation_id=stable_id("violation", asset, now.isoformat()), correlation_key=f"{asset}/freshness",
        contract_id="c", contract_name="c", contract_version="1.0.0", asset=asset,
        violation_type=CheckType.FRESHNESS, severity=Severity.ERROR, message="stale", detected_at=now,
        episode_started_at=now,
    )  # fmt: skip


async def _stored(conn: asyncpg.Connection, asset: str) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM violation_events WHERE asset = $1", asset))
