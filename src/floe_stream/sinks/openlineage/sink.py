"""`floe run sink openlineage`: violations topic → OpenLineage RunEvents (own consumer group).

Per fetched batch: decode → build events (pure) → deliver them all through the transport (openlineage-python's,
configured by ``openlineage.yml`` / ``OPENLINEAGE_*`` or floe's shorthands; see ``transport.py``) → (the runtime)
commit. A transient failure (Marquez down, broker hiccup, a Kafka message not delivered in time) is retried with
backoff while the batch's offsets stay uncommitted and /readyz reports ``transport: false``; a permanent rejection
(HTTP 4xx) or an undecodable record goes to the dead-letter topic with the reason. Events are deterministic (run id = uuid5 of the
episode), so a replay re-sends identical events. Each delivery continues the violation's trace.

A dataset gets its contract server's OpenLineage namespace; the contracts are the processors' (the contracts topic
and directory, followed while running by a :class:`~floe_stream.runtime.framework.contracts_feed.ContractsFeed`).
"""

from __future__ import annotations

import logging
from typing import Any

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.runtime.framework.contracts_feed import ContractsFeed
from floe_stream.runtime.framework.sink_runtime import (
    Input,
    Sink,
    SinkBatch,
    SinkContext,
    SinkRecord,
    is_transient,
)
from floe_stream.settings import Settings
from floe_stream.sinks.openlineage.events import lineage_events
from floe_stream.sinks.openlineage.transport import Event, Transport, TransportError, make_transport
from floe_stream.telemetry import tracing
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.violation import ViolationCloudEvent, ViolationData, decode_violation

log = logging.getLogger(__name__)

Item = tuple[SinkRecord, ViolationCloudEvent, list[Event]]


class OpenLineageSink(Sink):
    """A :class:`~floe_stream.runtime.framework.sink_runtime.Sink`: each violation → its OpenLineage RunEvents."""

    name = "sink-openlineage"
    record_spans = False  # its own span per violation, with the violation's attributes

    def __init__(
        self,
        settings: Settings,
        registry: ContractRegistry | None = None,
        transport: Transport | None = None,
        *,
        contracts: ContractsFeed | None = None,
    ) -> None:
        self.cfg = settings.openlineage
        self.contracts = contracts
        """keeps the contracts current while running (the contracts topic, the directory); the composition
        root gives it. Without one, ``registry`` is all the sink knows."""
        if contracts is not None:
            registry = contracts.registry
        self.registry = registry if registry is not None else ContractRegistry()
        self.transport = transport or make_transport(self.cfg, settings.kafka)
        self.ctx: SinkContext | None = None
        self.degraded = False
        self.emitted = 0
        self.dead = 0  # rejected by the destination (the runtime counts undecodable records too)

    def _lookup(self, asset_id: str) -> MonitoredAsset | None:
        return self.registry.get(asset_id)

    def _decode(
        self, headers: dict[str, bytes], key: bytes | None, value: bytes | None
    ) -> tuple[ViolationCloudEvent, list[Event]]:
        ce = decode_violation(headers, key, value or b"")
        return ce, lineage_events(ce, self.cfg, self._lookup)

    def inputs(self) -> list[Input]:
        return [Input("violations", TopicKey.VIOLATIONS, self._decode, context="undecodable violation event")]

    async def start(self, ctx: SinkContext) -> None:
        self.ctx = ctx
        await self.transport.start()
        log.info("openlineage sink: transport %s, job namespace %s", self.transport.name, self.cfg.namespace)
        if self.contracts is not None:  # the contracts topic read to its end before the first violation
            await self.contracts.start()

    async def close(self) -> None:
        if self.contracts is not None:
            await self.contracts.stop()
        await self.transport.close()

    async def readiness(self) -> dict[str, bool]:
        return {"transport": not self.degraded}

    # --- the batch ---------------------------------------------------------------------------------------
    async def write(self, batch: SinkBatch) -> None:
        items: list[Item] = [(rec, rec.value[0], rec.value[1]) for rec in batch.records]
        spans = [self._span(rec, ce) for rec, ce, _ in items]
        try:
            failed = await self._deliver(items)
        finally:
            for span in spans:
                span.end()
        for rec, reason in failed:
            batch.reject(rec, reason, "openlineage rejected")
            self.dead += 1
        ok = len(items) - len(failed)
        self.emitted += ok
        assert self.ctx is not None
        m = self.ctx.metrics
        m.sink_writes.add(ok, {"sink": "openlineage"})
        for _, _, evs in items:
            for ev in evs:
                m.lineage_events.add(1, {"transport": self.transport.name, "event_type": ev["eventType"]})

    def _span(self, rec: SinkRecord, ce: ViolationCloudEvent) -> Any:
        d = ce.data
        tp = rec.traceparent or ce.traceparent
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

    async def _deliver(self, items: list[Item]) -> list[tuple[SinkRecord, str]]:
        """Deliver everything in order; returns the records rejected permanently (to dead-letter). A rejection
        skips only its own record: delivery resumes after it, nothing delivered before is sent again."""
        failed: list[tuple[SinkRecord, str]] = []
        remaining = [it for it in items if it[2]]
        while remaining:
            try:
                await self._with_retry([ev for _, _, evs in remaining for ev in evs])
                break
            except TransportError as exc:
                if not exc.permanent:
                    if self._stopping():
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
        """Emit through the runtime's one retry (backoff from ``retry_backoff_s``, at most ``max_retries``).
        What went out before an outage is not sent again; ``TransportError.delivered`` counts against the
        caller's list."""
        assert self.ctx is not None
        todo = events
        sent = 0  # events delivered by earlier attempts

        async def attempt() -> None:
            nonlocal todo, sent
            try:
                await self.transport.emit(todo)
            except TransportError as exc:
                exc.delivered += sent
                if is_transient(exc):
                    todo = todo[exc.delivered - sent :]
                    sent = exc.delivered
                raise

        await self.ctx.retry(
            attempt,
            "openlineage transport",
            on_state=self._set_degraded,
            first_delay_s=self.cfg.retry_backoff_s,
            max_retries=self.cfg.max_retries,
        )

    def _set_degraded(self, degraded: bool) -> None:
        self.degraded = degraded

    def _stopping(self) -> bool:
        return self.ctx is not None and self.ctx.stopping.is_set()
