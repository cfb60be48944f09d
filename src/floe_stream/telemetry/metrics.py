"""Process telemetry: OpenTelemetry metrics (Prometheus /metrics, OTLP when configured), traces, JSON logs.

Metric names as Prometheus shows them (the OTel counter ``x`` is exposed as ``x_total``):

* contract: ``floe_contract_violations_total{contract,asset,type,severity}``,
  ``floe_contract_checks_total{check_type,status}`` (pass/fail/error/skipped),
  ``floe_contract_freshness_seconds{contract,asset}`` (data age, read at scrape time),
  ``floe_contract_quality_score``, ``floe_contract_availability_ratio`` (last check result),
  ``floe_contract_check_duration_seconds{contract,check_type}`` (histogram),
  ``floe_alert_delivery_failures_total{channel}`` (defined by the alerts sink, sinks/alerts/metrics.py);
* pipeline: ``floe_events_processed_total{topic}``, ``floe_events_dead_lettered_total{topic,reason}``,
  ``floe_consumer_lag{group,topic,partition}``, ``floe_consumer_paused_partitions{group}`` (a sink waiting for
  its destination), ``floe_consumer_last_handled_timestamp_seconds{group,topic,partition}``,
  ``floe_verdict_latency_seconds{topic}`` (histogram: record timestamp → its effects produced),
  ``floe_sink_records_written_total{sink}``.

Hot path: the processor never calls an instrument per record. :class:`BatchMetrics` accumulates plain
Python counters during a batch and flushes them once; histograms get at most
``telemetry.histogram_samples_per_batch`` evenly spaced observations per series and batch.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider

from floe_stream.printable import printable
from floe_stream.settings import TelemetrySettings
from floe_stream.telemetry import tracing

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

    from floe_stream.contracts.models import MonitoredAsset
    from floe_stream.processors.checks.base import Check, ExplainContext
    from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation
    from floe_stream.topics.check_result import CheckResult

_configured = False

DURATION_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.05,
    0.25,
    1.0,
)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def setup_metrics(service_name: str, cfg: TelemetrySettings | None = None) -> None:
    """Install a MeterProvider whose readings appear on the process's /metrics endpoint (and are pushed
    over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set or ``telemetry.metrics_otlp`` is true)."""
    global _configured
    if _configured:
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource

    readers: list[MetricReader] = [PrometheusMetricReader()]
    otlp = (
        cfg.metrics_otlp
        if cfg is not None and cfg.metrics_otlp is not None
        else bool(
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        )
    )
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    provider = MeterProvider(metric_readers=readers, resource=Resource.create({"service.name": service_name}))
    metrics.set_meter_provider(provider)
    _configured = True


def setup_telemetry(service_name: str, cfg: TelemetrySettings) -> None:
    """Metrics + traces for one deployable (called by ``floe run …``)."""
    setup_metrics(service_name, cfg)
    tracing.setup_tracing(service_name, cfg)
    configure(cfg)


_settings = TelemetrySettings()
_custom: Any = None


def samples_per_batch() -> int:
    """``telemetry.histogram_samples_per_batch``: the duration samples a batch records per series."""
    return max(1, _settings.histogram_samples_per_batch)


def configure(cfg: TelemetrySettings) -> None:
    """Remember the telemetry settings; build the configured custom metrics (once per process)."""
    global _settings, _custom
    _settings = cfg
    from floe_stream.telemetry.custom import CustomMetrics

    _custom = CustomMetrics(cfg.custom_metrics)


def custom_metrics() -> Any:
    """The process's :class:`~floe_stream.telemetry.custom.CustomMetrics` (empty unless configured)."""
    global _custom
    if _custom is None:
        from floe_stream.telemetry.custom import CustomMetrics

        _custom = CustomMetrics(_settings.custom_metrics)
    return _custom


# --- observable sources (read at scrape time, never on the hot path) --------------------------------------
LagSource = Callable[[], Iterable[tuple[dict[str, str], float]]]
_lag_sources: weakref.WeakSet[Any] = weakref.WeakSet()
_freshness_sources: weakref.WeakSet[Any] = weakref.WeakSet()


def track_lag(service: Any) -> None:
    """``service.lag_observations()`` → [(attributes, lag)] and ``service.paused_observations()`` are read at
    every collection (the instruments are created now: a sink's gauges exist before its first write)."""
    _lag_sources.add(service)
    instruments()


