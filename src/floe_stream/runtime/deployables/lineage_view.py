"""The shared lineage view: every processor instance reads the compacted ``lineage`` topic in full (no group)
and writes its own edges and per-asset health to it after each batch, so the impact / root-cause context of
a violation (processors/enrich.py) spans instances. Kafka I/O only; what a record means is
:meth:`~floe_stream.processors.enrich.ViolationEnricher.apply_shared`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from floe_stream.processors.enrich import EdgeGone, Shared, ViolationEnricher
from floe_stream.runtime.framework.kafka import OutRecord, make_consumer, partition_counts
from floe_stream.runtime.framework.supervision import supervise
from floe_stream.settings import ConfigError
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for

if TYPE_CHECKING:
    from floe_stream.runtime.framework.service import ConsumerService

log = logging.getLogger(__name__)


class LineageView:
    def __init__(self, context: ViolationEnricher) -> None:
        self.context = context
        self.topic: str | None = None  # set by start() when the topic exists
        self.partitions = 0
        self._reader: asyncio.Task[None] | None = None

    def records(self, shared: Sequence[Shared]) -> list[OutRecord]:
        """The batch's edges and changed health as records of the lineage topic (none without the topic)."""
        if self.topic is None or not shared:
            return []
        n = self.partitions
        return [
            OutRecord(
                self.topic,
                partition_for(r.key(), n),
                r.key().encode(),
                # an expired edge: an empty value (read as deleted, like the processor-state changelog's)
                b"" if isinstance(r, EdgeGone) else r.model_dump_json().encode(),
            )
            for r in shared
        ]

    async def start(self, svc: ConsumerService) -> None:
        """Read the lineage topic in full in the background (until the service stops) and publish to it.
        Without the topic (an older deployment: run `floe topics create`), context stays instance-local."""
        topic = topic_name(svc.settings.kafka.topic_prefix, TopicKey.LINEAGE)
        try:
            self.partitions = (await partition_counts(svc.settings.kafka, [topic]))[topic]
        except ConfigError as exc:
            log.warning("impact context limited to this instance: %s", exc)
            return
        self.topic = topic
        self._reader = supervise(self._read(svc, topic), "lineage-view")

    async def _read(self, svc: ConsumerService, topic: str) -> None:
        """Tail the whole lineage topic until the service stops; a broker failure restarts the reader
        (from the beginning: applying a record twice is harmless)."""
        while not svc._stopping.is_set():
            # background context, not latency-critical: a long poll keeps an idle reader cheap
            reader = make_consumer(svc.settings.kafka, group_id=None, fetch_max_wait_ms=500)
            try:
                await reader.start()
                tps = [TopicPartition(topic, p) for p in range(self.partitions)]
                reader.assign(tps)
                await reader.seek_to_beginning(*tps)
                while not svc._stopping.is_set():
                    batch = await reader.getmany(timeout_ms=500, max_records=5000)
                    for recs in batch.values():
                        for rec in recs:
                            self.context.apply_shared(rec.key, rec.value)
            except (KafkaError, OSError) as exc:
                log.warning("lineage view: reader failed, restarting in 1 s: %s", exc)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await reader.stop()
