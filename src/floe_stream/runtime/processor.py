"""The processor deployable: inputs → pure engine → check results, violations, state changelog.

Topology (all co-partitioned, same partition count):
  materializations, catalog-commits, ticks  ──► engine ──► check-results, violations (keyed by asset)
                                                  └──────► processor-state (changelog, partition = input partition)
Per batch: evaluate, hand outputs and dead letters to the producer (sent at once, acknowledgements not
awaited: the next batch is handled meanwhile). At each commit (``kafka.commit_interval_ms``, idle,
revocation, shutdown; ConsumerService.flush): await those acknowledgements → write the dirty states +
per-partition checkpoints on a second producer (so the changelog never queues in front of a violation)
→ await → commit, behind the next batches in strict order. On assignment the state of the new partitions
is rebuilt from the changelog; inputs are sought past the checkpoint, so a crash between the state write
and the commit replays nothing, and a crash before it replays the batches since the last checkpoint
with the state they were evaluated against (the same deterministic outputs again).

With ``kafka.processing_guarantee = exactly_once`` (runtime/transactions.py) there is no second producer
and no pipelining: the records handled from input partition p go into p's open transaction, and each
commit adds p's changelog records, checkpoint and consumed offsets to it and commits it (every partition
in parallel, synchronously, before the next batch). Readers with ``read_committed`` see a batch's outputs
at that commit, once; a crash aborts the open transactions and the successor replays exactly them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from floe_stream.contracts.registry import ContractRegistry
from floe_stream.processors.engine import Engine
from floe_stream.processors.enrich import ViolationEnricher
from floe_stream.processors.model import AssetState, PartitionCheckpoint
from floe_stream.processors.pipeline import Pipeline
from floe_stream.processors.registry import CHECKS
from floe_stream.runtime.checks_runtime import ChecksRuntime
from floe_stream.runtime.kafka import (
    BatchProducer,
    OutRecord,
    make_consumer,
    make_producer,
    partition_counts,
    start_producer,
)
from floe_stream.runtime.lineage_view import LineageView
from floe_stream.runtime.outputs import OutputEncoder
from floe_stream.runtime.service import Batch, ConsumerService
from floe_stream.runtime.transactions import PartitionTransactions
from floe_stream.settings import ConfigError, Settings
from floe_stream.telemetry import tracing
from floe_stream.telemetry.hooks import ProcessorObservability
from floe_stream.telemetry.metrics import Instruments, instruments, untrack
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.violation import ResolvedData, ViolationData

log = logging.getLogger(__name__)

CHECKPOINT_KEY = b"__checkpoint__"
STATE_CHUNK = 32  # states serialized between two yields to the event loop


class ProcessorService(ConsumerService):
    name = "processor"
    record_spans = False  # traced per record and per check by telemetry/hooks.py

    def __init__(
        self,
        settings: Settings,
        registry: ContractRegistry,
        engine: Engine | None = None,
        metrics: Instruments | None = None,
    ) -> None:
        k = settings.kafka
        self.t_mat = topic_name(k.topic_prefix, TopicKey.MATERIALIZATIONS)
        self.t_commit = topic_name(k.topic_prefix, TopicKey.CATALOG_COMMITS)
        self.t_tick = topic_name(k.topic_prefix, TopicKey.TICKS)
        self.t_results = topic_name(k.topic_prefix, TopicKey.CHECK_RESULTS)
        self.t_viol = topic_name(k.topic_prefix, TopicKey.VIOLATIONS)
        self.t_state = topic_name(k.topic_prefix, TopicKey.PROCESSOR_STATE)
        self.t_dlq = topic_name(k.topic_prefix, TopicKey.DLQ)
        self.t_probe = topic_name(k.topic_prefix, TopicKey.PROBE_RESULTS)
        super().__init__(
            settings, [self.t_mat, self.t_commit, self.t_tick, self.t_probe], f"{k.group_prefix}-processor"
        )
        self.registry = registry
        self.metrics = metrics or instruments()  # the process's instruments, given by the composition root
        # metrics, spans, custom metrics; the engine is composed here with the checks measured by it
        self.obs = ProcessorObservability(registry, telemetry=settings.telemetry, metrics=self.metrics)
        engine = engine or Engine(
            self.obs.instrument(CHECKS),
            untimed=CHECKS,
            clock_skew_s=settings.clock_skew_s,
            policy=settings.checks.policy(),
            limits=settings.limits,
        )
        # the pure enrichment step (consumers, impact, root cause), shared across instances by the lineage view
        self.context = ViolationEnricher(registry, engine.state_of)
        self.lineage = LineageView(self.context)
        self.checks_rt = ChecksRuntime(settings, registry, engine)  # contract lifecycle + availability pings
        self.pipeline = Pipeline(
            engine,
            registry,
            enricher=self.context,
            observer=self.obs,
            on_tick=self.checks_rt.schedule_pings,  # background, never awaited
            max_record_bytes=k.max_record_bytes,
        )
        self.obs.watch(self.pipeline.data_times)  # the data-age gauge
        self.encoder = OutputEncoder(
            k.topic_prefix, self.obs, tracing.verdict_traceparent, max_record_bytes=k.max_record_bytes
        )
        self.kinds = {
            self.t_mat: TopicKey.MATERIALIZATIONS,
            self.t_commit: TopicKey.CATALOG_COMMITS,
            self.t_tick: TopicKey.TICKS,
            self.t_probe: TopicKey.PROBE_RESULTS,
        }
        # at_least_once: the changelog has its own producer (its own in-flight request), it never delays
        # a violation. exactly_once: one transactional producer per owned partition instead.
        self.txn = PartitionTransactions(k, self.group_id) if k.exactly_once else None
        self.state_producer = make_producer(k) if self.txn is None else None
        self.state_batches = BatchProducer(self.state_producer) if self.state_producer else None
        self._acks: list[asyncio.Future[Any]] = []  # outputs handed to the producer since the last commit
        # counters summed per record, handed to the instruments at most once a second and when idle
        self._processed: Counter[str] = Counter()
        self._counted_at = 0.0
        self.partitions = 0
        self.on_violation: list[Callable[[ViolationData | ResolvedData], None]] = self.encoder.on_violation

    async def setup(self) -> None:
        inputs = (self.t_mat, self.t_commit, self.t_tick, self.t_probe, self.t_state)
        all_counts = await partition_counts(
            self.settings.kafka, [*inputs, self.t_results, self.t_viol, self.t_dlq]
        )
        counts = {t: all_counts[t] for t in inputs}
        self.encoder.partitions = {t: all_counts[t] for t in (self.t_results, self.t_viol, self.t_dlq)}
        if len(set(counts.values())) != 1:
            raise ConfigError(
                "input topics must be co-partitioned (same partition count): "
                + ", ".join(f"{t}={n}" for t, n in counts.items())
            )
        self.partitions = self.pipeline.partitions = next(iter(counts.values()))
        if self.txn is not None:
            await self.txn.check_broker()  # refuses a broker without transactions, one clear message
        if self.state_producer is not None:
            await start_producer(self.state_producer, self.settings.kafka)
        await self.lineage.start(self)  # impact context across instances (lineage topic)
        assert self.batch_producer is not None
        await self.checks_rt.start(self.batch_producer, self.partitions)

    async def teardown(self) -> None:
        untrack(self.obs)
        await self.checks_rt.stop()
        if self.txn is not None:
            await self.txn.close()
        if self.state_producer is not None:
            await self.state_producer.stop()

    async def idle(self) -> None:
        """Between batches: record pending metrics; retire the state of assets whose contract was retired."""
        self.obs.acc.flush(None, force=True)
        self._record_counts(force=True)
        if not self.checks_rt.has_gone:
            return
        async with self.lock:
            if self.txn is not None:
                await self._retire_gone_eos()
                await self.flush(force=True)  # the retire outputs and tombstones, committed now
                return
            await self.drain()  # the previous batches' state writes land before these tombstones
            self._retire_gone()
            assert self.batch_producer is not None
            buf = self.encoder.take()
            await self.batch_producer.send_all(buf.records, buf.lanes)
            changes = self.pipeline.take_changes()
            await self._write_state([], changes.states, changes.retired, changes.checkpoints)

    def _retire_gone(self) -> None:
        """Assets whose contract was retired (or that an update dropped): resolve open episodes, drop state."""
        now = datetime.now(UTC)
        for asset in self.checks_rt.take_gone():
            if self.pipeline.retire(asset, now, self.encoder.emit):
                self.checks_rt.forget([asset.asset_id])

    async def _retire_gone_eos(self) -> None:
        """exactly_once: each retired asset's outputs in the transaction of its partition."""
        now = datetime.now(UTC)
        assert self.txn is not None and self.batch_producer is not None
        for asset in self.checks_rt.take_gone():
            if self.pipeline.retire(asset, now, self.encoder.emit):
                self.checks_rt.forget([asset.asset_id])
                buf = self.encoder.take()
                p = partition_for(asset.asset_id, self.partitions)
                if p in self.txn.producers:
                    await self.txn.send(p, buf.records, buf.lanes)
                else:  # not ours (a contract retired while its partition is elsewhere): plain records
                    await self.batch_producer.send_all(buf.records, buf.lanes)

    # --- state rebuild ---------------------------------------------------------------------------
    async def on_assigned(self, tps: list[TopicPartition]) -> None:
        new = sorted(p for p in {tp.partition for tp in tps} if not self.pipeline.owns(p))
        if self.txn is not None:
            # fence the previous owner and settle its open transaction BEFORE reading its state/offsets
            await self.txn.acquire(sorted({tp.partition for tp in tps}))
        t0, read = time.perf_counter(), 0
        if new:
            read = await self._rebuild(new)
            gc.collect()
            gc.freeze()  # the rebuilt states are long-lived: keep them out of every later GC pass
            self.checks_rt.find_orphans(self.pipeline.asset_ids())  # contracts retired while unowned
        for tp in tps:
            done = self.pipeline.done(tp.partition, tp.topic)
            if done is None and self.txn is None:
                continue
            committed = await self.consumer.committed(tp)
            if done is not None and (committed is None or committed <= done):
                self.consumer.seek(tp, done + 1)
            elif committed is not None and self.txn is not None:
                # exactly_once: the committed offset as read after the fencing above (aiokafka may have
                # fetched its own before the previous owner's last transaction settled)
                self.consumer.seek(tp, committed)
        log.info(
            "assigned partitions %s (%d assets in state; %d changelog records read in %.2f s)",
            sorted({tp.partition for tp in tps}),
            len(self.pipeline.asset_ids()),
            read,
            time.perf_counter() - t0,
        )

    async def on_revoked(self, tps: list[TopicPartition]) -> None:
        still = {tp.partition for tp in self.assigned}
        gone = {tp.partition for tp in tps} - still
        if self.txn is not None:
            await self.txn.release(sorted(gone))  # their transactions were committed by the drain
        if gone:
            dropped = self.pipeline.drop(gone)
            log.info("revoked partitions %s (dropped %d assets)", sorted(gone), dropped)

    async def _rebuild(self, partitions: list[int]) -> int:
        """The state of ``partitions`` from the changelog; returns the number of records read."""
        reader: AIOKafkaConsumer = make_consumer(self.settings.kafka, group_id=None, fetch_max_wait_ms=10)
        await reader.start()
        try:
            tps = [TopicPartition(self.t_state, p) for p in partitions]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            end = await reader.end_offsets(tps)
            states: dict[str, AssetState] = {}
            checkpoints: dict[int, PartitionCheckpoint] = {}
            remaining = {tp for tp in tps if end[tp] > 0}
            read = 0
            while remaining:
                batch = await reader.getmany(timeout_ms=200, max_records=5000)
                for tp, recs in batch.items():
                    read += len(recs)
                    for rec in recs:
                        if rec.key == CHECKPOINT_KEY:
                            if rec.value:
                                checkpoints[tp.partition] = PartitionCheckpoint.model_validate_json(rec.value)
                        elif rec.key is not None:
                            if rec.value:
                                states[rec.key.decode()] = AssetState.model_validate_json(rec.value)
                            else:
                                states.pop(rec.key.decode(), None)
                for tp in list(remaining):
                    if await reader.position(tp) >= end[tp]:
                        remaining.discard(tp)
            self.pipeline.restore(partitions, states.values(), checkpoints.values())
            return read
        finally:
            await reader.stop()

    # --- the batch -------------------------------------------------------------------------------
    async def handle(self, batch: Batch) -> None:
        # the first updates of each batch are measured (duration histogram, spans), the rest skip the wrapper
        self.pipeline.measure(self.obs.timed_updates())
        # a record stamped beyond this clock + limits.max_future_s is dead-lettered: its time is "now" for the core
        self.pipeline.not_after_ms = int((time.time() + self.settings.limits.max_future_s) * 1000)
        if self.txn is not None:
            await self._handle_eos(batch)
            return
        self._retire_gone()
        for tp, recs in batch.items():
            self.pipeline.feed(self.kinds[tp.topic], tp.partition, recs, self.encoder.emit)
            self._processed[tp.topic] += len(recs)
        self._record_counts()
        self.obs.flush(batch)  # metrics once per batch
        buf = self.encoder.take()
        buf.records.extend(self.lineage.records(self.pipeline.take_shared()))  # lineage edges, changed health
        assert self.batch_producer is not None
        # outputs, dead letters, re-routes, lineage: sent now, acknowledged before the next state write
        self._acks.extend(await self.batch_producer.enqueue(buf.records, buf.lanes))

    async def _handle_eos(self, batch: Batch) -> None:
        """exactly_once: what the records of input partition p produce goes into p's transaction."""
        assert self.txn is not None and self.batch_producer is not None
        await self._retire_gone_eos()
        by_partition: dict[int, list[TopicPartition]] = {}
        for tp in batch:
            by_partition.setdefault(tp.partition, []).append(tp)
        for p, tps in by_partition.items():
            if p not in self.txn.producers:
                raise RuntimeError(f"no transactional producer for partition {p} (see the assignment log)")
            for tp in tps:
                self.pipeline.feed(self.kinds[tp.topic], p, batch[tp], self.encoder.emit)
                self._processed[tp.topic] += len(batch[tp])
            buf = self.encoder.take()
            await self.txn.send(p, buf.records, buf.lanes)
        self._record_counts()
        self.obs.flush(batch)  # metrics once per batch
        # shared lineage/health records are no effect of the batch: outside the transactions
        shared = self.lineage.records(self.pipeline.take_shared())
        self._acks.extend(await self.batch_producer.enqueue(shared))

    def _record_counts(self, force: bool = False) -> None:
        """``floe_events_processed_total``, ``floe_contract_checks_total``, ``floe_events_unmonitored_total``:
        an OTel add costs ~5–10 µs, so the per-record sums go to the instruments at most once a second (and
        when idle)."""
        now = time.monotonic()
        if not force and now - self._counted_at < 1.0:
            return
        self._counted_at = now
        metrics = self.metrics
        for topic, n in self._processed.items():
            metrics.events_processed.add(n, {"topic": topic})
        self._processed.clear()
        for (check_type, status), n in self.encoder.take_counts().items():
            metrics.checks.add(n, {"check_type": check_type.value, "status": status.value})
        unmonitored, ambiguous, not_counted = self.pipeline.take_counts()
        for topic, n in unmonitored.items():
            metrics.events_unmonitored.add(n, {"topic": topic})
        for topic, n in ambiguous.items():
            metrics.events_ambiguous.add(n, {"topic": topic})
        for reason, n in not_counted.items():  # the pure engine counts; reported here
            metrics.updates_not_counted.add(n, {"reason": reason})

    def take_tail(self) -> Awaitable[None] | None:
        """What the commit of the batches handled so far waits for: their outputs' acknowledgements, then
        the changelog records of the states they changed and the checkpoints they moved (captured now:
        states and checkpoints are immutable, later batches replace them; serialized in the tail)."""
        acks, self._acks = self._acks, []
        changes = self.pipeline.take_changes()
        if not acks and not changes:
            return None
        return self._write_state(acks, changes.states, changes.retired, changes.checkpoints)

    async def _write_state(
        self,
        acks: list[asyncio.Future[Any]],
        states: list[AssetState],
        retired: list[str],
        checkpoints: list[PartitionCheckpoint],
    ) -> None:
        if acks:
            await asyncio.gather(*acks)  # a state never claims an effect that is not durable
        records = await self._state_records(states, retired, checkpoints)
        assert self.state_batches is not None  # at_least_once only
        await self.state_batches.send_all(records)  # checkpoints after the states of their partition

    async def _state_records(
        self, states: list[AssetState], retired: list[str], checkpoints: list[PartitionCheckpoint]
    ) -> list[OutRecord]:
        n = self.partitions
        records: list[OutRecord] = []
        for i, st in enumerate(states):
            if i and i % STATE_CHUNK == 0:
                await asyncio.sleep(0)  # large states serialize in slices: the next batches are not held up
            aid = st.asset_id
            records.append(
                OutRecord(self.t_state, partition_for(aid, n), aid.encode(), st.model_dump_json().encode())
            )
        records.extend(OutRecord(self.t_state, partition_for(a, n), a.encode(), b"") for a in retired)
        records.extend(
            OutRecord(self.t_state, cp.partition, CHECKPOINT_KEY, cp.model_dump_json().encode())
            for cp in checkpoints
        )
        return records

    async def flush(self, force: bool = False) -> None:
        """at_least_once: ConsumerService.flush (the pipelined tail, then the commit). exactly_once: commit
        now, before the next batch — per owned partition, its open transaction gets the changelog records
        and checkpoint of its assets and its consumed offsets, and is committed (partitions in parallel).
        Call with :attr:`lock` held."""
        if self.txn is None:
            await super().flush()
            return
        offsets, self._uncommitted = self._uncommitted, {}
        if not (offsets or force or self.txn.open):
            return
        acks, self._acks = self._acks, []
        changes = self.pipeline.take_changes()
        by_partition: dict[int, list[OutRecord]] = {}
        for r in await self._state_records(changes.states, changes.retired, changes.checkpoints):
            by_partition.setdefault(r.partition, []).append(r)  # changelog partition = input partition
        foreign = [r for p, rs in by_partition.items() if p not in self.txn.producers for r in rs]
        part_offsets: dict[int, dict[TopicPartition, int]] = {}
        for tp, off in offsets.items():
            part_offsets.setdefault(tp.partition, {})[tp] = off
        await self.txn.commit(part_offsets, by_partition)
        if foreign:  # tombstones of assets retired while their partition is elsewhere
            assert self.batch_producer is not None
            await self.batch_producer.send_all(foreign)
        if acks:
            await asyncio.gather(*acks)  # the non-transactional lineage/health records
        self._flush_at = asyncio.get_running_loop().time() + self.settings.kafka.commit_interval_ms / 1000