def track_freshness(service: Any) -> None:
    """``service.freshness_observations()`` → [(attributes, data age s)] is read at every collection."""
    _freshness_sources.add(service)


def untrack(source: Any) -> None:
    """A stopped service's observations leave the scrape (a process that ran several, e.g. tests or
    ``floe dev``, must not report a stopped processor's ever-growing data ages)."""
    _lag_sources.discard(source)
    _freshness_sources.discard(source)


def _observe(sources: Iterable[Any], method: str) -> Iterable[Observation]:
    for src in list(sources):
        try:
            for attrs, value in getattr(src, method)():
                yield Observation(value, attrs)
        except Exception:  # a scrape must never fail because one source misbehaves
            logging.getLogger(__name__).debug("observation %s failed", method, exc_info=True)


def _lag_callback(_: CallbackOptions) -> Iterable[Observation]:
    return list(_observe(_lag_sources, "lag_observations"))


def _paused_callback(_: CallbackOptions) -> Iterable[Observation]:
    return list(_observe(_lag_sources, "paused_observations"))


def _handled_callback(_: CallbackOptions) -> Iterable[Observation]:
    return list(_observe(_lag_sources, "handled_observations"))


def _freshness_callback(_: CallbackOptions) -> Iterable[Observation]:
    return list(_observe(_freshness_sources, "freshness_observations"))


