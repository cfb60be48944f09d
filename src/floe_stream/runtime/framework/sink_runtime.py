"""What every sink shares: one classification of transient errors, one retry with backoff, one dead-letter format.

A transient error (the destination is down or busy: connection refused/reset, timeouts, PostgreSQL restarting,
serialization conflicts, deadlocks) is retried with exponential backoff while the batch's offsets stay
uncommitted and the runner's partitions are paused (the member keeps polling, so an outage longer than
``kafka.max_poll_interval_ms`` does not cost the group a rebalance); anything else is the record's fault and goes to the dead-letter topic with a reason. The reason
format is the same in every sink: ``<context>: <ExceptionType>: <message>`` (a :class:`DecodeError` carries its
own reason), at most 500 characters, plus the origin headers of :func:`floe_stream.runtime.framework.kafka.dead_letter`.

A record never stops a sink: when a write fails with an error that is not transient, the runner writes the
batch again record by record (effects are idempotent) and dead-letters each record whose own write fails,
with the reason ``write failed: <ExceptionType>: <message>`` — the rest of the batch is written.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import zlib
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

import asyncpg
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.backoff import Backoff
from floe_stream.runtime.framework.kafka import OutRecord, dead_letter, partition_counts
from floe_stream.runtime.framework.service import Batch, ConsumerService
from floe_stream.runtime.framework.transactions import PartitionTransactions
from floe_stream.settings import ConfigError, Settings
from floe_stream.telemetry import tracing
from floe_stream.telemetry.metrics import Instruments
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.decode import DecodeError

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)
"""The one list of "the destination is unavailable, try again" errors (sinks used to keep three differing copies)."""

BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 5.0
REASON_MAX = 500


def is_transient(exc: BaseException) -> bool:
    """True when retrying later can succeed. A destination error type may say so itself with ``permanent``."""
    permanent = getattr(exc, "permanent", None)
    if isinstance(permanent, bool):
        return not permanent
    return isinstance(exc, TRANSIENT_ERRORS)


async def retry_transient(
    fn: Callable[[], Awaitable[T]],
    *,
    stopping: asyncio.Event,
    what: str,
    on_state: Callable[[bool], None] | None = None,
    first_delay_s: float | None = None,
    max_retries: int | None = None,
) -> T:
    """Run ``fn`` until it succeeds; transient errors are retried with backoff (offsets stay put), anything else
    propagates. While stopping, a transient error propagates too: the next owner replays the batch; so does
    the transient error after ``max_retries`` retries (None: retry until it works).
    ``on_state(True)`` marks the destination degraded (readiness), ``on_state(False)`` healthy again."""
    backoff = Backoff(BACKOFF_START_S if first_delay_s is None else first_delay_s, BACKOFF_MAX_S)
    attempt = 0
    while True:
        try:
            out = await fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            if on_state is not None:
                on_state(True)
            if stopping.is_set():
                raise
            if max_retries is not None and attempt > max_retries:
                raise
            delay = backoff.next()
            log.warning(
                "%s unavailable, retry %d in %.1fs (offsets not committed): %s", what, attempt, delay, exc
            )
            await asyncio.sleep(delay)
            continue
        if on_state is not None:
            on_state(False)
        return out


def reason_of(exc: BaseException, context: str = "") -> str:
    """The dead-letter reason of an exception, in the one format every sink uses."""
    base = exc.reason if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
    return f"{context}: {base}" if context else base


class DeadLetters:
    """Records to dead-letter after a batch: the original bytes with the reason, one metric, one log line each."""

    def __init__(self, topic: str, partitions: int, metrics: Instruments) -> None:
        self.topic = topic
        self.partitions = partitions
        self.metrics = metrics  # the runner's
        self.records: list[OutRecord] = []
        # the input partition of each record (its transaction under exactly_once)
        self.sources: list[int] = []

    def add(self, rec: ConsumerRecord[bytes, bytes], reason: str, metric_reason: str) -> None:
        self.records.append(dead_letter(self.topic, rec, reason[:REASON_MAX], self.partitions))
        self.sources.append(rec.partition)
        self.metrics.dead_lettered.add(1, {"topic": rec.topic, "reason": metric_reason})
        log.warning("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason[:200])

    def add_exc(self, rec: ConsumerRecord[bytes, bytes], exc: BaseException, context: str = "") -> None:
        self.add(rec, reason_of(exc, context), type(exc).__name__)

    def take(self) -> list[OutRecord]:
        out, self.records, self.sources = self.records, [], []
        return out

    def take_by_partition(self) -> dict[int, list[OutRecord]]:
        """The records by the input partition they came from."""
        out: dict[int, list[OutRecord]] = defaultdict(list)
        for p, rec in zip(self.sources, self.take(), strict=True):
            out[p].append(rec)
        return out


# --- the Sink protocol and its one runtime ------------------------------------------------------------------


class NotCommitted(Exception):
    """Raised by a sink's write when shutdown interrupted it: the batch must not be committed (it replays)."""


