"""``floe alerts replay``: re-send the notifications of the alerts dead-letter topic.

Reads the topic from the replay group's committed position up to the end offsets seen at start, re-delivers
each notification through the same dispatcher (ledger included: an (event, channel) already delivered is
skipped; one that failed is claimed again), and commits after each batch. A notification that fails again
is dead-lettered again (a new record), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, field

import httpx
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from floe_stream.runtime.framework.database import create_pool
from floe_stream.runtime.framework.kafka import (
    BatchProducer,
    OutRecord,
    make_consumer,
    make_producer,
    partition_counts,
)
from floe_stream.runtime.framework.sink_runtime import SinkContext
from floe_stream.settings import Settings
from floe_stream.sinks.alerts.config import AlertsConfig, resolve_config
from floe_stream.sinks.alerts.delivery import Dispatcher
from floe_stream.sinks.alerts.metrics import AlertInstruments
from floe_stream.sinks.alerts.model import DeadLetter
from floe_stream.sinks.alerts.sink import build_channels
from floe_stream.sinks.alerts.store import AlertStore
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics.catalog import TopicKey, topic_name

log = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    read: int = 0
    delivered: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    invalid: int = 0
    reasons: list[str] = field(default_factory=list)


async def replay_dead_letters(settings: Settings, config: AlertsConfig | None = None) -> ReplayReport:
    config = config if config is not None else resolve_config(settings.alerts, settings.config_file)
    k = settings.kafka
    topic = topic_name(k.topic_prefix, TopicKey.ALERTS_DLQ)
    partitions = (await partition_counts(k, [topic]))[topic]
    report = ReplayReport()
    http = httpx.AsyncClient()
    channels = build_channels(config, http, settings.alerts.public_url)
    pool = await create_pool(settings.database)
    producer = make_producer(k)
    consumer = make_consumer(k, group_id=f"{k.group_prefix}-alerts-replay")
    await producer.start()
    await consumer.start()
    try:
        batch_producer = BatchProducer(producer)

        async def publish(
            _: TopicKey, key: bytes, value: bytes, headers: list[tuple[str, bytes]], *, source: object = None
        ) -> None:
            await batch_producer.send_all(
                [OutRecord(topic, zlib.crc32(key) % partitions, key, value, headers)]
            )

        # a one-shot command: its own composition (nothing of it is scraped)
        ctx = SinkContext(
            stopping=asyncio.Event(), still_working=lambda: None, publish=publish, metrics=instruments()
        )
        dispatcher = Dispatcher(channels, AlertStore(pool), config.policy, ctx, metrics=AlertInstruments())
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=500, max_records=100)
            commit: dict[TopicPartition, int] = {}
            for tp, recs in batch.items():
                for rec in recs:
                    if rec.offset >= end[tp]:
                        continue
                    report.read += 1
                    try:
                        dl = DeadLetter.model_validate_json(rec.value or b"")
                    except ValidationError as exc:
                        report.invalid += 1
                        log.warning(
                            "alerts-dlq %d@%d is not a dead letter: %s", tp.partition, rec.offset, exc
                        )
                        commit[tp] = rec.offset + 1
                        continue
                    outcome = await dispatcher.deliver(dl.notification, retry_failed=True)
                    if outcome.result == "delivered":
                        report.delivered += 1
                    elif outcome.result == "skipped":
                        report.skipped += 1
                    else:
                        report.dead_lettered += 1
                        report.reasons.append(f"{outcome.channel}: {outcome.reason}")
                    commit[tp] = rec.offset + 1
            if commit:
                await consumer.commit(commit)
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()
        await http.aclose()
    return report
