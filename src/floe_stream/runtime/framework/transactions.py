"""``kafka.processing_guarantee = exactly_once``: one Kafka transaction per owned input partition and commit.

The processor's input topics are co-partitioned, so "partition p" names one unit of work: partition p of
every input topic, partition p of the state changelog, and whatever handling those records produces
(check results, violations, dead letters, re-routed events, on any output partition). Each owned p has
its own transactional producer, ``transactional.id = <consumer group>-p<p>``, and each commit puts p's
outputs, p's changelog records and checkpoint, and p's consumed offsets (``send_offsets_to_transaction``)
in one transaction.

Why one id per partition and not one per process: aiokafka sends ``TxnOffsetCommit`` v0, which carries
no consumer-group generation (KIP-447), so the group coordinator cannot fence a member that lost its
partitions. The transaction coordinator can, by id: the new owner of p calls ``InitProducerId`` with
p's id before it restores p's state or reads p's committed offsets, which bumps the epoch — the old
owner (dead, or a zombie that missed the rebalance) gets ``ProducerFenced`` on its next send or commit —
and aborts the old owner's open transaction at once (a kill -9 leaves one behind; without the same id it
would hold every read_committed reader of the partitions it touched until ``transaction_timeout_ms``).
If the old owner's commit was already under way, ``InitProducerId`` waits for it to complete, so the new
owner restores exactly the state its committed offsets belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from floe_stream.runtime.framework.kafka import BatchProducer, Lanes, OutRecord, make_producer
from floe_stream.settings import ConfigError, KafkaSettings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 30.0  # the first transaction on a fresh cluster creates __transaction_state


class PartitionTransactions:
    """Transactional producers of the owned input partitions; at most one open transaction each."""

    def __init__(self, cfg: KafkaSettings, group_id: str) -> None:
        self.cfg = cfg
        self.group_id = group_id
        self.producers: dict[int, AIOKafkaProducer] = {}
        self._batches: dict[int, BatchProducer] = {}
        self._acks: dict[int, list[asyncio.Future[Any]]] = defaultdict(list)
        self.open: set[int] = set()  # partitions with a transaction begun and not yet committed

    def transactional_id(self, partition: int) -> str:
        return f"{self.group_id}-p{partition}"

    def _make(self, transactional_id: str) -> AIOKafkaProducer:
        return make_producer(
            self.cfg,
            transactional_id=transactional_id,
            enable_idempotence=True,
            transaction_timeout_ms=self.cfg.transaction_timeout_ms,
        )

    async def check_broker(self) -> None:
        """Refuse to start, with one clear message, on a broker without transactions (e.g. Tansu, whose
        ApiVersions lists InitProducerId but which answers it with an error)."""
        probe = self._make(f"{self.group_id}-probe")
        try:
            await asyncio.wait_for(probe.start(), PROBE_TIMEOUT_S)
        except (KafkaError, TimeoutError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            raise ConfigError(
                "kafka.processing_guarantee=exactly_once needs a broker with Kafka transactions (Apache Kafka "
                f"3.x/4.x); the broker at {self.cfg.bootstrap_servers} refused a transactional producer "
                f"({reason}). Set FLOE_KAFKA__PROCESSING_GUARANTEE=at_least_once for this broker (Tansu "
                "has no transactions)"
            ) from None
        finally:
            with contextlib.suppress(KafkaError, RuntimeError, TimeoutError):
                await asyncio.wait_for(probe.stop(), 10)

    async def acquire(self, partitions: Sequence[int]) -> None:
        """Start the producers of newly owned partitions. ``InitProducerId`` fences the previous owner's
        producer and aborts (or completes) its open transaction — call before restoring state or reading
        committed offsets."""
        new = {p: self._make(self.transactional_id(p)) for p in partitions if p not in self.producers}
        if not new:
            return
        started: list[AIOKafkaProducer] = []

        async def start(pr: AIOKafkaProducer) -> None:
            await pr.start()
            started.append(pr)

        try:
            await asyncio.gather(*(start(pr) for pr in new.values()))
        except BaseException:
            for pr in started:
                with contextlib.suppress(KafkaError, RuntimeError):
                    await pr.stop()
            raise
        for p, pr in new.items():
            self.producers[p] = pr
            self._batches[p] = BatchProducer(pr)

    async def release(self, partitions: Sequence[int]) -> None:
        """Stop the producers of partitions no longer owned (their transactions are committed by then)."""
        for p in partitions:
            pr = self.producers.pop(p, None)
            self._batches.pop(p, None)
            self._acks.pop(p, None)
            self.open.discard(p)
            if pr is not None:
                with contextlib.suppress(KafkaError, RuntimeError):
                    await pr.stop()

    async def close(self) -> None:
        await self.release(list(self.producers))

    async def _begin(self, partition: int) -> None:
        if partition not in self.open:
            await self.producers[partition].begin_transaction()
            self.open.add(partition)

    async def send(self, partition: int, records: Sequence[OutRecord], lanes: Lanes | None = None) -> None:
        """Hand records to partition ``partition``'s open transaction (begun if needed); not awaited here:
        ``commit_transaction`` flushes them, and their acknowledgements are checked at the commit."""
        if not records and not lanes:
            return
        await self._begin(partition)
        self._acks[partition].extend(await self._batches[partition].enqueue(records, lanes))

    async def commit(
        self,
        offsets: dict[int, dict[TopicPartition, int]],
        records: dict[int, list[OutRecord]],
    ) -> None:
        """For every owned partition with an open transaction, offsets or records: add the records (the
        changelog) and the consumed offsets to its transaction and commit it. Partitions in parallel."""
        parts = sorted(
            (self.open | set(offsets) | {p for p, rs in records.items() if rs}) & set(self.producers)
        )
        try:
            await asyncio.gather(*(self._commit(p, offsets.get(p), records.get(p, [])) for p in parts))
        except BaseException:
            # a failed or fenced transaction is aborted by the broker (or by the next owner); the caller
            # stops — its in-memory state is ahead of what was committed, a restart restores it
            self.open.clear()
            self._acks.clear()
            raise

    async def _commit(
        self, partition: int, offsets: dict[TopicPartition, int] | None, records: list[OutRecord]
    ) -> None:
        producer = self.producers[partition]
        await self._begin(partition)
        if records:
            self._acks[partition].extend(await self._batches[partition].enqueue(records))
        if offsets:
            await producer.send_offsets_to_transaction(offsets, self.group_id)
        acks = self._acks.pop(partition, [])
        await producer.commit_transaction()
        self.open.discard(partition)
        if acks:
            await asyncio.gather(*acks)  # already resolved: surfaces a failed send the commit did not