@dataclass(slots=True)
class SinkRecord:
    """One decoded input record as a sink sees it: its input's name, key, decoded value and trace context."""

    input: str
    key: bytes | None
    value: Any
    traceparent: str | None = None
    ref: Any = field(default=None, repr=False)  # the runner's handle on the source record (opaque to a sink)


@dataclass(slots=True)
class SinkBatch:
    """The records of one fetch, in order. A sink rejects a record it can never write (dead-lettered)."""

    records: list[SinkRecord]
    rejected: list[tuple[SinkRecord, str, str]] = field(default_factory=list)

    def reject(self, record: SinkRecord, reason: str, metric_reason: str) -> None:
        self.rejected.append((record, reason, metric_reason))

    def reject_exc(self, record: SinkRecord, exc: BaseException, context: str = "") -> None:
        self.reject(record, reason_of(exc, context), type(exc).__name__)


@dataclass(frozen=True, slots=True)
class Input:
    """A topic a sink reads, and how its records are decoded. ``decode(headers, key, value)`` raises on bad
    input: the record is dead-lettered (reason ``<context>: ...``), or skipped with ``on_error="skip"``."""

    name: str
    topic: TopicKey
    decode: Callable[[dict[str, bytes], bytes | None, bytes | None], Any]
    context: str = ""
    on_error: Literal["dead-letter", "skip"] = "dead-letter"


def _no_pause(degraded: bool, what: str) -> None:
    return None


