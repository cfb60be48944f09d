"""Process metrics (OpenTelemetry API, exported on /metrics through the Prometheus reader)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider

_configured = False


def setup_metrics(service_name: str) -> None:
    """Install a MeterProvider whose readings appear on the process's /metrics endpoint."""
    global _configured
    if _configured:
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.resources import Resource

    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader()],
        resource=Resource.create({"service.name": service_name}),
    )
    metrics.set_meter_provider(provider)
    _configured = True


class Instruments:
    """The pipeline-health instruments shared by processors and sinks (lazy: created after setup)."""

    def __init__(self) -> None:
        meter = metrics.get_meter("floe_stream")
        self.events_processed = meter.create_counter(
            "floe_events_processed", description="input records handled, by topic"
        )
        self.dead_lettered = meter.create_counter(
            "floe_events_dead_lettered", description="records sent to the dead-letter topic, by topic and reason"
        )
        self.violations = meter.create_counter(
            "floe_contract_violations", description="violation events emitted, by contract/asset/type/severity"
        )
        self.checks = meter.create_counter("floe_contract_checks", description="check evaluations by type and status")
        self.sink_writes = meter.create_counter("floe_sink_records_written", description="records written by a sink")


_instruments: Instruments | None = None


def instruments() -> Instruments:
    global _instruments
    if _instruments is None:
        _instruments = Instruments()
    return _instruments


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json

        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("topic", "partition", "offset", "asset", "reason", "trace_id"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
