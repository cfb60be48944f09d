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
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import Ambiguous, ContractRegistry
from floe_stream.processors.engine import Engine
from floe_stream.processors.enrich import ViolationEnricher
from floe_stream.processors.model import AssetState, AssetUpdate, Outputs, PartitionCheckpoint
from floe_stream.processors.registry import CHECKS
from floe_stream.processors.router import (
    REROUTED,
    is_rerouted,
    route_probe,
    route_update,
    tick_is_new,
    unmonitored,
)
from floe_stream.runtime.checks_runtime import ChecksRuntime
from floe_stream.runtime.kafka import (
    NO_HEADERS,
    BatchProducer,
    Lanes,
    OutRecord,
    dead_letter,
    make_consumer,
    make_producer,
    partition_counts,
    start_producer,
)
from floe_stream.runtime.lineage_view import LineageView
from floe_stream.runtime.service import Batch, ConsumerService
from floe_stream.runtime.transactions import PartitionTransactions
from floe_stream.settings import ConfigError, Settings
from floe_stream.telemetry import tracing
from floe_stream.telemetry.hooks import ProcessorObservability
from floe_stream.telemetry.metrics import Instruments, instruments, untrack
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.decode import DecodeError, decode_tick
from floe_stream.topics.enums import CheckStatus, CheckType
from floe_stream.topics.materialization import OpenLineageRunEvent
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.violation import ResolvedData, ViolationData

log = logging.getLogger(__name__)

