"""How the processor's outputs reach Kafka and its input offsets are committed: one strategy per
``kafka.processing_guarantee``, chosen by the composition root (runtime/deployables/app.py).

The processor hands a strategy the encoded outputs of each input partition's records (:meth:`buffer`, then
:meth:`send` once per batch) and, at each commit (ConsumerService.flush), the pipeline's state changes and
the offsets handled (:meth:`finish`: what it returns runs behind the next batches, strictly in order).

* :class:`AtLeastOnce`: outputs go to Kafka at once (acknowledgements not awaited: the next batch is handled
  meanwhile): violations on a producer of their own, everything else (check results, one per event) on the
  service's. The commit awaits them → writes the changelog records (states, then checkpoints) on a third
  producer → awaits → commits the offsets through the consumer group. aiokafka keeps one produce request in
  flight per connection, and hands a partition a new batch only once its previous one is in a request: on
  one producer a violation waits behind the check results in flight, and the batch handler behind both
  (bench/processor.py, event → violation latency). So neither the changelog nor the check results ever
  queue in front of a violation. A crash replays the batches since the last checkpoint
  with the state they were evaluated against: the same deterministic outputs again, deduplicated by id.
* :class:`ExactlyOnce`: one transaction per owned input partition (runtime/framework/transactions.py). Everything
  the records of input partition p cause — check results, violations, dead letters, forwards, lineage
  edges and health — goes into p's open transaction; the commit adds p's changelog records, checkpoint and
  consumed offsets and commits it (partitions in parallel). p's next records wait for that commit. A
  ``read_committed`` reader sees each output once; a crash aborts the open transactions and the successor
  replays exactly their inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from floe_stream.processors.pipeline import StateChanges
from floe_stream.runtime.deployables.changelog import Changelog
from floe_stream.runtime.deployables.outputs import Emitted
from floe_stream.runtime.framework.kafka import BatchProducer, OutRecord, start_producer
from floe_stream.runtime.framework.transactions import PartitionTransactions
from floe_stream.settings import KafkaSettings

Offsets = dict[TopicPartition, int]
GATHERED_MAX = 10_000
"""At most this many records gathered (:meth:`AtLeastOnce.send`) before they are handed over, whatever the time."""
CommitOffsets = Callable[[Offsets], Awaitable[None]]


class CommitStrategy(Protocol):
    async def start(self, producer: BatchProducer) -> None:
        """Before the consumer joins its group; ``producer``: the service's own (plain) producer."""

    async def close(self) -> None: ...

    async def acquire(self, partitions: Sequence[int]) -> None:
        """Newly owned input partitions, before their state is restored."""

    async def release(self, partitions: Sequence[int]) -> None:
        """Input partitions given up (everything handled from them is committed by then)."""

    def buffer(self, partition: int) -> Emitted:
        """Where the outputs of input partition ``partition``'s records go."""

    def retired_buffer(self, partition: int) -> Emitted:
        """Where the outputs of retiring an asset owned by ``partition`` go (no input caused them)."""

    async def send(self) -> None:
        """Hand the buffers to Kafka (once per batch); what is not urgent may be gathered a little first."""

    async def send_gathered(self) -> None:
        """Hand what :meth:`send` gathered to Kafka now (before a commit: the processor's ``flush``)."""

    def gathered_due_ms(self) -> int | None:
        """Milliseconds until what :meth:`send` gathered is due (at least 1), None when nothing is gathered:
        the processor's consume loop waits no longer for records before it calls :meth:`send_gathered`."""

    def finish(
        self, offsets: Offsets, changes: StateChanges, commit_offsets: CommitOffsets
    ) -> Awaitable[None] | None:
        """The commit of everything sent so far, ``changes`` and ``offsets`` (None: nothing to commit);
        ``commit_offsets``: through the consumer group."""


