"""The processor's observability hooks in one object, so runtime/processor.py only calls a few methods.

* metrics: per-batch accumulation (:class:`BatchMetrics`), data-age gauge read at scrape time;
* traces: checks wrapped by :class:`InstrumentedCheck`; violations carry the verdict span's ``traceparent``
  (CloudEvents distributed-tracing extension attribute *and* a Kafka header);
* impact/context: :class:`~floe_stream.processors.context.ImpactContext` fills ``consumers``/``context``;
* custom metrics (FR-046) fed by inputs, check results and violations.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from floe_stream.processors.context import ImpactContext, OpenIssue, open_issues
from floe_stream.runtime.telemetry import (
    BatchMetrics,
    InstrumentedCheck,
    custom_metrics,
    data_age_s,
    instrument_checks,
    track_freshness,
)
from floe_stream.telemetry import tracing
from floe_stream.topics.materialization import OpenLineageRunEvent
from floe_stream.topics.violation import ResolvedData, ViolationData, encode_violation

if TYPE_CHECKING:
    from floe_stream.contracts.models import MonitoredAsset
    from floe_stream.contracts.registry import ContractRegistry
    from floe_stream.processors.engine import Engine
    from floe_stream.processors.model import AssetUpdate
    from floe_stream.topics.check_result import CheckResult

_ENGINE_CHECK_TUPLES = ("checks", "_quality_checks", "_probe_checks")


class ProcessorObservability:
    def __init__(self, registry: ContractRegistry, engine: Engine) -> None:
        self.registry = registry
        self.engine = engine
        self.acc = BatchMetrics(self._contract_of)
        self.impact = ImpactContext()
        self.custom = custom_metrics()
        for attr in _ENGINE_CHECK_TUPLES:  # instrument every check tuple the engine dispatches through
            checks = getattr(engine, attr, None)
            if isinstance(checks, tuple):
                setattr(engine, attr, instrument_checks(checks, self.acc))
        track_freshness(self)

    def _contract_of(self, asset_id: str) -> str:
        a = self.registry.get(asset_id)
        return a.contract_name if a is not None else ""

    # --- scrape-time gauge -----------------------------------------------------------------------------
    def freshness_observations(self) -> list[tuple[dict[str, str], float]]:
        now = datetime.now(UTC)
        out = []
        for aid, st in list(self.engine.states.items()):
            age = data_age_s(st.last_update_at, now)
            if age is not None:
                out.append(({"contract": self._contract_of(aid), "asset": aid}, age))
        return out

    # --- inputs -------------------------------------------------------------------------------------------
    def input_event(self, ev: Any) -> None:
        if isinstance(ev, OpenLineageRunEvent):
            self.impact.observe_openlineage(ev)
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
        from floe_stream.processors.context import identifiers

        for ident in identifiers(dataset_id):
            asset = self.registry.resolve(ident)
            if asset is None:
                continue
            st = self.engine.states.get(asset.asset_id)
            return asset.asset_id, open_issues(st.open) if st is not None else []
        return None

    def enrich(self, v: ViolationData | ResolvedData) -> ViolationData | ResolvedData:
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

    def flush(self, batch: Any) -> None:
        tracing.end_record()
        self.acc.flush(batch)


__all__ = ["InstrumentedCheck", "ProcessorObservability"]