CHECKPOINT_KEY = b"__checkpoint__"
STATE_CHUNK = 32  # states serialized between two yields to the event loop


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


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
        # metrics, spans, impact context; the engine is composed here with the checks measured by it
        self.obs = ProcessorObservability(registry, telemetry=settings.telemetry)
        self.engine = engine or Engine(
            self.obs.instrument(CHECKS),
            untimed=CHECKS,
            clock_skew_s=settings.clock_skew_s,
            policy=settings.checks.policy(),
        )
        self.obs.watch(self.engine)  # the data-age gauge reads the engine's states
        # the pure enrichment step (consumers, impact, root cause), shared across instances by the lineage view
        self.context = ViolationEnricher(registry, self.engine.states)
        self.lineage = LineageView(self.context)
        self.checks_rt = ChecksRuntime(
            settings, registry, self.engine
        )  # contract lifecycle + availability pings
        self.checkpoints: dict[int, PartitionCheckpoint] = {}
        # at_least_once: the changelog has its own producer (its own in-flight request), it never delays
        # a violation. exactly_once: one transactional producer per owned partition instead.
        self.txn = PartitionTransactions(k, self.group_id) if k.exactly_once else None
        self.state_producer = make_producer(k) if self.txn is None else None
        self.state_batches = BatchProducer(self.state_producer) if self.state_producer else None
        self._acks: list[asyncio.Future[Any]] = []  # outputs handed to the producer since the last commit
        self._touched: set[int] = set()  # partitions whose checkpoint moved since the last commit
        self._ts_ms, self._ts_dt = -1, datetime.now(UTC)  # the last record timestamp, converted
        self._lanes: Lanes = {}  # check results of the batch, grouped by (topic, partition) as they are made
        # counters summed per record, handed to the instruments at most once a second and when idle
        self._check_counts: Counter[tuple[CheckType, CheckStatus]] = Counter()
        self._unmonitored: Counter[str] = Counter()  # by topic: floe_events_unmonitored_total
        self._ambiguous: Counter[str] = Counter()  # by topic: floe_events_ambiguous_total
        self._refused: list[Ambiguous] = []  # the router's refusals of the current record
        self._ambiguous_logged: set[str] = set()  # each ambiguous identifier is logged once per process
        self._processed: Counter[str] = Counter()
        self._counted_at = 0.0
        self.partitions = 0
        self.out_partitions: dict[str, int] = {}
        self.on_violation: list[Callable[[ViolationData | ResolvedData], None]] = []  # `floe dev` display

    async def setup(self) -> None:
        inputs = (self.t_mat, self.t_commit, self.t_tick, self.t_probe, self.t_state)
        all_counts = await partition_counts(
            self.settings.kafka, [*inputs, self.t_results, self.t_viol, self.t_dlq]
        )
        counts = {t: all_counts[t] for t in inputs}
        self.out_partitions = {t: all_counts[t] for t in (self.t_results, self.t_viol, self.t_dlq)}
        if len(set(counts.values())) != 1:
            raise ConfigError(
                "input topics must be co-partitioned (same partition count): "
                + ", ".join(f"{t}={n}" for t, n in counts.items())
            )
        self.partitions = next(iter(counts.values()))
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
            out: list[OutRecord] = []
            self._retire_gone(out)
            assert self.batch_producer is not None
            await self.batch_producer.send_all(out, self._take_lanes())
            await self._write_state([], [], self.engine.take_retired(), [])  # the tombstones

    def _retire_gone(self, out: list[OutRecord]) -> None:
        """Assets whose contract was retired (or that an update dropped): resolve open episodes, drop state."""
        now = datetime.now(UTC)
        for asset in self.checks_rt.take_gone():
            if self.registry.get(asset.asset_id) is None:
                self._emit(self.engine.retire(asset, now), out)
                self.checks_rt.forget([asset.asset_id])

    async def _retire_gone_eos(self) -> None:
        """exactly_once: each retired asset's outputs in the transaction of its partition."""
        now = datetime.now(UTC)
        assert self.txn is not None and self.batch_producer is not None
        for asset in self.checks_rt.take_gone():
            if self.registry.get(asset.asset_id) is None:
                out: list[OutRecord] = []
                self._emit(self.engine.retire(asset, now), out)
                self.checks_rt.forget([asset.asset_id])
                p = partition_for(asset.asset_id, self.partitions)
                if p in self.txn.producers:
                    await self.txn.send(p, out, self._take_lanes())
                else:  # not ours (a contract retired while its partition is elsewhere): plain records
                    await self.batch_producer.send_all(out, self._take_lanes())

    # --- state rebuild ---------------------------------------------------------------------------
    async def on_assigned(self, tps: list[TopicPartition]) -> None:
        new = sorted({tp.partition for tp in tps} - set(self.checkpoints))
        if self.txn is not None:
            # fence the previous owner and settle its open transaction BEFORE reading its state/offsets
            await self.txn.acquire(sorted({tp.partition for tp in tps}))
        t0, read = time.perf_counter(), 0
        if new:
            read = await self._rebuild(new)
            gc.collect()
            gc.freeze()  # the rebuilt states are long-lived: keep them out of every later GC pass
            self.checks_rt.find_orphans(list(self.engine.states))  # contracts retired while unowned
        for tp in tps:
            cp = self.checkpoints.get(tp.partition)
            done = cp.offsets.get(tp.topic) if cp else None
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
            len(self.engine.states),
            read,
            time.perf_counter() - t0,
        )

    async def on_revoked(self, tps: list[TopicPartition]) -> None:
        still = {tp.partition for tp in self.assigned}
        gone = {tp.partition for tp in tps} - still
        for p in gone:
            self.checkpoints.pop(p, None)
        if self.txn is not None:
            await self.txn.release(sorted(gone))  # their transactions were committed by the drain
        if gone:
            drop = [a for a, _ in self.engine.states.items() if partition_for(a, self.partitions) in gone]
            self.engine.drop(drop)
            log.info("revoked partitions %s (dropped %d assets)", sorted(gone), len(drop))

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
            for p in partitions:
                self.checkpoints[p] = PartitionCheckpoint(partition=p)
            remaining = {tp for tp in tps if end[tp] > 0}
            read = 0
            while remaining:
                batch = await reader.getmany(timeout_ms=200, max_records=5000)
                for tp, recs in batch.items():
                    read += len(recs)
                    for rec in recs:
                        if rec.key == CHECKPOINT_KEY:
                            if rec.value:
                                self.checkpoints[tp.partition] = PartitionCheckpoint.model_validate_json(
                                    rec.value
                                )
                        elif rec.key is not None:
                            if rec.value:
                                states[rec.key.decode()] = AssetState.model_validate_json(rec.value)
                            else:
                                states.pop(rec.key.decode(), None)
                for tp in list(remaining):
                    if await reader.position(tp) >= end[tp]:
                        remaining.discard(tp)
            self.engine.load(states.values())
            return read
        finally:
            await reader.stop()

    # --- the batch -------------------------------------------------------------------------------
    async def handle(self, batch: Batch) -> None:
        # the first updates of each batch are measured (duration histogram, spans), the rest skip the wrapper
        self.engine.timed_updates = self.obs.timed_updates()
        if self.txn is not None:
            await self._handle_eos(batch)
            return
        out: list[OutRecord] = []
        self._retire_gone(out)
        for tp, recs in batch.items():
            self._handle_records(tp, recs, out)
        self._record_counts()
        self.obs.flush(batch)  # metrics once per batch
        out.extend(self.lineage.records(self.context.take_shared()))  # lineage edges, changed health
        assert self.batch_producer is not None
        # outputs, dead letters, re-routes, lineage: sent now, acknowledged before the next state write
        self._acks.extend(await self.batch_producer.enqueue(out, self._take_lanes()))

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
            out: list[OutRecord] = []
            for tp in tps:
                self._handle_records(tp, batch[tp], out)
            await self.txn.send(p, out, self._take_lanes())
        self._record_counts()
        self.obs.flush(batch)  # metrics once per batch
        # shared lineage/health records are no effect of the batch: outside the transactions
        shared = self.lineage.records(self.context.take_shared())
        self._acks.extend(await self.batch_producer.enqueue(shared))

    def _handle_records(
        self, tp: TopicPartition, recs: list[ConsumerRecord[bytes, bytes]], out: list[OutRecord]
    ) -> None:
        p = tp.partition
        metrics = self.metrics
        cp = self.checkpoints.setdefault(p, PartitionCheckpoint(partition=p))
        offsets = dict(cp.offsets)
        last_tick = cp.last_tick
        traced = tracing.enabled()
        max_bytes = self.settings.kafka.max_record_bytes
        # what the topic is, once per partition's records, not per record (bench/versus.py, throughput)
        is_tick, is_probe = tp.topic == self.t_tick, tp.topic == self.t_probe
        kind = TopicKey.MATERIALIZATIONS if tp.topic == self.t_mat else TopicKey.CATALOG_COMMITS
        for rec in recs:
            if traced:
                tracing.start_record(tp.topic, rec.headers)
            if rec.value is not None and len(rec.value) > max_bytes:
                self._too_large(rec, max_bytes, out)  # never decoded, forwarded or copied whole
                continue
            try:
                if is_tick:
                    tick = decode_tick(rec.value)
                    if not tick_is_new(last_tick, tick.tick_time):
                        continue  # a duplicate tick (second ticker, replay): no effect twice
                    last_tick = tick.tick_time
                    owned = self.registry.assets_in_partition(p, self.partitions)
                    self._emit(self.engine.apply_tick(owned, tick.tick_time), out)
                    self.checks_rt.schedule_pings(owned, tick.tick_time)  # background, never awaited here
                elif is_probe:
                    probe, asset = route_probe(rec.value, self.registry.get, p, self.partitions)
                    if asset is not None:
                        self._emit(self.engine.apply_probe(asset, probe, _ts(rec.timestamp)), out)
                else:
                    self._handle_update(rec, p, kind, out)
            except DecodeError as exc:
                out.append(
                    dead_letter(self.t_dlq, rec, exc.reason, self.out_partitions[self.t_dlq], max_bytes)
                )
                metrics.dead_lettered.add(1, {"topic": tp.topic, "reason": exc.reason.split(":", 1)[0]})
                log.warning("dead-lettered %s[%d]@%d: %s", tp.topic, p, rec.offset, exc.reason)
            except Exception as exc:  # a bug on one record must not stop the stream
                reason = f"internal error: {type(exc).__name__}: {exc}"
                out.append(dead_letter(self.t_dlq, rec, reason, self.out_partitions[self.t_dlq], max_bytes))
                metrics.dead_lettered.add(1, {"topic": tp.topic, "reason": "internal error"})
                log.exception("dead-lettered %s[%d]@%d after an internal error", tp.topic, p, rec.offset)
        offsets[tp.topic] = recs[-1].offset
        self.checkpoints[p] = cp.evolve(offsets=offsets, last_tick=last_tick)
        self._touched.add(p)
        self._processed[tp.topic] += len(recs)

    def _too_large(self, rec: ConsumerRecord[bytes, bytes], max_bytes: int, out: list[OutRecord]) -> None:
        size = len(rec.value or b"")
        reason = f"record too large: {size} bytes > kafka.max_record_bytes={max_bytes}"
        out.append(dead_letter(self.t_dlq, rec, reason, self.out_partitions[self.t_dlq], max_bytes))
        self.metrics.dead_lettered.add(1, {"topic": rec.topic, "reason": "record too large"})
        log.warning("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)

    def _record_counts(self, force: bool = False) -> None:
        """``floe_events_processed_total`` and ``floe_contract_checks_total``: an OTel add costs ~5–10 µs, so
        the per-record sums go to the instruments at most once a second (and when idle)."""
        now = time.monotonic()
        if not force and now - self._counted_at < 1.0:
            return
        self._counted_at = now
        metrics = self.metrics
        for topic, n in self._processed.items():
            metrics.events_processed.add(n, {"topic": topic})
        for (check_type, status), n in self._check_counts.items():
            metrics.checks.add(n, {"check_type": check_type.value, "status": status.value})
        for topic, n in self._unmonitored.items():
            metrics.events_unmonitored.add(n, {"topic": topic})
        for topic, n in self._ambiguous.items():
            metrics.events_ambiguous.add(n, {"topic": topic})
        for reason, n in self.engine.counters.items():  # the pure engine counts; reported here
            metrics.updates_not_counted.add(n, {"reason": reason})
        self.engine.counters.clear()
        self._processed.clear()
        self._check_counts.clear()
        self._unmonitored.clear()
        self._ambiguous.clear()

    def _take_lanes(self) -> Lanes:
        lanes, self._lanes = self._lanes, {}
        return lanes

    def take_tail(self) -> Awaitable[None] | None:
        """What the commit of the batches handled so far waits for: their outputs' acknowledgements, then
        the changelog records of the states they changed and the checkpoints they moved (captured now:
        states and checkpoints are immutable, later batches replace them; serialized in the tail)."""
        acks, self._acks = self._acks, []
        states = self.engine.take_dirty()
        retired = self.engine.take_retired()
        checkpoints = [self.checkpoints[p] for p in sorted(self._touched) if p in self.checkpoints]
        self._touched.clear()
        if not acks and not states and not retired and not checkpoints:
            return None
        return self._write_state(acks, states, retired, checkpoints)

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
        states = self.engine.take_dirty()
        retired = self.engine.take_retired()
        checkpoints = [self.checkpoints[p] for p in sorted(self._touched) if p in self.checkpoints]
        self._touched.clear()
        by_partition: dict[int, list[OutRecord]] = {}
        for r in await self._state_records(states, retired, checkpoints):
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

    def _handle_update(
        self, rec: ConsumerRecord[bytes, bytes], p: int, kind: TopicKey, out: list[OutRecord]
    ) -> None:
        if rec.timestamp != self._ts_ms:  # records of a batch often share their millisecond
            self._ts_ms, self._ts_dt = rec.timestamp, _ts(rec.timestamp)
        refused = self._refused
        ev, routed = route_update(kind, rec.value, rec.topic, p, rec.offset, self.registry, refused)
        n_refused = len(refused)
        if n_refused:  # rare: identifiers naming several assets are refused, counted and logged
            self._note_refused(rec.topic, refused)
        # the exact type, once: isinstance on a pydantic model class goes through ABCMeta.__instancecheck__,
        # ~0.35 µs per negative answer under the profiler, twice per event (bench/versus.py, throughput)
        lineage = ev.__class__ is OpenLineageRunEvent
        if lineage:
            self.context.observe_openlineage(ev)  # type: ignore[arg-type]  # lineage edges
        if self.obs.custom and kind == TopicKey.MATERIALIZATIONS:
            self.obs.input_event(ev)  # custom metrics fed by materializations
        if not routed or lineage:  # assets it names that no contract covers
            missing = unmonitored(ev, len(routed) + n_refused)
            if missing:
                self._unmonitored[rec.topic] += missing  # floe_events_unmonitored_total
        forward: dict[int, str] = {}
        n = self.partitions
        for asset, update in routed:
            q = partition_for(asset.asset_id, n)
            if q == p:
                self._apply(asset, update, out)
            elif not is_rerouted(rec.headers):
                forward.setdefault(q, asset.asset_id)
        if forward:
            self._forward(rec, forward, out)

    def _note_refused(self, topic: str, refused: list[Ambiguous]) -> None:
        self._ambiguous[topic] += len(refused)
        for amb in refused:
            if amb.identifier not in self._ambiguous_logged and len(self._ambiguous_logged) < 10_000:
                self._ambiguous_logged.add(amb.identifier)
                log.warning(
                    "refused an input on %s: %s; give the dataset's exact identity to one contract "
                    "(servers, or a floe alias) — see `floe contracts coverage --seen`",
                    topic,
                    amb.describe(),
                )
        refused.clear()

    def _apply(self, asset: MonitoredAsset, update: AssetUpdate, out: list[OutRecord]) -> None:
        self.context.note_update(asset, update)
        o = Outputs()
        self.engine.update_into(asset, update, self._ts_dt, o)
        self._emit(o, out)

    @staticmethod
    def _forward(rec: ConsumerRecord[bytes, bytes], to: dict[int, str], out: list[OutRecord]) -> None:
        """An event that arrived on another asset's partition goes, once, to its owner's partition."""
        for q, aid in to.items():
            headers = [*(rec.headers or ()), (REROUTED, aid.encode())]
            out.append(OutRecord(rec.topic, q, aid.encode(), rec.value or b"", headers))

    def _emit(self, outputs: Outputs, out: list[OutRecord]) -> None:
        # Hand-inlined per-result loop (locals for attributes, lanes grouped here instead of a helper per
        # result): once per check result, measured by bench/processor_cpu.py and bench/processor.py.
        n_res = self.out_partitions[self.t_results]
        counts = self._check_counts
        t_results, lanes = self.t_results, self._lanes
        note, noted = self.obs.result, self.obs.result_types
        for r in outputs.check_results:
            lane = (t_results, partition_for(r.asset, n_res))
            rec = (r.asset.encode(), r.to_json(), NO_HEADERS)
            if lane in lanes:
                lanes[lane].append(rec)
            else:
                lanes[lane] = [rec]
            if r.check_type in noted:
                note(r)
            counts[(r.check_type, r.status)] += 1
        if not outputs.violations:
            return
        metrics = self.metrics
        n_v = self.out_partitions[self.t_viol]
        for v in outputs.violations:
            v = self.context.enrich(v)  # consumers + impact/root-cause context
            self.obs.violation(v)
            key, value, headers = self.obs.encode(v)  # + traceparent of the verdict span
            out.append(OutRecord(self.t_viol, partition_for(v.asset, n_v), key, value, headers))
            if isinstance(v, ViolationData):
                metrics.violations.add(
                    1,
                    {
                        "contract": v.contract_name,
                        "asset": v.asset,
                        "type": v.violation_type.value,
                        "severity": v.severity.value,
                    },
                )
            for cb in self.on_violation:
                cb(v)
