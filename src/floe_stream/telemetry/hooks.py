"""The processor's observability hooks in one object: it watches the pipeline and its outputs, never changes them.

* metrics: per-batch accumulation (:class:`BatchMetrics`), violations and dead letters counted as they are
  written, the data-age gauge read at scrape time (from the pipeline's :meth:`data_times`);
* traces: checks wrapped by :class:`InstrumentedCheck` — the composition root builds the engine with
  :meth:`ProcessorObservability.instrument` (nothing is patched into an engine); one span per input record
  (:meth:`record`); violations carry the verdict span's ``traceparent`` (:func:`tracing.verdict_traceparent`,
  encoded by runtime/deployables/outputs.py);
* custom metrics (FR-046) fed by inputs, check results and violations.

The domain context of a violation (consumers, impact, root cause) is not telemetry: it is a pure step in
:mod:`floe_stream.processors.enrich`; the violation's wire encoding is :mod:`floe_stream.topics.violation`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from floe_stream.settings import TelemetrySettings
from floe_stream.telemetry import tracing
from floe_stream.telemetry.custom import CustomMetrics
from floe_stream.telemetry.metrics import (
    BatchMetrics,
    InstrumentedCheck,
    Instruments,
    custom_metrics,
    data_age_s,
    instrument_checks,
    samples_per_batch,
    track_freshness,
)
from floe_stream.topics.enums import CheckType
from floe_stream.topics.violation import ResolvedData, ViolationData

if TYPE_CHECKING:
    from floe_stream.contracts.registry import ContractRegistry
    from floe_stream.processors.checks.base import Check
    from floe_stream.processors.model import Record
    from floe_stream.topics.check_result import CheckResult

DataTimes = Callable[[], Iterable[tuple[str, datetime | None]]]


class ProcessorObservability:
    def __init__(
        self,
        registry: ContractRegistry,
        telemetry: TelemetrySettings | None = None,
        *,
        metrics: Instruments,
    ) -> None:
        self.registry = registry
        self.metrics = metrics  # the process's instruments, given by the composition root
        self.data_times: DataTimes = tuple
        """(asset, data time) of the assets this processor owns (see :meth:`watch`)."""
        self.acc = BatchMetrics(self._contract_of, metrics)
        # the configured custom metrics (instruments are per process: building them again returns the same ones)
        self.custom = CustomMetrics(telemetry.custom_metrics) if telemetry is not None else custom_metrics()
        self.result_types: frozenset[CheckType] = (
            frozenset(CheckType) if self.custom else frozenset({CheckType.QUALITY, CheckType.AVAILABILITY})
        )
        """Check types whose results :meth:`result` wants to see (the gauges; custom metrics see all)."""
        track_freshness(self)

    def watch(self, data_times: DataTimes) -> None:
        """Where the data-age gauge reads the owned assets' data times (``Pipeline.data_times``)."""
        self.data_times = data_times

    def instrument(self, checks: Sequence[Check]) -> tuple[Check, ...]:
        """The checks wrapped to be measured (and traced) into this batch accumulator: the composition root
        builds the engine with these (runtime/deployables/processor.py); nothing is patched into an engine afterwards."""
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
        for aid, at in self.data_times():
            age = data_age_s(at, now)
            if age is not None:
                out.append(({"contract": self._contract_of(aid), "asset": aid}, age))
        return out

    # --- inputs (processors/pipeline.py: Observer) ---------------------------------------------------------
    def traces_records(self) -> bool:
        return tracing.enabled()

    def record(self, rec: Record) -> None:
        """``floe.process <topic>`` span of the input record (continuing its ``traceparent``)."""
        tracing.start_record(rec.topic, rec.headers)

    def watches_inputs(self) -> bool:
        return bool(self.custom)

    def input_event(self, ev: Any) -> None:
        """An input event (custom metrics fed by materializations)."""
        if self.custom:
            self.custom.observe("materialization", ev)

    # --- outputs (runtime/deployables/outputs.py: OutputObserver) ---------------------------------------------------------

    def result(self, r: CheckResult) -> None:
        self.acc.result(r)
        if self.custom:
            self.custom.observe("check_result", r)

    def violation(self, v: ViolationData | ResolvedData) -> None:
        """An enriched violation on its way out (``floe_contract_violations_total``, custom metrics)."""
        if isinstance(v, ViolationData):
            self.metrics.violations.add(
                1,
                {
                    "contract": v.contract_name,
                    "asset": v.asset,
                    "type": v.violation_type.value,
                    "severity": v.severity.value,
                },
            )
            if self.custom:
                self.custom.observe("violation", v)

    def dead_letter(self, topic: str, reason: str) -> None:
        """An input dead-lettered (``floe_events_dead_lettered_total``; the reason's label is its head)."""
        self.metrics.dead_lettered.add(1, {"topic": topic, "reason": reason.split(":", 1)[0]})

    def flush(self, batch: Any) -> None:
        """End of a batch: record metrics (at most once a second, see :class:`BatchMetrics`)."""
        tracing.end_record()
        self.acc.flush(batch)


__all__ = ["InstrumentedCheck", "ProcessorObservability"]
