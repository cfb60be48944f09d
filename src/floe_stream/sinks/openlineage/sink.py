"""`floe run sink openlineage`: violations topic → OpenLineage RunEvents (own consumer group).

Per fetched batch: decode → build events (pure) → deliver them all through the transport → (the runtime) commit.
A transient failure (Marquez down, broker hiccup) is retried with backoff while the batch's offsets stay
uncommitted and /readyz reports ``transport: false``; a permanent rejection (HTTP 4xx) or an undecodable
record goes to the dead-letter topic with the reason. Events are deterministic (run id = uuid5 of the
episode), so a replay re-sends identical events. Each delivery continues the violation's trace.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.runtime.sink_runtime import (
    BACKOFF_MAX_S,
    Input,
    SinkBatch,
    SinkContext,
    SinkRecord,
    is_transient,
)
from floe_stream.settings import Settings
from floe_stream.sinks.openlineage.events import lineage_events
from floe_stream.sinks.openlineage.transport import Event, Transport, TransportError, make_transport
from floe_stream.telemetry import tracing
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.violation import ViolationCloudEvent, ViolationData, decode_violation

log = logging.getLogger(__name__)

Item = tuple[SinkRecord, ViolationCloudEvent, list[Event]]


class OpenLineageSink:
    """A :class:`~floe_stream.runtime.sink_runtime.Sink`: each violation → its OpenLineage RunEvents."""

    name = "sink-openlineage"
    record_spans = False  # its own span per violation, with the violation's attributes
    collect_s = 0.0
    outputs: tuple[TopicKey, ...] = ()

    def __init__(
        self, settings: Settings, registry: ContractRegistry | None = None, transport: Transport | None = None
    ) -> None:
        self.cfg = settings.openlineage
        self.registry = registry
        self.transport = transport or make_transport(self.cfg, settings.kafka)
        self.ctx: SinkContext | None = None
        self.degraded = False
        self.emitted = 0
        self.dead = 0  # rejected by the destination (the runtime counts undecodable records too)

    def _lookup(self, asset_id: str) -> MonitoredAsset | None:
        return self.registry.get(asset_id) if self.registry is not None else None

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

    async def close(self) -> None:
        await self.transport.close()

    async def readiness(self) -> dict[str, bool]:
        return {"transport": not self.degraded}

    def health_details(self) -> dict[str, Any]:
        return {}

    def stall_allowance_s(self) -> float:
        return 0.0

    async def flush(self) -> None:
        """Every event is delivered (or rejected) when :meth:`write` returns."""

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
        m = instruments()
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
                if self._stopping():
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
                self._still_working()  # alive (/healthz 200), not ready: a restart would not bring the transport back
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    def _stopping(self) -> bool:
        return self.ctx is not None and self.ctx.stopping.is_set()

    def _still_working(self) -> None:
        if self.ctx is not None:
            self.ctx.still_working()
