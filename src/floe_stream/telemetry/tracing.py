"""Traces: W3C ``traceparent`` in from Kafka headers, one span per check evaluation, out on violations.

Tracing is off unless an exporter is configured (``FLOE_TELEMETRY__TRACES_EXPORTER`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``): then the hot path pays one flag test per record and nothing else.

Trace shape (one trace per inbound event that carried a ``traceparent``, else one per record)::

    <producer span>                      (e.g. the orchestrator's commit, header ``traceparent``)
      └─ floe.process <topic>            (processor, per record)
           └─ floe.check <type>          (per check evaluation; attributes floe.contract.*, floe.check.*)
                └─ floe.sink.<name>      (every sink, from the violation's ``traceparent``)
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from floe_stream.settings import ConfigError, TelemetrySettings

TRACEPARENT = "traceparent"
TRACER_NAME = "floe_stream"
_propagator = TraceContextTextMapPropagator()

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_global_set = False


def enabled() -> bool:
    return _tracer is not None


def tracer() -> trace.Tracer:
    return _tracer if _tracer is not None else trace.get_tracer(TRACER_NAME)


class FileSpanExporter(SpanExporter):
    """Finished spans as JSON lines (trace_id, span_id, parent_id, name, attributes, times)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_record(s), default=str) for s in spans]
        with self._lock:
            self._fh.write("".join(line + "\n" for line in lines))
            self._fh.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._fh.close()


def span_record(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.get_span_context()
    assert ctx is not None
    return {
        "name": s.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{s.parent.span_id:016x}" if s.parent is not None else None,
        "service": (s.resource.attributes.get("service.name") if s.resource else None),
        "start_ns": s.start_time,
        "end_ns": s.end_time,
        "status": s.status.status_code.name,
        "attributes": dict(s.attributes or {}),
    }


def _exporter_for(cfg: TelemetrySettings) -> tuple[str, SpanExporter | None]:
    mode = cfg.traces_exporter
    if mode == "auto":
        mode = "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    if mode == "none":
        return mode, None
    if mode == "console":
        return mode, ConsoleSpanExporter()
    if mode == "file":
        if cfg.traces_file is None:
            raise ConfigError(
                "FLOE_TELEMETRY__TRACES_FILE is required when FLOE_TELEMETRY__TRACES_EXPORTER=file"
            )
        return mode, FileSpanExporter(cfg.traces_file)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:  # pragma: no cover - declared dependency
        raise ConfigError("OTLP traces need the package opentelemetry-exporter-otlp-proto-http") from None
    return mode, OTLPSpanExporter()  # endpoint, headers, timeout from the standard OTEL_* variables


def setup_tracing(service_name: str, cfg: TelemetrySettings, exporter: SpanExporter | None = None) -> bool:
    """Install floe's tracer. ``exporter`` overrides the configured one (tests: InMemorySpanExporter).

    Returns whether tracing is on. Calling it again replaces the previous provider (tests)."""
    global _provider, _tracer, _global_set
    mode = "custom"
    if exporter is None:
        mode, exporter = _exporter_for(cfg)
    if _provider is not None:
        _provider.shutdown()
        _provider, _tracer = None, None
    if exporter is None:
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBasedTraceIdRatio(cfg.trace_sample_ratio),
    )
    processor = BatchSpanProcessor(exporter) if mode == "otlp" else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    if not _global_set:
        trace.set_tracer_provider(provider)
        _global_set = True
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME)
    return True


def shutdown_tracing() -> None:
    global _provider, _tracer
    if _provider is not None:
        _provider.force_flush()
        _provider.shutdown()
    _provider, _tracer = None, None


# --- context in / out ------------------------------------------------------------------------------------
def traceparent_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    for k, v in headers or ():
        if k == TRACEPARENT and v:
            return v.decode("ascii", "replace")
    return None


def context_from_traceparent(tp: str | None) -> otel_context.Context | None:
    if not tp:
        return None
    ctx = _propagator.extract({TRACEPARENT: tp})
    span_ctx = trace.get_current_span(ctx).get_span_context()
    return ctx if span_ctx.is_valid else None


def format_traceparent(ctx: SpanContext) -> str | None:
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def current_traceparent() -> str | None:
    return format_traceparent(trace.get_current_span().get_span_context())


# --- processor side ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class RecordSpan:
    span: Span
    token: object