class AtLeastOnce:
    def __init__(
        self,
        cfg: KafkaSettings,
        changelog: Changelog,
        state_producer: AIOKafkaProducer,
        violations: tuple[str, AIOKafkaProducer],
    ) -> None:
        """``state_producer``: the changelog's own producer (its own in-flight request); ``violations``: the
        violations topic and the producer of its records (idem)."""
        self.cfg = cfg
        self.changelog = changelog
        self.state_producer = state_producer
        self._state = BatchProducer(state_producer)
        self.t_viol, self.violation_producer = violations
        self._viol = BatchProducer(self.violation_producer)
        self._out: BatchProducer | None = None
        self._buf = Emitted()
        self._acks: list[asyncio.Future[Any]] = []  # outputs handed to the producer since the last commit
        self._linger_s = cfg.results_linger_ms / 1000
        self._gathered = Emitted()  # check results (and other records but violations) not handed over yet
        self._gathered_n = 0
        self._gathered_at = 0.0  # loop time of the first record gathered

    async def start(self, producer: BatchProducer) -> None:
        self._out = producer
        await start_producer(self.state_producer, self.cfg)
        await start_producer(self.violation_producer, self.cfg)

    async def close(self) -> None:
        for p in (self.violation_producer, self.state_producer):
            with contextlib.suppress(KafkaError, RuntimeError):
                await p.stop()

    async def acquire(self, partitions: Sequence[int]) -> None:
        return None

    async def release(self, partitions: Sequence[int]) -> None:
        return None

    def buffer(self, partition: int) -> Emitted:
        return self._buf  # one produce of the whole batch (per-partition sends would queue behind each other)

    def retired_buffer(self, partition: int) -> Emitted:
        return self._buf

    async def send(self) -> None:
        buf = self._buf
        if not buf:
            return
        self._buf = Emitted()
        assert self._out is not None, "start() first"
        # sent now, acknowledged before the next changelog write; violations first, on their own connection
        records, t_viol = buf.records, self.t_viol
        violations = [r for r in records if r.topic == t_viol]
        if violations:
            self._acks.extend(await self._viol.enqueue(violations))
            records = [r for r in records if r.topic != t_viol]
        # the rest (one check result per event) is gathered up to kafka.results_linger_ms into one produce
        # request: ~50 a second instead of one per batch at 1,000 events/s, fewer requests for the processor
        # and the broker to handle while a violation waits (bench/processor.py --only latency)
        g = self._gathered
        if not g:
            self._gathered_at = asyncio.get_running_loop().time()
        g.records.extend(records)
        n = len(records)
        for lane, values in buf.lanes.items():
            n += len(values)
            have = g.lanes.get(lane)
            if have is None:
                g.lanes[lane] = values
            else:
                have.extend(values)
        self._gathered_n += n
        if (
            self._gathered_n >= GATHERED_MAX
            or asyncio.get_running_loop().time() - self._gathered_at >= self._linger_s
        ):
            await self.send_gathered()

    async def send_gathered(self) -> None:
        g = self._gathered
        if not g:
            return
        self._gathered, self._gathered_n = Emitted(), 0
        assert self._out is not None, "start() first"
        self._acks.extend(await self._out.enqueue(g.records, g.lanes))

    def gathered_due_ms(self) -> int | None:
        if not self._gathered:
            return None
        left = self._gathered_at + self._linger_s - asyncio.get_running_loop().time()
        return max(1, math.ceil(left * 1000))

    def finish(
        self, offsets: Offsets, changes: StateChanges, commit_offsets: CommitOffsets
    ) -> Awaitable[None] | None:
        acks, self._acks = self._acks, []
        if not acks and not changes:
            return commit_offsets(offsets) if offsets else None
        return self._finish(acks, changes, offsets, commit_offsets)

    async def _finish(
        self,
        acks: list[asyncio.Future[Any]],
        changes: StateChanges,
        offsets: Offsets,
        commit_offsets: CommitOffsets,
    ) -> None:
        if acks:
            await asyncio.gather(*acks)  # a state never claims an effect that is not durable
        if changes:
            await self._state.send_all(await self.changelog.records(changes))
        if offsets:
            await commit_offsets(offsets)


class ExactlyOnce:
    def __init__(self, txn: PartitionTransactions, changelog: Changelog) -> None:
        self.txn = txn
        self.changelog = changelog
        self._plain: BatchProducer | None = None
        self._buffers: dict[int, Emitted] = {}
        self._foreign = Emitted()  # outputs of assets retired while their partition is elsewhere
        self._acks: list[asyncio.Future[Any]] = []  # of those (plain records)
        self._committed: asyncio.Future[None] | None = None  # the last commit's end

    async def start(self, producer: BatchProducer) -> None:
        self._plain = producer
        await self.txn.check_broker()  # refuses a broker without transactions, one clear message

    async def close(self) -> None:
        await self.txn.close()

    async def acquire(self, partitions: Sequence[int]) -> None:
        # fences the previous owner and settles its open transaction, before its state is read
        await self.txn.acquire(partitions)

    async def release(self, partitions: Sequence[int]) -> None:
        await self.txn.release(partitions)

    def buffer(self, partition: int) -> Emitted:
        if partition not in self.txn.producers:
            raise RuntimeError(
                f"no transactional producer for partition {partition} (see the assignment log)"
            )
        return self._buffers.get(partition) or self._buffers.setdefault(partition, Emitted())

    def retired_buffer(self, partition: int) -> Emitted:
        if partition in self.txn.producers:
            return self.buffer(partition)  # with that partition's tombstone, in its transaction
        return self._foreign  # not ours (a contract retired while its partition is elsewhere): plain records

    async def send_gathered(self) -> None:
        return None  # send() gathers nothing: a transaction's records are visible at its commit anyway

    def gathered_due_ms(self) -> int | None:
        return None

    async def send(self) -> None:
        if self._committed is not None:
            await self._committed  # the previous commit ended the transactions these records would join
        buffers, self._buffers = self._buffers, {}
        for p, buf in buffers.items():
            if buf:
                await self.txn.send(p, buf.records, buf.lanes)
        if self._foreign:
            buf, self._foreign = self._foreign, Emitted()
            assert self._plain is not None, "start() first"
            self._acks.extend(await self._plain.enqueue(buf.records, buf.lanes))

    def finish(
        self, offsets: Offsets, changes: StateChanges, commit_offsets: CommitOffsets
    ) -> Awaitable[None] | None:
        if not (offsets or changes or self.txn.open or self._acks):
            return None
        acks, self._acks = self._acks, []
        self._committed = asyncio.get_running_loop().create_future()
        return self._commit(offsets, changes, acks, self._committed)

    async def _commit(
        self,
        offsets: Offsets,
        changes: StateChanges,
        acks: list[asyncio.Future[Any]],
        done: asyncio.Future[None],
    ) -> None:
        """Per owned partition, its open transaction gets its changelog records and checkpoint and its
        consumed offsets, and is committed (partitions in parallel)."""
        try:
            by_partition: dict[int, list[OutRecord]] = {}
            for r in await self.changelog.records(changes):
                by_partition.setdefault(r.partition, []).append(r)  # changelog partition = input partition
            foreign = [r for p, rs in by_partition.items() if p not in self.txn.producers for r in rs]
            part_offsets: dict[int, Offsets] = {}
            for tp, off in offsets.items():
                part_offsets.setdefault(tp.partition, {})[tp] = off
            await self.txn.commit(part_offsets, by_partition)
            if foreign:  # tombstones of assets retired while their partition is elsewhere
                assert self._plain is not None
                await self._plain.send_all(foreign)
            if acks:
                await asyncio.gather(*acks)
        finally:
            done.set_result(None)
