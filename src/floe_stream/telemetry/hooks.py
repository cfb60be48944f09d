"""The processor's observability hooks in one object, so runtime/processor.py only calls a few methods.

* metrics: per-batch accumulation (:class:`BatchMetrics`), data-age gauge read at scrape time;
* traces: checks wrapped by :class:`InstrumentedCheck` — the processor builds its engine with
  :meth:`ProcessorObservability.instrument` (nothing is patched into an engine); violations carry the verdict
  span's ``traceparent`` (CloudEvents distributed-tracing extension attribute *and* a Kafka header);
* custom metrics (FR-046) fed by inputs, check results and violations.

The domain context of a violation (consumers, impact, root cause) is not telemetry: it is a pure step in
:mod:`floe_stream.processors.enrich`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from floe_stream.settings import TelemetrySettings
from floe_stream.telemetry import tracing
from floe_stream.telemetry.custom import CustomMetrics
from floe_stream.telemetry.metrics import (
    BatchMetrics,
    InstrumentedCheck,
    custom_metrics,
    data_age_s,
    instrument_checks,
    samples_per_batch,
    track_freshness,
)
from floe_stream.topics.enums import CheckType
from floe_stream.topics.violation import ResolvedData, ViolationData, encode_violation

if TYPE_CHECKING:
    from floe_stream.contracts.registry import ContractRegistry
    from floe_stream.processors.checks.base import Check
    from floe_stream.processors.engine import Engine
    from floe_stream.processors.model import AssetState
    from floe_stream.topics.check_result import CheckResult


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
        # the configured custom metrics (instruments are per process: building them again returns the same ones)
        self.custom = CustomMetrics(telemetry.custom_metrics) if telemetry is not None else custom_metrics()
        self.result_types: frozenset[CheckType] = (
            frozenset(CheckType) if self.custom else frozenset({CheckType.QUALITY, CheckType.AVAILABILITY})
        )
        """Check types whose results :meth:`result` wants to see (the gauges; custom metrics see all)."""
        track_freshness(self)

    def watch(self, engine: Engine) -> None:
        """Read ``engine``'s states (the data-age gauge); never change them."""
        self.states = engine.states

    def instrument(self, checks: Sequence[Check]) -> tuple[Check, ...]:
        """The checks wrapped to be measured (and traced) into this batch accumulator: the composition root
        builds the engine with these (runtime/processor.py); nothing is patched into an engine afterwards."""
        return instrument_checks(checks, self.acc)

    def timed_updates(self) -> int:
        """How many updates of the next batch go through the measured checks: the samples the duration
        histogram keeps per batch, every update while tracing (one span per evaluation)."""
        return sys.maxsize if tracing.enabled() else samples_per_batch()

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

    # --- inputs and outputs -------------------------------------------------------------------------------
    def input_event(self, ev: Any) -> None:
        """An input event (custom metrics fed by materializations)."""
        if self.custom:
            self.custom.observe("materialization", ev)

    def result(self, r: CheckResult) -> None:
        self.acc.result(r)
        if self.custom:
            self.custom.observe("check_result", r)

    def violation(self, v: ViolationData | ResolvedData) -> None:
        """An enriched violation on its way out (custom metrics)."""
        if self.custom and isinstance(v, ViolationData):
            self.custom.observe("violation", v)

    def encode(self, v: ViolationData | ResolvedData) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        """encode_violation with the verdict's traceparent (CloudEvents extension + Kafka header)."""
        tp = tracing.verdict_traceparent(v.violation_type.value)
        key, value, headers = encode_violation(v, traceparent=tp)
        if tp:
            headers = [*headers, (tracing.TRACEPARENT, tp.encode())]
        return key, value, headers

    def flush(self, batch: Any) -> None:
        """End of a batch: record metrics (at most once a second, see :class:`BatchMetrics`)."""
        tracing.end_record()
        self.acc.flush(batch)


__all__ = ["InstrumentedCheck", "ProcessorObservability"]