_verdicts: dict[str, SpanContext] = {}
_current: RecordSpan | None = None


def start_record(topic: str, headers: Iterable[tuple[str, bytes]] | None) -> None:
    """Start ``floe.process <topic>`` as a child of the record's ``traceparent`` (or a new trace) and make it
    current; the previous record's span ends. Free (one test) when tracing is off."""
    global _current
    if _tracer is None:
        return
    end_record()
    parent = context_from_traceparent(traceparent_from_headers(headers))
    span = _tracer.start_span(f"floe.process {topic}", context=parent, kind=SpanKind.CONSUMER)
    span.set_attribute("messaging.destination.name", topic)
    _current = RecordSpan(span, otel_context.attach(trace.set_span_in_context(span)))


def end_record() -> None:
    """End the current record span (call once at the end of a batch)."""
    global _current
    _verdicts.clear()
    if _current is None:
        return
    rs, _current = _current, None
    otel_context.detach(rs.token)  # type: ignore[arg-type]
    rs.span.end()


def record_check(
    check_type: str,
    asset: Any,
    evaluations: Sequence[Any],
    start_ns: int,
    end_ns: int,
) -> None:
    """One span per check evaluation (only when the check produced something), with the attributes of
    docs/OBSERVABILITY.md; remembered as the verdict span for violations of this check type."""
    if _tracer is None or not evaluations:
        return
    parent = trace.get_current_span().get_span_context()
    if parent.is_valid and not parent.trace_flags.sampled:
        return  # not sampled: no span to record (violations carry the record's context, unsampled)
    worst_status, worst_sev, worst_rank = None, None, -1
    order = {"pass": 0, "skipped": 1, "fail": 2, "error": 3}
    for ev in evaluations:
        st = ev.status.value
        if worst_status is None or order.get(st, 0) > order.get(worst_status, 0):
            worst_status = st
        if ev.severity is not None and ev.severity.rank > worst_rank:
            worst_sev, worst_rank = ev.severity.value, ev.severity.rank
    span = _tracer.start_span(f"floe.check {check_type}", start_time=start_ns)
    span.set_attributes(
        {
            "floe.contract.name": asset.contract_name,
            "floe.contract.id": asset.contract_id,
            "floe.contract.version": asset.contract_version,
            "floe.asset": asset.asset_id,
            "floe.check.type": check_type,
            "floe.check.status": worst_status or "pass",
            "floe.check.duration_ms": round((end_ns - start_ns) / 1e6, 3),
        }
    )
    if worst_sev is not None:
        span.set_attribute("floe.violation.severity", worst_sev)
        span.set_attribute("floe.violation.type", check_type)
    if worst_status == "error":
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end_ns)
    _verdicts[check_type] = span.get_span_context()


def verdict_traceparent(check_type: str) -> str | None:
    """traceparent for a violation: the check span that decided it, else the current record span."""
    if _tracer is None:
        return None
    ctx = _verdicts.get(check_type)
    return format_traceparent(ctx) if ctx is not None else current_traceparent()


# --- sink side --------------------------------------------------------------------------------------------
def start_sink_span(name: str, traceparent: str | None, attributes: dict[str, Any] | None = None) -> Span:
    """A span continuing the violation's trace (a no-op span when tracing is off). End it yourself."""
    if _tracer is None:
        return NonRecordingSpan(SpanContext(0, 0, False, TraceFlags(0)))
    span = _tracer.start_span(name, context=context_from_traceparent(traceparent), kind=SpanKind.CONSUMER)
    if attributes:
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
    return span


def start_batch_spans(name: str, batch: Any) -> list[Span]:
    """One span per record of ``batch`` (``{tp: [records]}``) that carries a ``traceparent`` header, each a
    child of it. [] (and one flag test) when tracing is off."""
    if _tracer is None:
        return []
    spans: list[Span] = []
    for tp, recs in batch.items():
        for rec in recs:
            parent = context_from_traceparent(traceparent_from_headers(rec.headers))
            if parent is None:
                continue
            span = _tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER)
            span.set_attributes(
                {
                    "messaging.destination.name": tp.topic,
                    "messaging.kafka.partition": tp.partition,
                    "messaging.kafka.offset": rec.offset,
                }
            )
            spans.append(span)
    return spans


def end_spans(spans: Sequence[Span]) -> None:
    for span in spans:
        span.end()