class Instruments:
    """The instruments shared by processors and sinks (lazy: created after setup)."""

    def __init__(self) -> None:
        meter = metrics.get_meter("floe_stream")
        self.events_processed = meter.create_counter(
            "floe_events_processed", description="input records handled, by topic"
        )
        self.updates_not_counted = meter.create_counter(
            "floe_updates_not_counted",
            description="updates that left freshness unchanged, by reason: late_data (older than the newest "
            "seen) or not_new_data (a compaction, a delete-only or zero-row update)",
        )
        self.events_unmonitored = meter.create_counter(
            "floe_events_unmonitored",
            description="input records (or datasets in them) about an asset no contract covers, by topic",
        )
        self.events_ambiguous = meter.create_counter(
            "floe_events_ambiguous",
            description="datasets in input records refused because their identifier names several monitored "
            "assets (the same name from two namespaces or two contracts), by topic",
        )
        self.dead_lettered = meter.create_counter(
            "floe_events_dead_lettered",
            description="records sent to the dead-letter topic, by topic and reason",
        )
        self.violations = meter.create_counter(
            "floe_contract_violations",
            description="violation events emitted, by contract/asset/type/severity",
        )
        self.checks = meter.create_counter(
            "floe_contract_checks", description="check evaluations by contract, type and status"
        )
        self.sink_writes = meter.create_counter(
            "floe_sink_records_written", description="records written by a sink"
        )
        self.check_duration = meter.create_histogram(
            "floe_contract_check_duration_seconds",
            unit="s",
            description="time spent evaluating one check",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.verdict_latency = meter.create_histogram(
            "floe_verdict_latency_seconds",
            unit="s",
            description="record timestamp (event entered the stream) to its verdicts produced, by input topic",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.quality_score = meter.create_gauge(
            "floe_contract_quality_score", unit="1", description="last quality score (0..1) per asset"
        )
        self.availability_ratio = meter.create_gauge(
            "floe_contract_availability_ratio",
            unit="1",
            description="last availability ratio (0..1) per asset",
        )
        self.freshness = meter.create_observable_gauge(
            "floe_contract_freshness_seconds",
            callbacks=[_freshness_callback],
            unit="s",
            description="data age of each asset owned by this processor, at collection time",
        )
        self.consumer_lag = meter.create_observable_gauge(
            "floe_consumer_lag",
            callbacks=[_lag_callback],
            description="end offset minus position, per consumer group and assigned partition",
        )
        self.paused_partitions = meter.create_observable_gauge(
            "floe_consumer_paused_partitions",
            callbacks=[_paused_callback],
            description="partitions a consumer group member paused while its destination is down (offsets held)",
        )
        self.last_handled = meter.create_observable_gauge(
            "floe_consumer_last_handled_timestamp_seconds",
            callbacks=[_handled_callback],
            unit="s",
            description="Unix time a consumer group member last handled records of an assigned partition (the "
            "time it was assigned it, before its first batch), per group, topic and partition",
        )
        self.contracts_refused = meter.create_counter(
            "floe_contracts_refused",
            description="contract documents not registered (invalid, or claiming an asset id or alias another "
            "contract owns), by source (topic, directory)",
        )
        self.probes_refused = meter.create_counter(
            "floe_probes_refused",
            description="assets whose probe target the allow-list (checks.probe_allow) does not permit: not "
            "pinged, availability not evaluated (counted once per asset and reason)",
        )
        self.lineage_events = meter.create_counter(
            "floe_lineage_events_emitted",
            description="OpenLineage events emitted, by transport and event type",
        )


_instruments: Instruments | None = None


def instruments() -> Instruments:
    global _instruments
    if _instruments is None:
        _instruments = Instruments()
    return _instruments


def _sample(values: list[float], cap: int) -> list[float]:
    if len(values) <= cap:
        return values
    step = len(values) / cap
    return [values[int(i * step)] for i in range(cap)]


class BatchMetrics:
    """Per-batch accumulator for the processor: plain dict arithmetic per record, instruments once per batch.

    (Check counts by status are aggregated by the processor itself: ``floe_contract_checks_total``.)"""

    def __init__(self, contract_of: Callable[[str], str], metrics: Instruments) -> None:
        self.contract_of = contract_of
        self.metrics = metrics  # the process's instruments, given by the composition root
        self.durations: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.quality: dict[tuple[str, str], float] = {}
        self.availability: dict[tuple[str, str], float] = {}
        self.latency: dict[str, list[float]] = defaultdict(list)
        self._recorded_at = 0.0
        self.timers: list[InstrumentedCheck] = []  # their sample budgets renew per batch

    RECORD_EVERY_S = 1.0

    def result(self, r: CheckResult) -> None:
        if r.metric is None:
            return
        ct = r.check_type.value
        if ct == "quality":
            self.quality[(self.contract_of(r.asset), r.asset)] = r.metric
        elif ct == "availability":
            self.availability[(self.contract_of(r.asset), r.asset)] = r.metric

    def duration(self, contract: str, check_type: str, seconds: float) -> None:
        self.durations[(contract, check_type)].append(seconds)

    def flush(
        self, batch: dict[Any, list[ConsumerRecord[bytes, bytes]]] | None = None, *, force: bool = False
    ) -> None:
        """Per batch: note the verdict latencies. At most once per ``RECORD_EVERY_S`` (or when ``force``, e.g.
        when the consumer is idle): hand the accumulated values to the instruments. Recording a histogram
        sample or a gauge costs ~10–20 µs in the OTel SDK; doing it per batch cost more CPU than the checks
        at small batches (1,000 events/s arrive as ~100 batches/s), and a scrape reads at most every few s."""
        cap = _settings.histogram_samples_per_batch
        for t in self.timers:
            t.renew(cap)
        if batch:
            now_ms = time.time() * 1000
            for tp, recs in batch.items():  # evenly spaced samples: at most ``cap`` are recorded anyway
                self.latency[tp.topic].extend(
                    max(0.0, (now_ms - r.timestamp) / 1000)
                    for r in recs[:: max(1, len(recs) // cap)]
                    if r.timestamp > 0
                )
        now = time.monotonic()
        if not force and now - self._recorded_at < self.RECORD_EVERY_S:
            return
        self._recorded_at = now
        m = self.metrics
        cap = _settings.histogram_samples_per_batch
        for (contract, ct), values in self.durations.items():
            for d in _sample(values, cap):
                m.check_duration.record(d, {"contract": contract, "check_type": ct})
        for (contract, asset), q in self.quality.items():
            m.quality_score.set(q, {"contract": contract, "asset": asset})
        for (contract, asset), a in self.availability.items():
            m.availability_ratio.set(a, {"contract": contract, "asset": asset})
        for topic, lat in self.latency.items():
            for x in _sample(lat, cap):
                m.verdict_latency.record(x, {"topic": topic})
        self.durations.clear()
        self.quality.clear()
        self.availability.clear()
        self.latency.clear()


class InstrumentedCheck:
    """Wraps a check: measures its calls (duration histogram) and, when tracing is on, records one span
    per evaluation. Per-event calls are timed until ``histogram_samples_per_batch`` evaluations were timed
    in the batch (the histogram records no more than that per batch anyway; :meth:`BatchMetrics.flush`
    renews the budget), then called directly: two clock reads and the bookkeeping cost as much as a quiet
    freshness evaluation. With tracing on every call is timed (one span each)."""

    def __init__(self, inner: Check, acc: BatchMetrics) -> None:
        self.inner = inner
        self.check_type = inner.check_type
        self.acc = acc
        self._ct = inner.check_type.value
        self._durations = acc.durations
        self._budget = _settings.histogram_samples_per_batch
        self._timing = True
        self._inner_update = inner.on_update
        acc.timers.append(self)

    def __getattr__(self, name: str) -> Any:  # anything else a check offers (config, helpers)
        return getattr(self.inner, name)

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        if not self._timing:  # this batch's samples are taken: just the check
            return self._inner_update(asset, state, update, ctx)
        t0 = time.perf_counter_ns()
        evs = self._inner_update(asset, state, update, ctx)
        if evs:  # [] = the check did not apply: no evaluation, nothing to measure
            self._done(asset, evs, t0)
        return evs

    def renew(self, budget: int) -> None:
        """A new batch: time the next ``budget`` evaluations again."""
        self._budget = budget
        self._timing = True

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        t0 = time.perf_counter_ns()
        evs = self.inner.on_tick(asset, state, ctx)
        if evs:  # [] = the check did not apply: no evaluation, nothing to measure
            self._done(asset, evs, t0)
        return evs

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        return self.inner.explain(asset, ex)  # a description, not an evaluation: nothing to measure

    def _done(self, asset: MonitoredAsset, evs: list[Evaluation], t0: int) -> None:
        t1 = time.perf_counter_ns()
        self._budget -= 1
        if self._budget <= 0 and not tracing.enabled():
            # enough samples in this batch: per-event calls go straight to the check until renew()
            self._timing = False
        self._durations[(asset.contract_name, self._ct)].append((t1 - t0) / 1e9)
        if tracing.enabled():
            wall1 = time.time_ns()
            tracing.record_check(self._ct, asset, evs, wall1 - (t1 - t0), wall1)


class InstrumentedProbeCheck(InstrumentedCheck):
    """Same, for checks that also judge availability probes (``on_probe``)."""

    def on_probe(
        self, asset: MonitoredAsset, state: AssetState, result: Any, ctx: EvalContext
    ) -> list[Evaluation]:
        t0 = time.perf_counter_ns()
        evs: list[Evaluation] = self.inner.on_probe(asset, state, result, ctx)  # type: ignore[attr-defined]
        if evs:  # [] = the check did not apply: no evaluation, nothing to measure
            self._done(asset, evs, t0)
        return evs


def instrument_checks(checks: Sequence[Check], acc: BatchMetrics) -> tuple[Check, ...]:
    out: list[Check] = []
    for c in checks:
        if isinstance(c, InstrumentedCheck):
            out.append(c)
        elif hasattr(c, "on_probe"):
            out.append(InstrumentedProbeCheck(c, acc))
        else:
            out.append(InstrumentedCheck(c, acc))
    return tuple(out)


def data_age_s(last_update: datetime | None, now: datetime | None = None) -> float | None:
    if last_update is None:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - last_update).total_seconds())


# --- logs --------------------------------------------------------------------------------------------------
# Log lines carry input (asset ids, record keys, contract names) and, through libraries, URLs. A text line
# escapes control characters (a newline in a key must not forge a line; an ESC sequence must not reach the
# terminal that tails the log); JSON escapes them itself. Userinfo of any URL (``https://user:pass@host``) is
# masked in both. httpx/httpcore log every request's full URL at INFO/DEBUG — a Slack webhook URL is the
# secret itself — so they are held at WARNING whatever the level.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@")
QUIET_LOGGERS = ("aiokafka", "kafka", "httpx", "httpcore")


def redact(text: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://***@host`` (the same object when there is none)."""
    if "@" not in text or "://" not in text:
        return text
    return _USERINFO.sub(r"\1***@", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json

        from opentelemetry import trace

        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("topic", "partition", "offset", "asset", "reason", "trace_id"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        span_ctx = trace.get_current_span().get_span_context()
        if span_ctx.is_valid:
            out.setdefault("trace_id", f"{span_ctx.trace_id:032x}")
            out["span_id"] = f"{span_ctx.span_id:016x}"
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)  # one line: JSON escapes every control character


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message`` on one line, control characters escaped (``\\n``, ``\\x1b``); a traceback
    follows on lines indented by four spaces, so nothing a record carries can start a line of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(redact(super().formatMessage(record)))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + printable(line) for line in redact(text).splitlines())


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
