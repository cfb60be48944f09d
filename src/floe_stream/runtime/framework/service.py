"""A consumer-group member: fetch a batch → complete its effects → commit its offsets. Never the reverse.

Subclasses implement :meth:`handle`. Its effects are either complete when it returns (a sink's database
write) or complete in what :meth:`finish` returns (the processor: produce acknowledgements, its state
changelog, then the offsets — or one transaction per partition, runtime/deployables/commit.py). Offsets are committed
at most every ``kafka.commit_interval_ms`` (and when idle, on revocation and on shutdown), always after the
effects of every batch they cover, strictly in order. A crash anywhere replays from the last commit;
effects are idempotent by id, so nothing is lost and nothing is doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.runtime.framework.health import HealthServer, start_health
from floe_stream.runtime.framework.kafka import (
    BatchProducer,
    OutRecord,
    make_consumer,
    make_producer,
    partition_counts,
    start_producer,
)
from floe_stream.settings import Settings
from floe_stream.telemetry import tracing
from floe_stream.telemetry.metrics import track_lag, untrack

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
FETCH_TIMEOUT_MS = 200  # the consume loop's getmany timeout (it returns empty after this when idle)
KEEPALIVE_POLL_MS = 1000  # the longest poll of a paused consumer (a third of max_poll_interval_ms if shorter)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, svc: ConsumerService) -> None:
        self.svc = svc

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.svc.lock:  # wait for the in-flight batch to finish and commit
            await self.svc.drain()
            self.svc.assigned.difference_update(revoked)
            for tp in revoked:
                self.svc.positions.pop(tp, None)
                self.svc.handled_at.pop(tp, None)
            await self.svc.on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.svc.lock:
            now = time.time()
            for tp in assigned:  # progress is measured from here until the partition's first batch
                self.svc.handled_at.setdefault(tp, now)
            self.svc.assigned.update(assigned)
            await self.svc.on_assigned(list(assigned))
            self.svc.ever_assigned = True


class ConsumerService:
    name = "service"
    record_spans = True
    """When tracing is on: one span per record carrying a ``traceparent`` header, around the batch's effects,
    continuing the producer's trace (violations → every sink). Services that trace themselves turn it off."""

    def __init__(
        self, settings: Settings, topics: Sequence[str], group_id: str, *, with_producer: bool = True
    ) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.group_id = group_id
        self.lock = asyncio.Lock()
        self.assigned: set[TopicPartition] = set()
        self.ever_assigned = False
        self.consumer: AIOKafkaConsumer = make_consumer(settings.kafka, group_id=group_id)
        self.producer: AIOKafkaProducer | None = make_producer(settings.kafka) if with_producer else None
        self.batch_producer = BatchProducer(self.producer) if self.producer else None
        self.health: HealthServer | None = None
        self._stopping = asyncio.Event()
        self.batches = 0
        self._finishing: asyncio.Future[None] | None = None
        self._uncommitted: dict[TopicPartition, int] = {}  # handled, not yet in a commit
        self._flush_at = 0.0  # loop time of the next due commit
        self.records = 0
        self.positions: dict[TopicPartition, int] = {}  # next offset to consume, after each commit
        self.lag: dict[TopicPartition, int] = {}  # end offset - position, refreshed every lag_interval_s
        self.handled_at: dict[TopicPartition, float] = {}  # wall time of the last batch (or the assignment)
        self._lag_at = 0.0
        self._kafka_ok = False  # set once the consumer has started (readiness)
        self._fetched_at: float | None = None  # loop time of the last completed fetch (liveness)
        self.paused: frozenset[TopicPartition] = frozenset()  # while the handler waits (pause_fetching)
        self._keepalive: asyncio.Task[None] | None = None  # polls the paused consumer
        self._keepalive_ended: asyncio.Task[None] | None = None  # cancelled, not reaped yet
        self._paused_at = 0.0
        track_lag(self)

    # --- hooks -----------------------------------------------------------------------------------
    async def setup(self) -> None:
        """Called after the producer started and before the consumer joins the group."""

    async def teardown(self) -> None:
        """Called after the consumer left the group."""

    async def on_assigned(self, tps: list[TopicPartition]) -> None:
        """Newly assigned partitions (the lock held)."""

    async def on_revoked(self, tps: list[TopicPartition]) -> None:
        pass

    async def handle(self, batch: Batch) -> None:
        raise NotImplementedError

    async def idle(self) -> None:
        """Called when a fetch returned nothing."""

    def fetch_timeout_ms(self) -> int:
        """How long the next fetch may wait for records: ``FETCH_TIMEOUT_MS``, or less when something is due
        sooner (:meth:`due` then runs if nothing came)."""
        return FETCH_TIMEOUT_MS

    async def due(self) -> None:
        """Called (the lock held) when a fetch shortened by :meth:`fetch_timeout_ms` returned nothing."""

    def health_details(self) -> dict[str, Any]:
        """Informational fields of /readyz (``details``) that do not decide readiness."""
        return {}

    async def readiness(self) -> dict[str, bool]:
        return {"kafka": self.consumer_connected(), "assigned": self.ever_assigned}

    def stall_allowance_s(self) -> float:
        """Extra time one turn of the consume loop may legitimately take (e.g. the alerts sink's group wait)."""
        return 0.0

    def stall_bound_s(self) -> float:
        """/healthz fails when no fetch completed for this long: the fetch's own wait (``FETCH_TIMEOUT_MS`` +
        ``kafka.fetch_max_wait_ms``) + ``health_stall_s`` (a batch's effects, retries, a rebalance) + the
        service's own allowance. Documented in docs/OBSERVABILITY.md."""
        fetch = (FETCH_TIMEOUT_MS + self.settings.kafka.fetch_max_wait_ms) / 1000
        return fetch + self.settings.health_stall_s + self.stall_allowance_s()

    def still_working(self) -> None:
        """A handler that deliberately waits (retrying a write while its database or transport is down, offsets
        held) calls this on every attempt: it is not stuck, and restarting it would not help. /readyz says it is
        degraded; /healthz stays 200."""
        with contextlib.suppress(RuntimeError):
            self._fetched_at = asyncio.get_running_loop().time()

    def fetch_age_s(self) -> float:
        """Seconds since the consume loop last completed a fetch (or since start-up, or :meth:`still_working`)."""
        if self._fetched_at is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._fetched_at

    def keepalive_poll_s(self) -> float:
        """The longest poll of the paused consumer (:meth:`pause_fetching`)."""
        return max(1, min(KEEPALIVE_POLL_MS, self.settings.kafka.max_poll_interval_ms // 3)) / 1000

    def liveness_bound_s(self) -> float:
        """The bound :meth:`liveness` applies now: :meth:`stall_bound_s`; while paused, at least one keepalive poll
        (``keepalive_poll_s`` + ``kafka.fetch_max_wait_ms``) plus ``health_loop_lag_s``, the lateness of the loop
        the health server tolerates anyway. A paused member is alive as long as its keepalive polls, whatever
        ``health_stall_s`` is: restarting it would not bring its destination back."""
        bound = self.stall_bound_s()
        if self._keepalive is None:
            return bound
        poll = self.keepalive_poll_s() + self.settings.kafka.fetch_max_wait_ms / 1000
        return max(bound, poll + self.settings.health_loop_lag_s)

    async def liveness(self) -> dict[str, bool]:
        """Alive while the consume loop turns: a fetch (or, while paused, a keepalive poll) completed within
        :meth:`liveness_bound_s`. (An event loop blocked for longer than ``health_loop_lag_s`` is reported by the
        health server itself.)"""
        return {"consuming": self.fetch_age_s() <= self.liveness_bound_s()}

    # --- paused while the handler waits for its destination -----------------------------------------
    # aiokafka counts max_poll_interval_ms as the time spent outside getmany (SubscriptionState.fetcher_idle_time);
    # its heartbeat task makes the member leave the group once that passes, so a handler that retries a write
    # for longer would lose its partitions (the batch replayed by the next owner, the member rejoining). While
    # the handler waits, every assigned partition is paused and a keepalive task polls the paused consumer:
    # getmany returns nothing (aiokafka drops prefetched records of a paused partition without moving its
    # position) but keeps the member in the group. Deadlock check: a rebalance runs in aiokafka's coordinator
    # task, not inside getmany. Its revoke callback (_Listener) waits for ``lock``, which the waiting handler
    # holds, exactly as without the pause; the keepalive's getmany meanwhile waits for the new assignment
    # (``reassignment_in_progress``). Nobody waits for the keepalive: resume cancels it (its poll then returns
    # no record: the cancellation is raised at its await), so the handler, then the callback, go on. For the
    # same reason no partition can be assigned while the keepalive polls; a record it gets anyway (a partition
    # not yet paused) is sought back and fetched again after the resume. A rebalance that another member
    # starts during an outage still waits for the batch in hand, up to the rebalance timeout (aiokafka: the
    # session timeout): then this member is dropped, its commit fails, the new owner replays the batch.
    def pause_fetching(self, reason: str) -> None:
        """Pause every assigned partition and keep the member in its group by polling the paused consumer,
        until :meth:`resume_fetching`. Only while :attr:`lock` is held by the handler (no concurrent fetch)."""
        if self._keepalive is not None:
            return
        self._pause_assigned()
        self._paused_at = asyncio.get_running_loop().time()
        self._keepalive = asyncio.ensure_future(self._keep_member_alive())
        log.warning(
            "%s: %d partitions paused, the member stays in group %s (offsets not committed)",
            reason,
            len(self.paused),
            self.group_id,
        )

    def resume_fetching(self) -> None:
        """Stop the keepalive, resume the paused partitions (the consume loop continues where it was)."""
        task, self._keepalive = self._keepalive, None
        if task is None:
            return
        task.cancel()  # first: a poll in flight then never returns records
        self._keepalive_ended = task
        with contextlib.suppress(IllegalStateError):
            self.consumer.resume(*self.consumer.paused())
        log.info(
            "%d partitions resumed after %.1f s paused (group %s)",
            len(self.paused),
            asyncio.get_running_loop().time() - self._paused_at,
            self.group_id,
        )
        self.paused = frozenset()

    async def end_pause(self) -> None:
        """:meth:`resume_fetching`, then reap the keepalive; a fetch error it met is raised here (as the consume
        loop's would be: the service stops, the batch replays)."""
        self.resume_fetching()
        task, self._keepalive_ended = self._keepalive_ended, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _pause_assigned(self) -> None:
        tps = self.consumer.assignment()
        self.consumer.pause(*tps)
        self.paused = frozenset(tps)

    async def _keep_member_alive(self) -> None:
        timeout_ms = int(self.keepalive_poll_s() * 1000)
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._pause_assigned()  # before every poll: nothing is fetched, whatever is assigned now
                got = await self.consumer.getmany(timeout_ms=timeout_ms)
                self._fetched_at = loop.time()  # a completed poll: the member is alive (liveness)
                for tp, recs in got.items():
                    if recs:
                        with contextlib.suppress(IllegalStateError):
                            self.consumer.seek(tp, recs[0].offset)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("polling the paused consumer failed (group %s): %s", self.group_id, exc)
            raise

    def paused_observations(self) -> list[tuple[dict[str, str], float]]:
        return [({"group": self.group_id}, float(len(self.paused)))]

    def handled_observations(self) -> list[tuple[dict[str, str], float]]:
        """``floe_consumer_last_handled_timestamp_seconds``: when each assigned partition's last batch was handled
        (its assignment, before the first). The ticks topic of the processor group is what the chart's
        ``FloeTicksNotProcessed`` alert watches."""
        return [
            ({"group": self.group_id, "topic": tp.topic, "partition": str(tp.partition)}, at)
            for tp, at in self.handled_at.items()
            if tp in self.assigned
        ]

    # --- consumer lag (floe_consumer_lag, read at scrape time) ------------------------------------
    def lag_observations(self) -> list[tuple[dict[str, str], float]]:
        return [
            ({"group": self.group_id, "topic": tp.topic, "partition": str(tp.partition)}, float(n))
            for tp, n in self.lag.items()
            if tp in self.assigned
        ]

    async def refresh_lag(self, force: bool = False) -> None:
        """End offset (high watermark of the last fetch, else one ListOffsets) minus position."""
        loop = asyncio.get_running_loop()
        if not force and loop.time() - self._lag_at < self.settings.telemetry.lag_interval_s:
            return
        self._lag_at = loop.time()
        tps = list(self.assigned)
        try:
            ends: dict[TopicPartition, int | None] = {tp: self.consumer.highwater(tp) for tp in tps}
            missing = [tp for tp, hw in ends.items() if hw is None]
            if missing:
                ends.update(await asyncio.wait_for(self.consumer.end_offsets(missing), 5))
            lag: dict[TopicPartition, int] = {}
            for tp in tps:
                end = ends.get(tp)
                pos = self.positions.get(tp)
                if pos is None:
                    pos = await asyncio.wait_for(self.consumer.position(tp), 5)
                if end is not None and pos is not None:
                    lag[tp] = max(0, end - pos)
            self.lag = lag
        except (KafkaError, TimeoutError, IllegalStateError, AssertionError) as exc:
            log.debug("consumer lag refresh failed: %s", exc)

    # --- plumbing --------------------------------------------------------------------------------
    def consumer_connected(self) -> bool:
        """The consumer started, i.e. bootstrapped against the cluster (what the cached broker list of aiokafka's
        private client told before: it never empties). Our own bookkeeping, not aiokafka's internals."""
        return self._kafka_ok

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Consume ``tp`` from ``offset`` on (in :meth:`on_assigned`); a record before it that aiokafka fetched
        already — it starts fetching from the committed offset while the assignment callback still runs — is
        dropped, not handled a second time (:meth:`_unhandled`)."""
        self.consumer.seek(tp, offset)
        self.positions[tp] = offset

    async def produce(self, records: Sequence[OutRecord]) -> None:
        assert self.batch_producer is not None
        await self.batch_producer.send_all(records)

    async def start(self) -> None:
        # before any client asks for them: a consumer's metadata request for a missing topic would let a broker
        # with auto.create.topics.enable (Apache Kafka's default) create it with the wrong partition count
        await partition_counts(self.settings.kafka, self.topics)  # ConfigError: "... do not exist: run ..."
        if self.health is None:
            self.health = await start_health(
                self.settings, liveness=self.liveness, readiness=self.readiness, details=self.health_details
            )
        if self.producer is not None:
            await start_producer(self.producer, self.settings.kafka)
        try:
            await self.setup()
        except BaseException:  # a refused start-up (ConfigError) leaves no client open behind its message
            await self._close_clients()
            raise
        self.consumer.subscribe(self.topics, listener=_Listener(self))
        await self.consumer.start()
        self._kafka_ok = True

    async def _close_clients(self) -> None:
        with contextlib.suppress(KafkaError, RuntimeError):
            await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.teardown()
        untrack(self)
        await self._stop_producer_and_health()

    async def _stop_producer_and_health(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(KafkaError, RuntimeError):
                await self.producer.stop()
        if self.health is not None:
            await self.health.stop()
            self.health = None

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Run until :meth:`request_stop`; then finish the batch in hand, commit, leave the group."""
        self._fetched_at = asyncio.get_running_loop().time()  # start-up (joining the group) counts as a turn
        try:
            await self.start()
        except BaseException:  # a refused start-up (ConfigError) closes its clients: its one line stays alone
            with contextlib.suppress(Exception):
                await self.stop()
            raise
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            max_records = self.settings.kafka.max_batch_records
            while not self._stopping.is_set():
                timeout_ms = self.fetch_timeout_ms()
                fetch = asyncio.ensure_future(
                    self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
                )
                done, _ = await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
                if fetch not in done:
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await fetch
                    break
                self._fetched_at = asyncio.get_running_loop().time()
                self._raise_finish_error()  # a failed state write or commit stops the service before more work
                batch: Batch = fetch.result()
                if not batch and timeout_ms < FETCH_TIMEOUT_MS:  # woken for what is due, not idle yet
                    async with self.lock:
                        await self.due()
                    continue
                if not batch:
                    if self._uncommitted:
                        async with self.lock:
                            await self.flush()  # idle: commit what is handled now, not at the next batch
                    await self.idle()
                    await self.refresh_lag()
                    continue
                await self.process(batch)
                await self.refresh_lag()
        finally:
            stop.cancel()
            await self.stop()

    async def process(self, batch: Batch) -> None:
        async with self.lock:
            owned = self._unhandled(batch)
            if not owned:
                return
            spans = tracing.start_batch_spans(f"floe.sink.{self.name}", owned) if self.record_spans else []
            try:
                await self.handle(owned)
            finally:
                tracing.end_spans(spans)
            offsets = {tp: recs[-1].offset + 1 for tp, recs in owned.items()}
            self.positions.update(offsets)
            self.handled_at.update(dict.fromkeys(offsets, time.time()))
            self._uncommitted.update(offsets)
            self.batches += 1
            self.records += sum(len(r) for r in owned.values())
            if asyncio.get_running_loop().time() >= self._flush_at:
                await self.flush()

    def _unhandled(self, batch: Batch) -> Batch:
        """The records of ``batch`` this member owns and has not reached yet: a partition sought forward on
        assignment (its committed offset read again, :meth:`on_assigned`) may have records fetched before."""
        owned: Batch = {}
        for tp, recs in batch.items():
            if not recs or tp not in self.assigned:
                continue
            position = self.positions.get(tp)
            if position is not None and recs[0].offset < position:
                recs = [r for r in recs if r.offset >= position]
                if not recs:
                    continue
            owned[tp] = recs
        return owned

    async def flush(self) -> None:
        """Start the commit of every batch handled so far, behind the previous commit (strict order).

        What :meth:`finish` returns (the batches' last effects, then their commit) runs behind the next
        batches, only after the previous commit completed. A failure surfaces before the next batch. At most
        one commit is in flight: when the previous one is still running, this waits for it (back-pressure).
        Call with :attr:`lock` held."""
        prev = self._finishing
        if prev is not None and not prev.done():
            await asyncio.shield(prev)
        offsets, self._uncommitted = self._uncommitted, {}
        work = self.finish(offsets)
        if work is None:
            return
        self._finishing = asyncio.ensure_future(self._chain(prev, work))
        self._flush_at = asyncio.get_running_loop().time() + self.settings.kafka.commit_interval_ms / 1000

    def finish(self, offsets: dict[TopicPartition, int]) -> Awaitable[None] | None:
        """The rest of the effects of the batches handled since the last call, then the commit of
        ``offsets`` (next offset per partition; may be empty): run after the previous one, while the next
        batches are handled. Called synchronously by :meth:`flush` — what it captures is what the commit
        covers. None: nothing to do. This one commits the offsets (a sink's effects are complete by then)."""
        return self.commit_offsets(offsets) if offsets else None

    async def commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` (next offset per partition) through the consumer group, after every effect of the
        batches they cover (a sink under exactly_once commits them in its transactions instead)."""
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner replays this batch (idempotent effects).
            log.warning("commit failed after rebalance, batch will be replayed by the new owner: %s", exc)

    @staticmethod
    async def _chain(prev: asyncio.Future[None] | None, work: Awaitable[None]) -> None:
        try:
            if prev is not None:
                await prev
        except BaseException:
            if asyncio.iscoroutine(work):
                work.close()  # never started: its batches are replayed
            raise
        await work

    def _raise_finish_error(self) -> None:
        """Surface the failure of a pipelined tail/commit (the supervisor restarts us; the batch replays)."""
        pending = self._finishing
        if pending is not None and pending.done():
            self._finishing = None
            pending.result()

    async def drain(self) -> None:
        """Wait until every handled batch is completely written and committed (revocation, shutdown).
        Call with :attr:`lock` held."""
        await self.flush()
        pending, self._finishing = self._finishing, None
        if pending is not None:
            await pending

    async def stop(self) -> None:
        with contextlib.suppress(KafkaError, RuntimeError):
            await self.end_pause()
        try:
            await self.drain()  # the last batch's tail and commit, before leaving the group
        except (KafkaError, RuntimeError) as exc:
            log.warning("last batch not committed (it will be replayed): %s", exc)
        with contextlib.suppress(KafkaError, RuntimeError):
            await self.consumer.stop()  # leaves the group
        await self.teardown()
        await self._stop_producer_and_health()
