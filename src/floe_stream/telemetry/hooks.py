"""The processor's observability hooks in one object, so runtime/processor.py only calls a few methods.

* metrics: per-batch accumulation (:class:`BatchMetrics`), data-age gauge read at scrape time;
* traces: checks wrapped by :class:`InstrumentedCheck`; violations carry the verdict span's ``traceparent``
  (CloudEvents distributed-tracing extension attribute *and* a Kafka header);
* impact/context: :class:`~floe_stream.processors.context.ImpactContext` fills ``consumers``/``context``;
  lineage edges and per-asset open episodes are shared through the compacted ``lineage`` topic, which every
  processor instance reads in full (no group) and writes after each batch;
* custom metrics (FR-046) fed by inputs, check results and violations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from floe_stream.processors.context import ImpactContext, OpenIssue, identifiers, open_issues
from floe_stream.runtime.kafka import OutRecord, make_consumer, partition_counts
from floe_stream.runtime.telemetry import (
    BatchMetrics,
    InstrumentedCheck,
    custom_metrics,
    data_age_s,
    instrument_checks,
    track_freshness,
)
from floe_stream.settings import ConfigError, TelemetrySettings
from floe_stream.telemetry import tracing
from floe_stream.telemetry.custom import CustomMetrics
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.enums import CheckType
from floe_stream.topics.lineage import AssetHealth, LineageEdge, OpenEpisodeSummary
from floe_stream.topics.materialization import OpenLineageRunEvent
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.violation import ResolvedData, ViolationData, encode_violation

if TYPE_CHECKING:
    from floe_stream.contracts.models import MonitoredAsset
    from floe_stream.contracts.registry import ContractRegistry
    from floe_stream.processors.checks.base import Check
    from floe_stream.processors.engine import Engine
    from floe_stream.processors.model import AssetState, AssetUpdate
    from floe_stream.runtime.service import ConsumerService
    from floe_stream.topics.check_result import CheckResult

log = logging.getLogger(__name__)


class ProcessorObservability:
    def __init__(
        self,
        registry: ContractRegistry,
        engine: Engine | None = None,
        telemetry: TelemetrySettings | None = None,
    ) -> None:
        self.registry = registry
        self.states: Mapping[str, AssetState] = {}
        """The per-asset states of the engine this processor runs (see :meth:`watch`)."""
        if engine is not None:
            self.watch(engine)
        self.acc = BatchMetrics(self._contract_of)
        self.impact = ImpactContext()
        # the configured custom metrics (instruments are per process: building them again returns the same ones)
        self.custom = CustomMetrics(telemetry.custom_metrics) if telemetry is not None else custom_metrics()
        self.result_types: frozenset[CheckType] = (
            frozenset(CheckType) if self.custom else frozenset({CheckType.QUALITY, CheckType.AVAILABILITY})
        )
        """Check types whose results :meth:`result` wants to see (the gauges; custom metrics see all)."""
        track_freshness(self)
        # shared lineage / health (enabled by start_shared_view when the topic exists)
        self.lineage_topic: str | None = None
        self.lineage_partitions = 0
        self.pending: list[LineageEdge | AssetHealth] = []
        self.touched: set[str] = set()
        self._published_health: dict[str, list[OpenEpisodeSummary]] = {}
        self.remote_health: dict[str, list[OpenIssue]] = {}
        self._reader: asyncio.Task[None] | None = None

    def watch(self, engine: Engine) -> None:
        """Read ``engine``'s states (data-age gauge, published health, upstream context); never change them."""
        self.states = engine.states

    def instrument(self, checks: Sequence[Check]) -> tuple[Check, ...]:
        """The checks wrapped to be measured (and traced) into this batch accumulator: the composition root
        builds the engine with these (runtime/processor.py); nothing is patched into an engine afterwards."""
        return instrument_checks(checks, self.acc)

    def _contract_of(self, asset_id: str) -> str:
        a = self.registry.get(asset_id)
        return a.contract_name if a is not None else ""

    # --- scrape-time gauge -----------------------------------------------------------------------------
    def freshness_observations(self) -> list[tuple[dict[str, str], float]]:
        now = datetime.now(UTC)
        out = []
        for aid, st in list(self.states.items()):
            age = data_age_s(st.last_update_at, now)
            if age is not None:
                out.append(({"contract": self._contract_of(aid), "asset": aid}, age))
        return out

    # --- inputs -------------------------------------------------------------------------------------------
    def input_event(self, ev: Any) -> None:
        if isinstance(ev, OpenLineageRunEvent):
            for job, ds, direction in self.impact.observe_openlineage(ev):
                self.pending.append(LineageEdge(job=job, dataset=ds, direction=direction))  # type: ignore[arg-type]
        if self.custom:
            self.custom.observe("materialization", ev)

    def note_update(self, asset: MonitoredAsset, update: AssetUpdate) -> None:
        self.impact.note_update(
            asset.asset_id, update.updated_at, update.event_id, update.row_count, update.run_id, update.job
        )

    # --- outputs ------------------------------------------------------------------------------------------
    def result(self, r: CheckResult) -> None:
        self.acc.result(r)
        if self.custom:
            self.custom.observe("check_result", r)

    def _upstream_health(self, dataset_id: str) -> tuple[str, Sequence[OpenIssue]] | None:
        for ident in identifiers(dataset_id):
            asset = self.registry.resolve(ident)
            if asset is None:
                continue
            st = self.states.get(asset.asset_id)
            if st is not None:  # owned here: the live state
                return asset.asset_id, open_issues(st.open)
            return asset.asset_id, self.remote_health.get(asset.asset_id, [])  # owned elsewhere: as published
        return None

    def enrich(self, v: ViolationData | ResolvedData) -> ViolationData | ResolvedData:
        self.touched.add(v.asset)  # its open episodes changed: publish its health after the batch
        if not isinstance(v, ViolationData):
            return v
        asset = self.registry.get(v.asset)
        idents = [v.asset]
        declared: Sequence[str] = ()
        if asset is not None:
            idents.extend(asset.aliases)
            declared = asset.consumers
        v = self.impact.enrich_violation(
            v,
            declared_consumers=declared,
            asset_identifiers=idents,
            upstream_health=self._upstream_health,
            now=v.detected_at,
        )
        if self.custom:
            self.custom.observe("violation", v)
        return v

    def encode(self, v: ViolationData | ResolvedData) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        """encode_violation with the verdict's traceparent (CloudEvents extension + Kafka header)."""
        tp = tracing.verdict_traceparent(v.violation_type.value)
        key, value, headers = encode_violation(v, traceparent=tp)
        if tp:
            headers = [*headers, (tracing.TRACEPARENT, tp.encode())]
        return key, value, headers

    def flush(self, batch: Any) -> list[OutRecord]:
        """End of a batch: record metrics; return the lineage/health records to produce."""
        tracing.end_record()
        self.acc.flush(batch)
        for aid in self.touched:
            st = self.states.get(aid)
            issues = open_issues(st.open) if st is not None else []
            summary = [
                OpenEpisodeSummary(check_type=i.check_type, severity=i.severity, since=i.since)
                for i in issues
            ]
            if self._published_health.get(aid) == summary:
                continue  # unchanged: nothing to tell the other instances
            self._published_health[aid] = summary
            self.pending.append(AssetHealth(asset=aid, open=summary))
        self.touched.clear()
        pending, self.pending = self.pending, []
        if self.lineage_topic is None or not pending:
            return []
        n = self.lineage_partitions
        return [
            OutRecord(
                self.lineage_topic, partition_for(r.key(), n), r.key().encode(), r.model_dump_json().encode()
            )
            for r in pending
        ]

    # --- the shared view ------------------------------------------------------------------------------------
    async def start_shared_view(self, svc: ConsumerService) -> None:
        """Read the lineage topic in full in the background (until the service stops) and publish to it.
        Without the topic (an older deployment: run `floe topics create`), context stays instance-local."""
        topic = topic_name(svc.settings.kafka.topic_prefix, TopicKey.LINEAGE)
        try:
            self.lineage_partitions = (await partition_counts(svc.settings.kafka, [topic]))[topic]
        except ConfigError as exc:
            log.warning("impact context limited to this instance: %s", exc)
            return
        self.lineage_topic = topic
        self._reader = asyncio.create_task(self._read(svc, topic), name="lineage-view")

    async def _read(self, svc: ConsumerService, topic: str) -> None:
        """Tail the whole lineage topic until the service stops; a broker failure restarts the reader
        (from the beginning: applying a record twice is harmless)."""
        while not svc._stopping.is_set():
            # background context, not latency-critical: a long poll keeps an idle reader cheap
            reader = make_consumer(svc.settings.kafka, group_id=None, fetch_max_wait_ms=500)
            try:
                await reader.start()
                tps = [TopicPartition(topic, p) for p in range(self.lineage_partitions)]
                reader.assign(tps)
                await reader.seek_to_beginning(*tps)
                while not svc._stopping.is_set():
                    batch = await reader.getmany(timeout_ms=500, max_records=5000)
                    for recs in batch.values():
                        for rec in recs:
                            self._apply(rec.key, rec.value)
            except (KafkaError, OSError) as exc:
                log.warning("lineage view: reader failed, restarting in 1 s: %s", exc)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await reader.stop()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key or not value:
            return
        try:
            if key.startswith(b"edge:"):
                e = LineageEdge.model_validate_json(value)
                self.impact.lineage.add_edge(e.job, e.dataset, e.direction)
            elif key.startswith(b"health:"):
                h = AssetHealth.model_validate_json(value)
                self.remote_health[h.asset] = [OpenIssue(o.check_type, o.severity, o.since) for o in h.open]
        except ValidationError as exc:
            log.debug("lineage view: skipping bad record %r: %s", key, exc)


__all__ = ["InstrumentedCheck", "ProcessorObservability"]
