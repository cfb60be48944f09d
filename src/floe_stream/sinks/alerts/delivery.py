"""Dispatch notifications to channels: ledger claim → send with timeout and retries → mark, or dead-letter.

* every (notification, channel) delivery runs concurrently; firing notifications are all delivered
  before resolved ones start, so a recovery never overtakes its alert;
* a per-attempt timeout, jittered exponential backoff, and the receiver's ``Retry-After`` (429/503) honoured
  up to ``max_retry_after_s``; non-retryable answers (4xx) go straight to the dead-letter topic;
* a circuit breaker per channel: after ``circuit_failures`` dead-lettered deliveries in a row, deliveries
  to that channel are dead-lettered without being attempted for ``circuit_cooldown_s`` (then one probe),
  so a dead receiver cannot hold the sink's batches for its full retry budget over and over; a notification
  that cannot be built into a message (:class:`MessageError`, or any error a channel raises other than
  DeliveryError) is that notification's dead letter and never counts towards the circuit (one contract's
  odd name cannot silence a channel for everyone);
* the ledger (:class:`~floe_stream.sinks.alerts.store.AlertStore`) makes a successful delivery happen at
  most once per (event, channel), across restarts, replicas and replays; a sink that dies after claiming
  but before recording the outcome leaves a 'sending' claim that another sink takes over once it is older
  than the channel's retry budget — that narrow window is at-least-once, and receivers dedup it by the
  CloudEvent id / PagerDuty dedup_key / Alertmanager labels.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from floe_stream.backoff import Backoff
from floe_stream.runtime.framework.sink_runtime import NotCommitted, SinkContext, SinkRecord
from floe_stream.sinks.alerts.channels.base import Channel, DeliveryError, MessageError
from floe_stream.sinks.alerts.config import ChannelConfig, Policy
from floe_stream.sinks.alerts.metrics import AlertInstruments
from floe_stream.sinks.alerts.model import DeadLetter, Notification
from floe_stream.sinks.alerts.store import AlertStore, Claim
from floe_stream.topics.catalog import TopicKey

log = logging.getLogger(__name__)


class StopDelivery(NotCommitted):
    """Shutdown interrupted a delivery; its claim was released, the batch must not be committed."""


@dataclass
class Outcome:
    notification_id: str
    channel: str
    result: Literal["delivered", "dead_lettered", "skipped"]
    attempts: int = 0
    reason: str = ""


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0


async def dead_letter(
    ctx: SinkContext, n: Notification, reason: str, attempts: int, source: SinkRecord | None = None
) -> None:
    """Publish ``n`` to the alerts dead-letter topic (``floe alerts replay`` re-sends it), keyed by channel.
    Alerts keep their dead-letter names (``event_id``, ``expected``, ``actual``): written by alias. ``source``:
    the input record of its first alert (under exactly_once the dead letter joins that record's transaction)."""
    record = DeadLetter(
        channel=n.channel, reason=reason, attempts=attempts, failed_at=datetime.now(UTC), notification=n
    )
    headers = [("floe-dlq-reason", reason[:1000].encode()), ("floe-dlq-channel", n.channel.encode())]
    await ctx.publish(
        TopicKey.ALERTS_DLQ,
        n.channel.encode(),
        record.model_dump_json(by_alias=True).encode(),
        headers,
        source=source,
    )


def channel_backoff(cfg: ChannelConfig, rng: random.Random) -> Backoff:
    """The delays between one delivery's attempts: jittered exponential, a receiver's Retry-After capped."""
    return Backoff(
        cfg.backoff_initial_s,
        cfg.backoff_max_s,
        jitter=True,
        max_retry_after_s=cfg.max_retry_after_s,
        rng=rng,
    )


class Dispatcher:
    """Delivers notifications through ``ctx`` (the runtime's, or ``floe alerts replay``'s): its stop signal,
    ``publish`` for dead letters, and ``on_destination`` — True when a first delivery starts backing off, False
    when none is left (the runtime pauses the sink's partitions meanwhile, so a long retry budget keeps the
    member in its group)."""

    def __init__(
        self,
        channels: dict[str, Channel],
        store: AlertStore,
        policy: Policy,
        ctx: SinkContext,
        *,
        metrics: AlertInstruments | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.channels = channels
        self.ctx = ctx
        self.metrics = metrics or AlertInstruments()  # the sink's (the composition root's)
        self.backing_off = 0  # deliveries between a retryable failure and their last attempt
        self.store = store
        self.policy = policy
        self.stopping = ctx.stopping
        self.rng = rng or random.Random()
        self.circuits: dict[str, _Circuit] = {name: _Circuit() for name in channels}
        self.sources: Mapping[str, SinkRecord] = {}
        """Violation id → the input record it came in (the sink's batch in hand): a dead letter's transaction."""
        self.slots = {name: asyncio.Semaphore(ch.config.max_in_flight) for name, ch in channels.items()}

    async def deliver_all(
        self, notes: Sequence[Notification], *, retry_failed: bool = False
    ) -> list[Outcome]:
        out: list[Outcome] = []
        for status in ("firing", "resolved"):
            phase = [n for n in notes if n.status == status]
            if not phase:
                continue
            # one ledger claim per channel for the whole phase, then the deliveries run concurrently
            claims: dict[str, Claim] = {}
            for name in sorted({n.channel for n in phase if n.channel in self.channels}):
                mine = [n for n in phase if n.channel == name]
                claims[name] = await self.store.claim(
                    [e for n in mine for e in n.event_ids],
                    name,
                    [n.notification_id for n in mine for _ in n.alerts],
                    stale_s=self.channels[name].config.budget_s(),
                    retry_failed=retry_failed,
                )
            results = await asyncio.gather(
                *(self.deliver(n, retry_failed=retry_failed, claim=claims.get(n.channel)) for n in phase),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException):
                    raise r
                out.append(r)
        return out

    async def deliver(
        self, n: Notification, *, retry_failed: bool = False, claim: Claim | None = None
    ) -> Outcome:
        ch = self.channels.get(n.channel)
        if ch is None:  # a dead letter of a channel that was removed from the configuration
            reason = f"channel {n.channel!r} is not configured"
            await dead_letter(self.ctx, n, reason, 0, self._source(n))
            return Outcome(n.notification_id, n.channel, "dead_lettered", reason=reason)
        if claim is None:
            todo = list(n.event_ids)
            mine: list[str] = []
        else:
            mine = [e for e in n.event_ids if e in claim.claimed]
            todo = [e for e in n.event_ids if e in claim.busy]
        if todo:  # not pre-claimed, or another sink holds a fresh claim: wait for it
            mine += await self.store.claim_waiting(
                todo,
                n.channel,
                n.notification_id,
                stale_s=ch.config.budget_s(),
                retry_failed=retry_failed,
                stopping=self.stopping,
            )
        if not mine:
            return Outcome(n.notification_id, n.channel, "skipped")
        if len(mine) < len(n.alerts):
            keep = set(mine)
            n = n.model_copy(update={"alerts": tuple(a for a in n.alerts if a.violation_id in keep)})
        circuit = self.circuits[n.channel]
        now = time.monotonic()
        if circuit.open_until > now:
            reason = f"circuit open after {circuit.failures} consecutive failed deliveries"
            return await self._fail(n, ch, reason, 0)
        attempts, error = await self._attempts(ch, n)
        if error is None:
            await self.store.mark(n.event_ids, n.channel, delivered=True, attempts=attempts)
            circuit.failures, circuit.open_until = 0, 0.0
            inst = self.metrics
            inst.deliveries.add(1, {"channel": n.channel, "status": n.status})
            done = datetime.now(UTC)
            for a in n.alerts:
                inst.latency.record(max(0.0, (done - a.occurred_at).total_seconds()), {"channel": n.channel})
            log.info(
                "delivered %s notification %s to %s (%d alert(s), %d attempt(s))",
                n.status,
                n.notification_id[:12],
                n.channel,
                len(n.alerts),
                attempts,
            )
            return Outcome(n.notification_id, n.channel, "delivered", attempts)
        if not isinstance(error, MessageError):  # a message that cannot be built says nothing of the channel
            circuit.failures += 1
            if circuit.failures >= self.policy.circuit_failures:
                circuit.open_until = time.monotonic() + self.policy.circuit_cooldown_s
        return await self._fail(n, ch, error.reason, attempts)

    def _source(self, n: Notification) -> SinkRecord | None:
        return self.sources.get(n.event_ids[0]) if n.alerts else None

    async def _fail(self, n: Notification, ch: Channel, reason: str, attempts: int) -> Outcome:
        # dead letter first, then the ledger: a crash in between re-sends (never loses) the notification
        await dead_letter(self.ctx, n, reason, attempts, self._source(n))

        async def mark() -> None:
            await self.store.mark(
                n.event_ids, n.channel, delivered=False, attempts=attempts, error=reason[:1000]
            )

        # under exactly_once the ledger says "dead-lettered" only once the dead letter is committed: a sink
        # killed before leaves the delivery claimed, and the replay that follows delivers or dead-letters it
        # again (an aborted dead letter is never lost)
        await self.ctx.after_commit(mark)
        self.metrics.failures.add(1, {"channel": n.channel})
        log.error(
            "dead-lettered %s notification %s for %s after %d attempt(s): %s",
            n.status,
            n.notification_id[:12],
            n.channel,
            attempts,
            reason,
        )
        return Outcome(n.notification_id, n.channel, "dead_lettered", attempts, reason)

    async def _attempts(self, ch: Channel, n: Notification) -> tuple[int, DeliveryError | None]:
        backing_off = False

        def first_retry() -> None:
            nonlocal backing_off
            backing_off = True
            self.backing_off += 1
            if self.backing_off == 1:
                self.ctx.on_destination(True, f"alert channel {ch.name}")

        try:
            return await self._attempt_loop(ch, n, first_retry)
        finally:
            if backing_off:
                self.backing_off -= 1
                if self.backing_off == 0:
                    self.ctx.on_destination(False, f"alert channel {ch.name}")

    async def _attempt_loop(
        self, ch: Channel, n: Notification, first_retry: Callable[[], None]
    ) -> tuple[int, DeliveryError | None]:
        cfg = ch.config
        # the channel's own timeout bounds each HTTP call; this guard also bounds SMTP and multi-request sends
        guard = cfg.timeout_s * max(1, len(n.alerts)) + 1.0
        backoff = channel_backoff(cfg, self.rng)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.slots[ch.name]:  # bounded concurrency: queueing is not part of the timeout
                    await asyncio.wait_for(ch.send(n), timeout=guard)
                return attempt, None
            except DeliveryError as exc:
                err = exc
            except TimeoutError:
                err = DeliveryError(f"timed out after {guard:g}s")
            except Exception as exc:
                # a channel failing with anything but DeliveryError failed on this notification (a value it
                # could not format): not retried, its dead letter, and not held against the channel's circuit
                err = MessageError(f"{type(exc).__name__}: {exc}")
            self.metrics.attempt_failures.add(1, {"channel": ch.name})
            if not err.retryable or attempt >= cfg.max_attempts:
                return attempt, err
            if attempt == 1:
                first_retry()
            delay = backoff.next(err.retry_after)
            log.warning(
                "delivery to %s failed (attempt %d/%d): %s; retrying in %.2fs",
                ch.name,
                attempt,
                cfg.max_attempts,
                err.reason,
                delay,
            )
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)
            except TimeoutError:
                continue
            await self.store.release(n.event_ids, n.channel)
            raise StopDelivery(f"shutdown while retrying {ch.name}")
