"""The processor deployable: a Kafka shell around the pipeline (processors/pipeline.py).

    inputs (materializations, catalog-commits, ticks, probe-results; co-partitioned)
      → pipeline.feed (route → checks → episodes → enrich; pure) → outputs per input record
      → OutputEncoder (runtime/deployables/outputs.py: check-results, violations, dlq, re-routed inputs)
      → commit strategy (runtime/deployables/commit.py: at_least_once or exactly_once, chosen by runtime/deployables/app.py)
      → at each commit: the pipeline's state changes (runtime/deployables/changelog.py) and the offsets

The shell only moves records: it asks the strategy where each input partition's outputs go, feeds the
pipeline, and at each commit (``kafka.commit_interval_ms``, idle, revocation, shutdown; ConsumerService.flush)
hands the strategy the pipeline's state changes with the offsets handled. On assignment the state of the new
partitions is read back from the changelog and the inputs are sought past the checkpoint (or to the committed
offset, whichever is later): a crash between the state write and the commit replays nothing, a crash before
it replays the records since the last checkpoint with the state they were evaluated against.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime

from aiokafka.structs import TopicPartition

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.processors.pipeline import Pipeline
from floe_stream.runtime.deployables.changelog import CHECKPOINT_KEY, Changelog
from floe_stream.runtime.deployables.checks_runtime import ChecksRuntime
from floe_stream.runtime.deployables.commit import CommitStrategy
from floe_stream.runtime.deployables.lineage_view import LineageView
from floe_stream.runtime.deployables.outputs import OutputEncoder
from floe_stream.runtime.framework.kafka import partition_counts
from floe_stream.runtime.framework.memory import MemoryTrimmer
from floe_stream.runtime.framework.service import FETCH_TIMEOUT_MS, Batch, ConsumerService
from floe_stream.settings import ConfigError, KafkaSettings, Settings
from floe_stream.telemetry.hooks import ProcessorObservability
from floe_stream.telemetry.metrics import Instruments, untrack
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_KEY", "INPUTS", "ProcessorService", "processor_group"]

INPUTS = (TopicKey.MATERIALIZATIONS, TopicKey.CATALOG_COMMITS, TopicKey.TICKS, TopicKey.PROBE_RESULTS)


def processor_group(k: KafkaSettings) -> str:
    return f"{k.group_prefix}-processor"


class ProcessorService(ConsumerService):
    name = "processor"
    record_spans = False  # traced per record and per check by telemetry/hooks.py

    def __init__(
        self,
        settings: Settings,
        registry: ContractRegistry,
        *,
        pipeline: Pipeline,
        encoder: OutputEncoder,
        strategy: CommitStrategy,
        changelog: Changelog,
        checks: ChecksRuntime,
        lineage: LineageView,
        obs: ProcessorObservability,
        metrics: Instruments,
    ) -> None:
        """Composed by runtime/deployables/app.py (:func:`~floe_stream.runtime.deployables.app.processor_service`)."""
        k = settings.kafka
        self.kinds = {topic_name(k.topic_prefix, key): key for key in INPUTS}
        super().__init__(settings, list(self.kinds), processor_group(k))
        self.registry = registry  # the live registry: contracts published or retired while running
        self.pipeline = pipeline
        self.encoder = encoder
        self.strategy = strategy
        self.changelog = changelog
        self.checks = checks  # contract lifecycle + availability pings
        self.lineage = lineage  # impact context shared with the other instances
        self.obs = obs
        self.metrics = metrics
        self.trimmer = MemoryTrimmer()
        self.on_violation = encoder.on_violation  # `floe dev` shows each violation written
        # per-record sums, handed to the instruments at most once a second and when idle
        self._processed: Counter[str] = Counter()
        self._counted_at = 0.0

    async def setup(self) -> None:
        k = self.settings.kafka
        inputs = [*self.kinds, self.changelog.topic]
        outputs = [self.encoder.t_results, self.encoder.t_viol, self.encoder.t_dlq]
        counts = await partition_counts(k, [*inputs, *outputs])
        if len({counts[t] for t in inputs}) != 1:
            raise ConfigError(
                "input topics must be co-partitioned (same partition count): "
                + ", ".join(f"{t}={counts[t]}" for t in inputs)
            )
        n = counts[self.changelog.topic]
        self.pipeline.partitions = self.changelog.partitions = n
        self.encoder.partitions = {t: counts[t] for t in outputs}
        assert self.batch_producer is not None
        await self.strategy.start(self.batch_producer)
        await self.lineage.start(self)
        await self.checks.start(self.batch_producer, n)

    async def teardown(self) -> None:
        untrack(self.obs)
        await self.checks.stop()
        await self.strategy.close()

    # --- the batch -------------------------------------------------------------------------------
    async def handle(self, batch: Batch) -> None:
        # the first updates of each batch are measured (duration histogram, spans), the rest skip the wrapper
        self.pipeline.measure(self.obs.timed_updates())
        self.trimmer.worked()
        # a record stamped beyond this clock + limits.max_future_s is dead-lettered: its time is "now" for the core
        self.pipeline.not_after_ms = int((time.time() + self.settings.limits.max_future_s) * 1000)
        self._retire_gone()
        pipeline, encoder, shared = self.pipeline, self.encoder, self.lineage.records
        for tp, recs in batch.items():
            p = tp.partition
            encoder.buf = self.strategy.buffer(p)
            for _ in pipeline.feed_steps(self.kinds[tp.topic], p, recs, encoder.emit):
                # between two slices of a tick's sweep (processors/engine.py TICK_SLICE): heartbeats, fetches
                # and health answers go on while a partition of many assets is swept; the lock stays held
                await asyncio.sleep(0)
            encoder.buf.records.extend(shared(pipeline.take_shared()))  # lineage edges, changed health
            self._processed[tp.topic] += len(recs)
        self._record_counts()
        self.obs.flush(batch)  # metrics once per batch
        await self.strategy.send()

    async def flush(self) -> None:
        """The commit (ConsumerService.flush), after what the strategy gathered is handed to Kafka: a commit
        covers every output of the batches it commits."""
        await self.strategy.send_gathered()
        await super().flush()

    def fetch_timeout_ms(self) -> int:
        """Not past the linger of the gathered check results (kafka.results_linger_ms): when the input pauses,
        they go out then, not at the idle commit."""
        due = self.strategy.gathered_due_ms()
        return FETCH_TIMEOUT_MS if due is None else min(due, FETCH_TIMEOUT_MS)

    async def due(self) -> None:
        await self.strategy.send_gathered()

    def finish(self, offsets: dict[TopicPartition, int]) -> Awaitable[None] | None:
        """The commit (ConsumerService.flush): the strategy's, with the state changes since the last one
        (captured now: states and checkpoints are immutable, later records replace them)."""
        return self.strategy.finish(offsets, self.pipeline.take_changes(), self.commit_offsets)

    async def idle(self) -> None:
        """Between batches: record pending metrics; retire the state of assets whose contract was retired."""
        self.obs.acc.flush(None, force=True)
        self._record_counts(force=True)
        self.trimmer.when_idle()  # a drained backlog's freed pages back to the system (bench/state.py)
        if not self.checks.has_gone:
            return
        async with self.lock:
            self._retire_gone()
            await self.strategy.send()
            await self.drain()  # committed now: the resolutions, then the tombstones

    def _retire_gone(self) -> None:
        """Assets whose contract was retired (or that an update dropped): resolve open episodes, drop state."""
        if not self.checks.has_gone:
            return
        now = datetime.now(UTC)
        for asset in self.checks.take_gone():
            self._retire(asset, now)

    def _retire(self, asset: MonitoredAsset, now: datetime) -> None:
        self.encoder.buf = self.strategy.retired_buffer(
            partition_for(asset.asset_id, self.pipeline.partitions)
        )
        if self.pipeline.retire(asset, now, self.encoder.emit):
            self.checks.forget([asset.asset_id])
            self.encoder.buf.records.extend(self.lineage.records(self.pipeline.take_shared()))

    # --- partitions ------------------------------------------------------------------------------
    async def on_assigned(self, tps: list[TopicPartition]) -> None:
        parts = sorted({tp.partition for tp in tps})
        await self.strategy.acquire(parts)  # exactly_once: fences the previous owner before its state is read
        new = [p for p in parts if not self.pipeline.owns(p)]
        t0, read = time.perf_counter(), 0
        if new:
            states, checkpoints, read = await self.changelog.read(new)
            self.pipeline.restore(new, states, checkpoints)
            gc.collect()
            gc.freeze()  # the restored states are long-lived: keep them out of every later GC pass
            self.trimmer.now()  # the changelog records read are freed: their pages back (bench/state.py, restart)
            self.checks.find_orphans(self.pipeline.asset_ids())  # contracts retired while unowned
        for tp in tps:
            # past the checkpoint, or the committed offset if later (exactly_once: as read after the fencing
            # above; aiokafka may have fetched its own before the previous owner's last transaction settled)
            done = self.pipeline.done(tp.partition, tp.topic)
            committed = await self.consumer.committed(tp)
            start = max(
                (o for o in (None if done is None else done + 1, committed) if o is not None), default=None
            )
            if start is not None:
                self.seek(tp, start)  # what aiokafka fetched before is dropped, not handled twice
        log.info(
            "assigned partitions %s (%d assets in state; %d changelog records read in %.2f s)",
            parts,
            len(self.pipeline.asset_ids()),
            read,
            time.perf_counter() - t0,
        )

    async def on_revoked(self, tps: list[TopicPartition]) -> None:
        still = {tp.partition for tp in self.assigned}
        gone = sorted({tp.partition for tp in tps} - still)
        await self.strategy.release(gone)  # everything handled from them was committed by the drain
        if gone:
            dropped = self.pipeline.drop(gone)
            log.info("revoked partitions %s (dropped %d assets)", gone, dropped)

    # --- metrics ---------------------------------------------------------------------------------
    def _record_counts(self, force: bool = False) -> None:
        """``floe_events_processed_total``, ``floe_contract_checks_total``, ``floe_events_unmonitored_total``,
        ``floe_updates_not_counted_total``: an OTel add costs ~5–10 µs, so the per-record sums go to the
        instruments at most once a second (and when idle)."""
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
