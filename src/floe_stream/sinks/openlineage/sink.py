"""`floe run sink openlineage`: violations topic → OpenLineage RunEvents (own consumer group).

Per fetched batch: decode → build events (pure) → deliver them all through the transport → commit.
A transient failure (Marquez down, broker hiccup) is retried with backoff while the batch's offsets stay
uncommitted and /readyz reports ``transport: false``; a permanent rejection (HTTP 4xx) or an undecodable
record goes to the dead-letter topic with the reason. Events are deterministic (run id = uuid5 of the
episode), so a replay re-sends identical events. Each delivery continues the violation's trace.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.runtime.kafka import partition_counts
from floe_stream.runtime.service import Batch, ConsumerService
from floe_stream.runtime.sink_runtime import BACKOFF_MAX_S, DeadLetters, is_transient
from floe_stream.settings import Settings
from floe_stream.sinks.openlineage.events import lineage_events
from floe_stream.sinks.openlineage.transport import Event, Transport, TransportError, make_transport
from floe_stream.telemetry import tracing
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.violation import ViolationCloudEvent, ViolationData, decode_violation

log = logging.getLogger(__name__)

Item = tuple[ConsumerRecord[bytes, bytes], ViolationCloudEvent, list[Event]]


class OpenLineageSink(ConsumerService):
    name = "sink-openlineage"
    record_spans = False  # its own span per violation, with the violation's attributes

    def __init__(
        self, settings: Settings, registry: ContractRegistry | None = None, transport: Transport | None = None
    ) -> None:
        k = settings.kafka
        self.cfg = settings.openlineage
        self.t_viol = topic_name(k.topic_prefix, TopicKey.VIOLATIONS)
        self.t_dlq = topic_name(k.topic_prefix, TopicKey.DLQ)
        super().__init__(settings, [self.t_viol], f"{k.group_prefix}-sink-openlineage")
        self.registry = registry
        self.transport = transport or make_transport(self.cfg, self.producer)
        self.dlq_partitions = 1
        self.degraded = False
        self.emitted = 0
        self.dead = 0

    def _lookup(self, asset_id: str) -> MonitoredAsset | None:
        return self.registry.get(asset_id) if self.registry is not None else None

    async def setup(self) -> None:
        self.dlq_partitions = (await partition_counts(self.settings.kafka, [self.t_dlq]))[self.t_dlq]
        if self.cfg.transport == "kafka":
            await self._ensure_topic(self.cfg.topic)
        await self.transport.start()
        log.info("openlineage sink: transport %s, job namespace %s", self.transport.name, self.cfg.namespace)

    async def _ensure_topic(self, name: str) -> None:
        k = self.settings.kafka
        admin = AIOKafkaAdminClient(**k.client_kwargs(), client_id=f"{k.client_id}-admin")
        await admin.start()
        try:
            if name not in set(await admin.list_topics()):
                try:
                    await admin.create_topics([NewTopic(name, k.partitions, k.replication_factor)])
                    log.info("created OpenLineage topic %s", name)
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    async def teardown(self) -> None:
        await self.transport.close()

    async def readiness(self) -> dict[str, bool]:
        checks = await super().readiness()
        checks["transport"] = not self.degraded
        return checks

    # --- the batch ---------------------------------------------------------------------------------------
    async def handle(self, batch: Batch) -> None:
        items: list[Item] = []
        dead = DeadLetters(self.t_dlq, self.dlq_partitions)
        for recs in batch.values():
            for rec in recs:
                try:
                    ce = decode_violation(dict(rec.headers or ()), rec.key, rec.value or b"")
                    items.append((rec, ce, lineage_events(ce, self.cfg, self._lookup)))
                except Exception as exc:
                    dead.add_exc(rec, exc, "undecodable violation event")
                    self.dead += 1
        spans = [self._span(rec, ce) for rec, ce, _ in items]
        try:
            failed = await self._deliver(items)
        finally:
            for span in spans:
                span.end()
        for rec, reason in failed:
            dead.add(rec, reason, "openlineage rejected")
            self.dead += 1
        if dead.records:
            await self.produce(dead.take())
        ok = len(items) - len(failed)
        self.emitted += ok
        m = instruments()
        m.sink_writes.add(ok, {"sink": "openlineage"})
        for _, _, evs in items:
            for ev in evs:
                m.lineage_events.add(1, {"transport": self.transport.name, "event_type": ev["eventType"]})

    def _span(self, rec: ConsumerRecord[bytes, bytes], ce: ViolationCloudEvent) -> Any:
        d = ce.data
        tp = tracing.traceparent_from_headers(rec.headers) or ce.traceparent
        return tracing.start_sink_span(
            "floe.sink.openlineage",
            tp,
            {
                "floe.contract.name": d.contract_name,
                "floe.contract.version": d.contract_version,
                "floe.asset": d.asset,
                "floe.violation.type": d.violation_type.value,
                "floe.violation.severity": d.severity.value,
                "floe.violation.id": d.violation_id,
                "floe.event.type": ce.type,
                "floe.sink.transport": self.transport.name,
                "floe.violation.open": isinstance(d, ViolationData),
            },
        )

    async def _deliver(self, items: list[Item]) -> list[tuple[ConsumerRecord[bytes, bytes], str]]:
        """Deliver everything in order; returns the records rejected permanently (to dead-letter). A rejection
        skips only its own record: delivery resumes after it, nothing delivered before is sent again."""
        failed: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        remaining = [it for it in items if it[2]]
        while remaining:
            try:
                await self._with_retry([ev for _, _, evs in remaining for ev in evs])
                break
            except TransportError as exc:
                if not exc.permanent:
                    if self._stopping.is_set():
                        raise  # stopping during an outage: nothing committed, the next owner replays the batch
                    failed.extend(
                        (rec, str(exc)) for rec, _, _ in remaining
                    )  # retries exhausted (max_retries)
                    break
                seen = 0
                for j, (rec, _, evs) in enumerate(remaining):
                    if seen + len(evs) > exc.delivered:
                        failed.append((rec, str(exc)))
                        remaining = remaining[j + 1 :]
                        break
                    seen += len(evs)
                else:
                    break
        return failed

    async def _with_retry(self, events: list[Event]) -> None:
        delay = self.cfg.retry_backoff_s
        attempt = 0
        sent = 0  # events delivered by earlier attempts
        while True:
            try:
                await self.transport.emit(events)
                self.degraded = False
                return
            except TransportError as exc:
                exc.delivered += sent  # counted against the caller's list
                if not is_transient(exc):
                    raise
                attempt += 1
                self.degraded = True
                if self._stopping.is_set():
                    raise  # the batch is not committed: the next owner replays it
                if self.cfg.max_retries is not None and attempt > self.cfg.max_retries:
                    raise
                events = events[exc.delivered - sent :]  # what went out before the outage is not sent again
                sent = exc.delivered
                log.warning(
                    "openlineage transport unavailable, retry %d in %.1fs (offsets held): %s",
                    attempt,
                    delay,
                    exc,
                )
                self.still_working()  # alive (/healthz 200), not ready: a restart would not bring the transport back
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