async def _run_now(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()


class Publish(Protocol):
    def __call__(
        self,
        topic: TopicKey,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        /,
        *,
        source: SinkRecord | None = None,
    ) -> Awaitable[None]:
        """Produce a side-output record (the alerts sink's ``alerts-dlq``). ``source``: the input record it is
        owed to; under exactly_once the record joins the transaction of that record's partition."""


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What the runtime lends a sink at start: the stop signal, the retry, side outputs. Nothing of Kafka."""

    stopping: asyncio.Event
    still_working: Callable[[], None]
    publish: Publish
    on_destination: Callable[[bool, str], None] = _no_pause
    """``(degraded, what)`` on every retry outcome: the runner pauses its partitions while degraded."""
    after_commit: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] = _run_now
    """Run ``fn`` once what the current batch published is committed: at once under at_least_once (it is sent
    already); under exactly_once after the transaction holding it committed — bookkeeping that must not outlive
    an aborted side output (the alerts ledger's "dead-lettered")."""
    metrics: Instruments = field(kw_only=True)
    """The process's instruments (the runner's, given by the composition root)."""

    async def retry(
        self,
        fn: Callable[[], Awaitable[T]],
        what: str,
        on_state: Callable[[bool], None] | None = None,
        *,
        first_delay_s: float | None = None,
        max_retries: int | None = None,
    ) -> T:
        """:func:`retry_transient` with this runtime's stop signal; while degraded the service stays alive and
        its partitions are paused (the group member stays, nothing more is fetched)."""

        def state(degraded: bool) -> None:
            if on_state is not None:
                on_state(degraded)
            if degraded:
                self.still_working()  # alive (/healthz 200), not ready: a restart would not bring it back
            self.on_destination(degraded, what)

        return await retry_transient(
            fn,
            stopping=self.stopping,
            what=what,
            on_state=state,
            first_delay_s=first_delay_s,
            max_retries=max_retries,
        )


class Sink(ABC):
    """A destination: quix-streams' shape (``write(batch)`` then ``flush()``), plus start/close and health.
    A sink never sees Kafka: the runtime decodes, dead-letters, retries, commits after ``flush`` returned.

    A subclass names itself (``name``) and implements :meth:`inputs` and :meth:`write`; every other member has
    a default that a sink overrides only when it differs."""

    name: str
    """The deployable, e.g. ``sink-postgres``; its consumer group is ``<group_prefix>-<name>``."""
    record_spans: bool = True
    """One span per record around write (False: the sink traces itself)."""
    outputs: tuple[TopicKey, ...] = ()
    """Topics it publishes to through ``ctx.publish`` (they must exist at start)."""

    @property
    def collect_s(self) -> float:
        """Wait this long after a fetch for more records before writing (the alerts' group wait)."""
        return 0.0

    @abstractmethod
    def inputs(self) -> Sequence[Input]:
        """The topics it reads and how each record is decoded."""

    @abstractmethod
    async def write(self, batch: SinkBatch) -> None:
        """Write the decoded records; reject the ones the destination refuses (``batch.reject``)."""

    async def start(self, ctx: SinkContext) -> None:
        """Open connections; ``ctx`` is what the runtime lends (stop signal, retry, side outputs)."""
        return None

    async def flush(self) -> None:
        """Make durable what :meth:`write` buffered; offsets are committed after it returns. Only a sink that
        buffers across writes overrides it."""
        return None

    async def close(self) -> None:
        """Release what :meth:`start` opened."""
        return None

    async def readiness(self) -> dict[str, bool]:
        """Its own readiness checks for /readyz."""
        return {}

    def health_details(self) -> dict[str, Any]:
        """Extra details for /readyz."""
        return {}

    def stall_allowance_s(self) -> float:
        """How long one write may legitimately take beyond the runtime's own bound (retry budgets)."""
        return 0.0


S = TypeVar("S", bound=Sink)

_IN_BATCH: contextvars.ContextVar[bool] = contextvars.ContextVar("floe_sink_in_batch", default=False)
"""True inside a batch's handling (its write, in every task it starts): side outputs then belong to the batch's
transactions. A sink's own background task (the alerts' re-sends) has its own context: False."""


class SinkRunner(ConsumerService, Generic[S]):
    """The one sink runtime: consume → decode (bad input dead-lettered with its reason) → ``sink.write`` →
    ``sink.flush`` → dead letters produced → offsets committed. While the destination is down the sink's
    ``ctx.retry`` holds the batch (offsets uncommitted) and keeps the service alive; the runner pauses every
    assigned partition and keeps polling, so the member stays in its group however long the outage
    (``ConsumerService.pause_fetching``; ``details.paused_partitions`` and ``floe_consumer_paused_partitions``
    meanwhile), and resumes once the write went through. /readyz reports the sink's own readiness (503 while
    degraded) and ``details``; stop finishes the batch, commits, leaves the group.

    ``kafka.processing_guarantee = exactly_once`` (Apache Kafka): what the runner writes to Kafka because of an
    input record — its dead letter, a side output the sink publishes for it (``ctx.publish(..., source=)``) —
    goes in the transaction of the record's input partition, which also commits that partition's offsets
    (``send_offsets_to_transaction``): runtime/framework/transactions.py's one producer per owned partition,
    ``<group>-p<n>``, so a sink's inputs must be co-partitioned (checked at start). A new owner's producer fences
    the previous one and ends its open transaction before the partition's committed offset is read again, so a
    sink killed with a transaction open leaves nothing a read_committed reader sees twice. Bookkeeping tied to a
    side output (the alerts ledger's "dead-lettered") waits for the commit (``ctx.after_commit``)."""

    def __init__(self, settings: Settings, sink: S, metrics: Instruments) -> None:
        k = settings.kafka
        self.metrics = metrics  # the process's instruments, given by the composition root
        self.sink = sink
        self.name = sink.name
        self.record_spans = sink.record_spans
        self._inputs = {topic_name(k.topic_prefix, i.topic): i for i in sink.inputs()}
        self.t_dlq = topic_name(k.topic_prefix, TopicKey.DLQ)
        self.partitions: dict[str, int] = {}
        self.records_dead_lettered = 0  # undecodable or rejected input records
        self._writing = False  # inside handle's write/flush, holding the lock: pausing is safe
        super().__init__(settings, list(self._inputs), f"{k.group_prefix}-{sink.name}")
        self.txns = PartitionTransactions(k, self.group_id) if k.exactly_once else None
        self._batch_partitions: list[int] = []  # the input partitions of the batch in hand
        self._after: list[Callable[[], Awaitable[None]]] = []  # ctx.after_commit of the batches not flushed
        # per commit under way, in order: the ctx.after_commit of the batches it covers
        self._committing: deque[list[Callable[[], Awaitable[None]]]] = deque()
        self._txn_failed = False  # a transaction failed: nothing after it may commit (its batches replay)
        # PartitionTransactions begins a transaction on a partition's first send: one send at a time (a sink's
        # concurrent deliveries publish concurrently)
        self._sending = asyncio.Lock()

    def context(self) -> SinkContext:
        """What the sink gets at start."""
        return SinkContext(
            stopping=self._stopping,
            still_working=self.still_working,
            publish=self._publish,
            on_destination=self._on_destination,
            after_commit=self._after_commit,
            metrics=self.metrics,
        )

    async def setup(self) -> None:
        k = self.settings.kafka
        outputs = [topic_name(k.topic_prefix, t) for t in self.sink.outputs]
        self.partitions = await partition_counts(k, [self.t_dlq, *outputs])
        if self.txns is not None:
            counts = await partition_counts(k, self.topics)
            if len(set(counts.values())) > 1:
                raise ConfigError(
                    f"kafka.processing_guarantee=exactly_once: the input topics of {self.name} must be "
                    "co-partitioned (same partition count): "
                    + ", ".join(f"{t}={n}" for t, n in sorted(counts.items()))
                )
            await self.txns.check_broker()
        await self.sink.start(self.context())

    async def on_assigned(self, tps: list[TopicPartition]) -> None:
        if self.txns is None:
            return
        # InitProducerId of <group>-p<n> fences the previous owner and completes (or aborts) its open transaction;
        # only then is the committed offset final: aiokafka may have started fetching from the one it read
        # before, so the partitions are sought to it again (what was fetched before it is dropped: _unhandled)
        await self.txns.acquire(sorted({tp.partition for tp in tps}))
        for tp in tps:
            committed = await self.consumer.committed(tp)
            if committed is not None:
                self.consumer.seek(tp, committed)
                self.positions[tp] = committed

    async def on_revoked(self, tps: list[TopicPartition]) -> None:
        if self.txns is None:
            return
        owned = {tp.partition for tp in self.assigned}  # the revoked batches are committed by now (drain)
        await self.txns.release(sorted({tp.partition for tp in tps} - owned))

    def _on_destination(self, degraded: bool, what: str) -> None:
        if not degraded:
            self.resume_fetching()
        elif self._writing:  # a retry outside the batch's write (none today) must not poll beside the loop
            self.pause_fetching(f"{self.name}: {what} unavailable")

    async def teardown(self) -> None:
        try:
            await self.sink.close()
        finally:
            if self.txns is not None:
                await self.txns.close()

    def _transaction_of(self, source: SinkRecord | None) -> int | None:
        """The input partition whose transaction a side output joins; None: produced at once (at_least_once,
        or outside a batch: nothing to commit it with)."""
        if self.txns is None or not _IN_BATCH.get() or not self._batch_partitions:
            return None
        ref = source.ref if source is not None else None
        if isinstance(ref, ConsumerRecord) and ref.partition in self._batch_partitions:
            return int(ref.partition)
        return self._batch_partitions[0]

    async def _publish(
        self,
        topic: TopicKey,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        *,
        source: SinkRecord | None = None,
    ) -> None:
        name = topic_name(self.settings.kafka.topic_prefix, topic)
        if name not in self.partitions:
            self.partitions.update(await partition_counts(self.settings.kafka, [name]))
        partition = zlib.crc32(key) % self.partitions.get(name, 1)
        record = OutRecord(name, partition, key, value, headers)
        txn = self._transaction_of(source)
        if txn is None:
            await self.produce([record])
        else:
            assert self.txns is not None
            async with self._sending:
                await self.txns.send(txn, [record])

    async def _after_commit(self, fn: Callable[[], Awaitable[None]]) -> None:
        if self.txns is None or not _IN_BATCH.get():
            await fn()
        else:
            self._after.append(fn)

    def finish(self, offsets: dict[TopicPartition, int]) -> Awaitable[None] | None:
        # called when a commit is started, for exactly the batches it covers (commit_offsets pops it, in order)
        if not offsets:
            return None
        self._committing.append(self._after)
        self._after = []
        return self.commit_offsets(offsets)

    async def commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        if self.txns is None:
            await super().commit_offsets(offsets)
        else:
            if self._txn_failed:  # later offsets would skip the aborted batches: the next owner replays them
                raise RuntimeError(f"{self.name}: an earlier transaction failed, nothing more is committed")
            by_partition: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
            for tp, offset in offsets.items():
                by_partition[tp.partition][tp] = offset
            try:
                # The commit runs behind the next batch (service.flush): a dead letter or side output that batch
                # sent now would join the transaction being committed, with these offsets, which do not cover
                # its input — a kill before the next commit replays that input and writes it again. Sends wait.
                async with self._sending:
                    await self.txns.commit(by_partition, {})  # a failure (fenced: a zombie) stops the service
            except BaseException:
                self._txn_failed = True
                self._committing.clear()  # their side outputs are aborted: no bookkeeping for them
                raise
        for fn in self._committing.popleft() if self._committing else []:
            await fn()

    async def readiness(self) -> dict[str, bool]:
        checks = await super().readiness()
        checks.update(await self.sink.readiness())
        return checks

    def health_details(self) -> dict[str, Any]:
        details = self.sink.health_details()
        if self.paused:
            details = {**details, "paused_partitions": len(self.paused)}
        return details

    def stall_allowance_s(self) -> float:
        return self.sink.stall_allowance_s()

    async def process(self, batch: Batch) -> None:
        await self._collect(batch)
        try:
            await super().process(batch)
        except NotCommitted as exc:
            log.info("%s: batch not committed, it will be replayed", exc)

    async def _collect(self, batch: Batch) -> None:
        """Grow the fetched batch before writing it, quix-streams' buffer-then-flush: while a backlog keeps
        the fetches full, up to ``sink.flush_max_records`` records within ``sink.flush_interval_ms`` make one
        write (a fetch that comes back empty ends it: at low load nothing waits); a sink with a ``collect_s``
        (the alerts' group wait) waits that long for related records whatever the load.

        Why: ``python -m bench.sink --only a`` writes 11k results/s in batches of 1,000 (one result per asset
        and check per statement), 21–24k/s at 5,000 and 24–30k/s at 10,000 (docs/PERFORMANCE.md)."""
        loop = asyncio.get_running_loop()
        cfg = self.settings.sink
        wait = self.sink.collect_s
        deadline = loop.time() + (wait if wait > 0 else cfg.flush_interval_ms / 1000)
        size = sum(len(r) for r in batch.values())
        while not self._stopping.is_set() and size < cfg.flush_max_records:
            left = deadline - loop.time()
            if left <= 0:
                break
            # during the group wait, block for what arrives; after it, take only what is already fetched
            timeout_ms = max(1, int(left * 1000)) if wait > 0 else 0
            more = await self.consumer.getmany(
                timeout_ms=timeout_ms, max_records=cfg.flush_max_records - size
            )
            if not more and wait <= 0:
                break
            for tp, recs in more.items():
                batch.setdefault(tp, []).extend(recs)
                size += len(recs)

    async def handle(self, batch: Batch) -> None:
        token = _IN_BATCH.set(True)
        self._batch_partitions = sorted({tp.partition for tp in batch})
        try:
            await self._handle(batch)
        finally:
            _IN_BATCH.reset(token)
            self._batch_partitions = []

    async def _handle(self, batch: Batch) -> None:
        dead = DeadLetters(self.t_dlq, self.partitions.get(self.t_dlq, 1), self.metrics)
        records: list[SinkRecord] = []
        for tp, recs in batch.items():
            spec = self._inputs[tp.topic]
            for rec in recs:
                headers = dict(rec.headers or ())
                try:
                    value = spec.decode(headers, rec.key, rec.value)
                except Exception as exc:
                    if spec.on_error == "dead-letter":
                        dead.add_exc(rec, exc, spec.context)
                    continue
                tp_header = headers.get(tracing.TRACEPARENT)
                traceparent = tp_header.decode("ascii", "replace") if tp_header else None
                records.append(SinkRecord(spec.name, rec.key, value, traceparent, rec))
        out = SinkBatch(records)
        if records:
            self._writing = True
            try:
                try:
                    await self._write(out)
                except Exception as exc:
                    if isinstance(exc, NotCommitted) or is_transient(exc):
                        raise  # stopping (or out of retries) while the destination is down: the batch replays
                    out = await self._write_one_by_one(records, exc, dead)
            finally:  # written, refused, or stopping: the partitions are not left paused
                self._writing = False
                await self.end_pause()
        for r, reason, metric_reason in out.rejected:
            dead.add(r.ref, reason, metric_reason)
        self.records_dead_lettered += len(dead.records)
        if not dead.records:
            return
        if self.txns is None:
            await self.produce(dead.take())
        else:
            async with self._sending:
                for p, recs in dead.take_by_partition().items():
                    await self.txns.send(p, recs)  # committed with p's offsets

    async def _write(self, batch: SinkBatch) -> None:
        await self.sink.write(batch)
        await self.sink.flush()

    async def _write_one_by_one(
        self, records: list[SinkRecord], failure: BaseException, dead: DeadLetters
    ) -> SinkBatch:
        """The batch's write failed for a reason retrying cannot cure: write each record alone; a record whose
        own write fails is dead-lettered with the reason, the others are written. Returns the records the
        sink rejected on the way."""
        log.warning(
            "%s: a batch of %d records failed (%s: %s); writing them one by one",
            self.name, len(records), type(failure).__name__, str(failure)[:200],
        )  # fmt: skip
        out = SinkBatch(records)
        for rec in records:
            one = SinkBatch([rec])
            try:
                await self._write(one)
            except Exception as exc:
                if isinstance(exc, NotCommitted) or is_transient(exc):
                    raise
                dead.add_exc(rec.ref, exc, "write failed")
                continue
            out.rejected.extend(one.rejected)
        return out
