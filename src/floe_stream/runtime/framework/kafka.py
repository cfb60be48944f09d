"""Kafka edges: client factories, topic creation, batched produce grouped by partition, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from floe_stream.processors.model import Record
from floe_stream.settings import KafkaSettings
from floe_stream.topics.catalog import CATALOGUE, TopicKey, topic_name

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
LaneRecord = tuple[bytes | None, bytes, Headers]
NO_HEADERS: Headers = []
"""Shared by headerless lane records (aiokafka's batch builder wants a list and only reads it)."""
Lanes = dict[tuple[str, int], list[LaneRecord]]
"""Records already grouped by (topic, partition), for :meth:`BatchProducer.enqueue`."""


@dataclass(slots=True)
class OutRecord:
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)


def make_producer(cfg: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    kw: dict[str, Any] = {
        **cfg.client_kwargs(),
        "client_id": cfg.client_id,
        "linger_ms": cfg.linger_ms,
        "acks": "all",
        "max_request_size": cfg.max_request_size,
        "max_batch_size": 1024 * 1024,
        # off by default: Tansu has no InitProducerId (effects are idempotent by id regardless); on for Apache Kafka
        "enable_idempotence": cfg.enable_idempotence,
    }
    kw.update(overrides)
    return AIOKafkaProducer(**kw)


async def start_producer(producer: AIOKafkaProducer, cfg: KafkaSettings) -> None:
    """Start a producer; an idempotent one the broker cannot serve (Tansu 0.6 answers InitProducerId with
    UnknownError) is a configuration error with one clear message, not a traceback."""
    try:
        await producer.start()
    except KafkaError as exc:
        if not cfg.enable_idempotence:
            raise
        with contextlib.suppress(Exception):
            await producer.stop()
        from floe_stream.settings import ConfigError

        raise ConfigError(
            f"kafka.enable_idempotence is on but the broker at {cfg.bootstrap_servers} refused an idempotent "
            f"producer ({type(exc).__name__}); Tansu has none: set FLOE_KAFKA__ENABLE_IDEMPOTENCE=false"
        ) from None


def make_consumer(
    cfg: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    kw: dict[str, Any] = {
        **cfg.client_kwargs(),
        "client_id": cfg.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": cfg.fetch_max_wait_ms,
        "session_timeout_ms": cfg.session_timeout_ms,
        "heartbeat_interval_ms": cfg.heartbeat_interval_ms,
        "max_poll_interval_ms": cfg.max_poll_interval_ms,
        "max_partition_fetch_bytes": cfg.max_request_size,
        "fetch_max_bytes": max(cfg.max_request_size * 4, 50 * 1024 * 1024),
        # Co-partitioning: the same partition number of every input topic goes to the same member.
        "partition_assignment_strategy": (RangePartitionAssignor,),
        # exactly_once: records of open or aborted processor transactions are never seen (the state
        # restore included); at_least_once keeps the default (Tansu has no transactions)
        "isolation_level": "read_committed" if cfg.exactly_once else "read_uncommitted",
    }
    kw.update(overrides)
    return AIOKafkaConsumer(*topics, **kw)


async def start_client(client: Any, bootstrap_servers: str) -> None:
    """``client.start()``; when the broker is unreachable, close the client before raising (no "Unclosed
    AIOKafka…" noise after the one-line error) and raise :class:`KafkaUnavailable` naming the servers (as
    configured: nothing is read from the client's internals) and the setting."""
    try:
        await client.start()
    except BaseException as exc:
        closer = getattr(client, "stop", None) or client.close
        with contextlib.suppress(Exception):
            await closer()
        if isinstance(exc, KafkaError | OSError):
            raise KafkaUnavailable(
                f"cannot reach Kafka at {bootstrap_servers} (FLOE_KAFKA__BOOTSTRAP_SERVERS): {type(exc).__name__}"
            ) from None
        raise


class KafkaUnavailable(Exception):
    """The broker cannot be reached; the message names the bootstrap servers and the setting."""


async def ensure_topics(cfg: KafkaSettings, keys: Sequence[TopicKey] | None = None) -> list[str]:
    """Create floe's topics (idempotent). Returns the names created."""
    wanted: dict[str, dict[str, str]] = {}
    for key in keys or list(TopicKey):
        wanted[topic_name(cfg.topic_prefix, key)] = (
            {"cleanup.policy": "compact"} if CATALOGUE[key].compacted else {}
        )
    return await create_missing_topics(cfg, wanted)


async def create_missing_topics(cfg: KafkaSettings, topics: dict[str, dict[str, str]]) -> list[str]:
    """Create each of ``topics`` (name → topic configs) that does not exist, with ``kafka.partitions`` and
    ``kafka.replication_factor``, and wait until they are visible. Returns the names created."""
    admin = AIOKafkaAdminClient(**cfg.client_kwargs(), client_id=f"{cfg.client_id}-admin")
    await start_client(admin, cfg.bootstrap_servers)
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name, cfg.partitions, cfg.replication_factor, topic_configs=configs)
            for name, configs in topics.items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica/hook won the race
                await admin.create_topics(new)
            created = [t.name for t in new]
            await _wait_visible(admin, created)
    finally:
        await admin.close()
    return created


async def _wait_visible(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float = 30.0) -> None:
    """Apache Kafka answers CreateTopics once the controller accepted them; the broker's metadata (what every
    client and ``partition_counts`` see) follows a little later. Return when each topic is listed with a
    leader for every partition, so a deployable started right after ``floe topics create`` finds them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        pending = set(topics) - set(await admin.list_topics())
        if not pending:
            described = await admin.describe_topics(topics)
            pending = {
                d["topic"]
                for d in described
                if d.get("error_code") or not d["partitions"] or any(p["leader"] < 0 for p in d["partitions"])
            }
        if not pending:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"topics {', '.join(sorted(pending))} not visible {timeout_s}s after creation")
        await asyncio.sleep(0.05)


class BatchProducer:
    """Produce a batch of records grouped by (topic, partition) with ``send_batch``; await them all.

    ``send()`` per record costs ~18 µs; building one batch per partition costs ~5 µs per record
    (docs/PERFORMANCE.md). Keys are preserved and every record goes to the partition we chose.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send_all(self, records: Sequence[OutRecord], lanes: Lanes | None = None) -> None:
        """Produce and wait for every acknowledgement."""
        futures = await self.enqueue(records, lanes)
        if futures:
            await asyncio.gather(*futures)

    async def enqueue(
        self, records: Sequence[OutRecord], lanes: Lanes | None = None
    ) -> list[asyncio.Future[Any]]:
        """Hand the records to the producer (sent at once with ``linger_ms=0``); return the futures of
        their acknowledgements without waiting for them. Waits only while a partition's previous batch
        has not left the accumulator (aiokafka's back-pressure). ``lanes`` are records already grouped by
        (topic, partition) as (key, value, headers) — the processor's check results, one per event."""
        groups: Lanes = defaultdict(list)
        if lanes:
            groups.update(lanes)
        for r in records:
            groups[(r.topic, r.partition)].append((r.key, r.value, r.headers))
        futures: list[asyncio.Future[Any]] = []
        for (t, p), rs in groups.items():  # in turn, no task per group: send_batch returns at once unless
            futures.extend(await self._send_group(t, p, rs))  # that partition's last batch is still queued
        return futures

    async def _send_group(
        self, topic: str, partition: int, records: list[LaneRecord]
    ) -> list[asyncio.Future[Any]]:
        futures: list[asyncio.Future[Any]] = []
        batch = self.producer.create_batch()
        for key, value, headers in records:
            meta = batch.append(key=key, value=value, timestamp=None, headers=headers)
            if meta is None:  # batch full: ship it and start another
                batch.close()
                futures.append(await self.producer.send_batch(batch, topic, partition=partition))
                batch = self.producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    # a single record larger than a batch: plain send
                    futures.append(
                        await self.producer.send(topic, value, key=key, partition=partition, headers=headers)
                    )
        if batch.record_count():
            batch.close()
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        return futures


DLQ_TRUNCATED_BYTES = 64 * 1024
"""What a dead letter keeps of a value too large to copy whole (its head; the size is in a header)."""


def dead_letter(
    dlq_topic: str,
    rec: Record,
    reason: str,
    partitions: int,
    max_value_bytes: int = 1_000_000,
) -> OutRecord:
    """The original bytes, with the reason and origin in headers. A value over ``max_value_bytes`` is cut to
    its first 64 KiB (header ``floe-dlq-truncated``: the original size), so that the dead letter itself fits
    the broker's message.max.bytes (Apache Kafka: 1,048,588 by default) and never fails the batch."""
    value = rec.value or b""
    headers: Headers = [
        ("floe-dlq-reason", reason[:1000].encode()),
        ("floe-dlq-topic", rec.topic.encode()),
        ("floe-dlq-partition", str(rec.partition).encode()),
        ("floe-dlq-offset", str(rec.offset).encode()),
        *[(k, v) for k, v in (rec.headers or ()) if not k.startswith("floe-dlq-")],
    ]
    if len(value) > max_value_bytes:
        headers.append(("floe-dlq-truncated", str(len(value)).encode()))
        value = value[: min(DLQ_TRUNCATED_BYTES, max_value_bytes)]
    return OutRecord(dlq_topic, rec.partition % partitions, rec.key, value, headers)


async def partition_counts(cfg: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    """Partition count of each topic; a missing topic is a configuration error (never auto-created)."""
    from floe_stream.settings import ConfigError

    counts = await existing_partition_counts(cfg, topics)
    missing = [t for t in topics if t not in counts]
    if missing:
        raise ConfigError(f"topic(s) {', '.join(missing)} do not exist: run `floe topics create`")
    return counts


async def existing_partition_counts(cfg: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    """Partition count of each of ``topics`` that exists (a missing one is left out), from the cluster's
    metadata through the admin client (never a consumer's private client)."""
    admin = AIOKafkaAdminClient(**cfg.client_kwargs(), client_id=f"{cfg.client_id}-admin")
    await start_client(admin, cfg.bootstrap_servers)
    try:
        existing = set(await admin.list_topics())
        present = [t for t in topics if t in existing]
        if not present:
            return {}
        described = await admin.describe_topics(present)
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described}
