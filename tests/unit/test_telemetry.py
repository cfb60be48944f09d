"""Metrics through the real Prometheus exposition, spans through an in-memory exporter, impact context. No broker."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from aiokafka.structs import TopicPartition
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from floe_stream.contracts.models import FreshnessSla, MonitoredAsset
from floe_stream.processors.checks.freshness import FreshnessCheck
from floe_stream.processors.context import ImpactContext, LineageGraph, OpenIssue, enrich
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext
from floe_stream.settings import ConfigError, CustomMetric, TelemetrySettings
from floe_stream.telemetry import tracing
from floe_stream.telemetry.custom import CustomMetrics, lookup
from floe_stream.telemetry.metrics import (
    BatchMetrics,
    InstrumentedCheck,
    JsonFormatter,
    instruments,
    setup_metrics,
)
from floe_stream.topics import CheckResult, MaterializationEvent, Severity, ViolationData
from floe_stream.topics.decode import decode_materialization
from floe_stream.topics.enums import CheckStatus, CheckType
from floe_stream.topics.materialization import OpenLineageRunEvent

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def samples(name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` in the process's Prometheus exposition."""
    text = generate_latest(REGISTRY).decode()
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out.append((dict(s.labels), s.value))
    return out


def value(name: str, **labels: str) -> float | None:
    for lab, v in samples(name):
        if all(lab.get(k) == want for k, want in labels.items()):
            return v
    return None


@pytest.fixture(autouse=True)
def _metrics() -> None:
    setup_metrics("floe-unit")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.setup_tracing("floe-unit", TelemetrySettings(), exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def asset(**kw: object) -> MonitoredAsset:
    base: dict[str, object] = {
        "asset_id": "sales.orders", "contract_id": "c1", "contract_name": "sales-orders", "contract_version": "1.0.0",
        "table": "orders", "freshness": FreshnessSla(threshold_s=100), "consumers": ("finance-dashboard",),
    }  # fmt: skip
    base.update(kw)
    return MonitoredAsset.model_validate(base)


def result(check: CheckType, metric: float, asset_id: str = "sales.orders") -> CheckResult:
    return CheckResult(
        result_id=f"r-{check}-{metric}", asset=asset_id, contract_id="c1", contract_version="1.0.0",
        check_type=check, status=CheckStatus.PASS, evaluated_at=T0, metric=metric,
    )  # fmt: skip


def test_batch_metrics_reach_the_prometheus_exposition() -> None:
    acc = BatchMetrics(lambda a: "sales-orders", instruments())
    acc.result(result(CheckType.QUALITY, 0.93, "unit.q"))
    acc.result(result(CheckType.AVAILABILITY, 0.995, "unit.q"))
    for _ in range(3):
        acc.duration("unit-contract", "freshness", 0.0004)
    rec = SimpleNamespace(timestamp=int((datetime.now(UTC) - timedelta(seconds=2)).timestamp() * 1000))
    acc.flush({TopicPartition("unit.materializations", 0): [rec]})  # type: ignore[dict-item]
    assert value("floe_contract_quality_score", asset="unit.q", contract="sales-orders") == pytest.approx(
        0.93
    )
    assert value("floe_contract_availability_ratio", asset="unit.q") == pytest.approx(0.995)
    assert (
        value("floe_contract_check_duration_seconds_count", contract="unit-contract", check_type="freshness")
        == 3
    )
    assert value("floe_contract_check_duration_seconds_bucket", contract="unit-contract", le="0.0005") == 3
    lat = value("floe_verdict_latency_seconds_sum", topic="unit.materializations")
    assert lat is not None
    assert 1.5 < lat < 30


def test_histograms_are_sampled_not_dropped_in_a_flood() -> None:
    acc = BatchMetrics(lambda a: "x", instruments())
    for _ in range(10_000):
        acc.duration("flood-contract", "freshness", 0.00001)
    acc.flush()
    assert (
        value("floe_contract_check_duration_seconds_count", contract="flood-contract")
        == TelemetrySettings().histogram_samples_per_batch
    )


def test_custom_metrics_from_configuration() -> None:
    custom = CustomMetrics(
        [
            CustomMetric(
                name="unit_rows_materialized",
                instrument="histogram",
                source="materialization",
                field="row_count",
                labels=["asset"],
            ),
            CustomMetric(
                name="unit_materializations",
                instrument="counter",
                source="materialization",
                labels=["labels.region"],
            ),
            CustomMetric(
                name="unit_eu_rows",
                instrument="gauge",
                source="materialization",
                field="row_count",
                where={"labels.region": "eu"},
            ),
        ]
    )
    for rows, region in ((10, "eu"), (30, "us"), (None, "eu")):
        custom.observe(
            "materialization",
            MaterializationEvent(
                asset="sales.orders", materialized_at=T0, row_count=rows, labels={"region": region}
            ),
        )
    assert value("unit_rows_materialized_count", asset="sales.orders") == 2
    assert value("unit_rows_materialized_sum", asset="sales.orders") == 40
    assert value("unit_materializations_total", labels_region="eu") == 2
    assert value("unit_eu_rows") == 10
    assert lookup({"a": {"b": SimpleNamespace(c=Severity.ERROR)}}, "a.b.c") == "error"
    with pytest.raises(ConfigError, match="twice"):
        CustomMetrics([CustomMetric(name="x"), CustomMetric(name="x")])
    with pytest.raises(ConfigError, match="needs 'field'"):
        CustomMetrics([CustomMetric(name="y", instrument="gauge")])


def test_one_span_per_check_evaluation_continuing_the_inbound_trace(spans: InMemorySpanExporter) -> None:
    inbound = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    acc = BatchMetrics(lambda a: "sales-orders", instruments())
    check = InstrumentedCheck(FreshnessCheck(), acc)
    a = asset()
    st = AssetState(asset_id=a.asset_id, watch_since=T0)
    ctx = EvalContext(now=T0 + timedelta(seconds=500), clock_skew_s=0)
    tracing.start_record("t.materializations", [("traceparent", inbound.encode())])
    evs = check.on_update(
        a, st, AssetUpdate(asset_id=a.asset_id, source="materialization", event_id="e1", updated_at=T0), ctx
    )
    verdict = tracing.verdict_traceparent("freshness")
    tracing.end_record()
    assert evs
    by_name = {s.name: s for s in spans.get_finished_spans()}
    check_span, record_span = by_name["floe.check freshness"], by_name["floe.process t.materializations"]
    assert f"{check_span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert check_span.parent is not None
    assert check_span.parent.span_id == record_span.context.span_id
    assert record_span.parent is not None
    assert f"{record_span.parent.span_id:016x}" == "b7ad6b7169203331"
    attrs = dict(check_span.attributes or {})
    assert attrs["floe.contract.name"] == "sales-orders"
    assert attrs["floe.contract.version"] == "1.0.0"
    assert attrs["floe.check.type"] == "freshness"
    assert attrs["floe.check.status"] == "fail"
    assert attrs["floe.violation.severity"] == "error"
    assert verdict == f"00-{check_span.context.trace_id:032x}-{check_span.context.span_id:016x}-01"
    # the sink continues it
    sink = tracing.start_sink_span("floe.sink.test", verdict, {"floe.contract.name": "sales-orders"})
    sink.end()
    sink_span = next(s for s in spans.get_finished_spans() if s.name == "floe.sink.test")
    assert sink_span.context.trace_id == check_span.context.trace_id
    assert sink_span.parent is not None
    assert sink_span.parent.span_id == check_span.context.span_id


def test_tracing_off_costs_nothing_and_breaks_nothing() -> None:
    tracing.shutdown_tracing()
    assert not tracing.enabled()
    tracing.start_record("t", [("traceparent", b"garbage")])
    assert tracing.verdict_traceparent("freshness") is None
    tracing.end_record()
    assert not tracing.start_sink_span("x", None).is_recording()


def test_json_logs_carry_the_trace_id(spans: InMemorySpanExporter) -> None:
    tracing.start_record("t", [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
    line = JsonFormatter().format(logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None))
    tracing.end_record()
    assert json.loads(line)["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


# --- impact / context ------------------------------------------------------------------------------------
def ol(job: str, inputs: list[str], outputs: list[str], event_type: str = "COMPLETE") -> OpenLineageRunEvent:
    def ds(x: str) -> dict[str, str]:
        ns, _, name = x.rpartition("/")
        return {"namespace": ns, "name": name}

    return OpenLineageRunEvent.model_validate(
        {"eventType": event_type, "eventTime": T0.isoformat(), "run": {"runId": "r"}, "job": {"namespace": "dbt", "name": job},
         "producer": "https://x", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
         "inputs": [ds(i) for i in inputs], "outputs": [ds(o) for o in outputs]}
    )  # fmt: skip


def viol(detected: datetime = T0, check: CheckType = CheckType.FRESHNESS) -> ViolationData:
    return ViolationData(
        violation_id="v", correlation_key="sales.orders/freshness", contract_id="c1", contract_name="sales-orders",
        contract_version="1.0.0", asset="sales.orders", violation_type=check, severity=Severity.ERROR, message="late",
        detected_at=detected, episode_started_at=detected, consumers=["finance-dashboard"],
    )  # fmt: skip


def test_context_names_downstream_consumers_and_violating_upstreams() -> None:
    g = LineageGraph()
    g.observe(ol("build_orders", ["pg/raw.orders", "pg/raw.customers"], ["pg/sales.orders"]))
    g.observe(ol("revenue_report", ["pg/sales.orders"], ["pg/marts.revenue"], event_type="START"))
    g.observe(ol("churn_model", ["pg/sales.orders", "pg/raw.customers"], ["pg/ml.churn"]))
    health = {"pg/raw.orders": ("raw.orders", [OpenIssue("freshness", "error", T0 - timedelta(hours=1))])}
    out = enrich(
        viol(), declared_consumers=["finance-dashboard"], asset_identifiers=["sales.orders"], lineage=g, history=None,
        upstream_health=health.get, now=T0,
    )  # fmt: skip
    assert out.consumers == [
        "finance-dashboard",
        "dbt/churn_model",
        "dbt/revenue_report",
        "pg/marts.revenue",
        "pg/ml.churn",
    ]
    assert out.context["impact.consumers"] == "5"
    assert out.context["impact.downstream_jobs"] == "dbt/churn_model, dbt/revenue_report"
    assert out.context["upstream.datasets"] == "pg/raw.customers, pg/raw.orders"
    assert out.context["upstream.violating"] == "raw.orders: freshness error since 2026-11-23T11:00:00Z"
    assert out.violation_id == "v"  # enrichment never changes the identity


def test_context_reports_recent_materializations_and_the_pattern() -> None:
    impact = ImpactContext()
    for i in range(4):
        impact.note_update(
            "sales.orders", T0 + timedelta(minutes=i), f"e{i}", 100 + i, f"run{i}", "dbt/build_orders"
        )
    first = impact.enrich_violation(viol(T0 + timedelta(hours=1)), declared_consumers=[], asset_identifiers=["sales.orders"],
                                    upstream_health=lambda _d: None, now=T0)  # fmt: skip
    assert first.context["pattern"] == "first violation of this asset in 24h"
    mats = first.context["recent.materializations"].split("; ")
    assert len(mats) == 3
    assert mats[0] == "2026-11-23T12:03:00Z id=e3 rows=103 job=dbt/build_orders run=run3"
    second = impact.enrich_violation(viol(T0 + timedelta(hours=2)), declared_consumers=[], asset_identifiers=["sales.orders"],
                                     upstream_health=lambda _d: None, now=T0 + timedelta(hours=2))  # fmt: skip
    assert second.context["pattern"] == "recurring: 1 earlier freshness violation(s) in 24h"
    third = impact.enrich_violation(viol(T0 + timedelta(hours=30), CheckType.SCHEMA_DRIFT), declared_consumers=[],
                                    asset_identifiers=["sales.orders"], upstream_health=lambda _d: None,
                                    now=T0 + timedelta(hours=30))  # fmt: skip
    assert third.context["pattern"] == "first violation of this asset in 24h"  # the window slid past both


def test_alert_channels_get_display_lines_in_a_useful_order() -> None:
    from floe_stream.processors.context import display_lines

    ctx = {"pattern": "recurring: 2 earlier freshness violation(s) in 24h", "upstream.violating": "raw.orders: freshness error since x",
           "impact.consumers": "3", "recent.materializations": ""}  # fmt: skip
    assert display_lines(ctx) == [
        ("Upstream violating", "raw.orders: freshness error since x"),
        ("Pattern", "recurring: 2 earlier freshness violation(s) in 24h"),
    ]


def test_custom_metric_labels_from_facets_follow_the_identifier_rule() -> None:
    """A label taken from an OpenLineage facet (free-form JSON, unbounded at decode) is a label only when it is an
    identifier by topics/bounds.py's rule; a megabyte value or an ESC sequence is recorded as '(invalid)'."""
    custom = CustomMetrics(
        [CustomMetric(name="unit_runs_by_team", source="materialization", labels=["run.facets.owner.team"])]
    )

    def run_event(team: str) -> OpenLineageRunEvent:
        ev = {
            "eventType": "COMPLETE", "eventTime": T0.isoformat(), "producer": "https://example.com/p",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": "01890000-0000-7000-8000-000000000001", "facets": {"owner": {"team": team}}},
            "job": {"namespace": "ns", "name": "job"}, "outputs": [{"namespace": "pg", "name": "sales.orders"}],
        }  # fmt: skip
        decoded = decode_materialization(json.dumps(ev).encode())
        assert isinstance(decoded, OpenLineageRunEvent)
        return decoded

    for team in ("data-eng", "x" * 1025, "ops\x1b[2J", "a\u202eb", "é" * 1024):
        custom.observe("materialization", run_event(team))
    got = {lab["run_facets_owner_team"]: v for lab, v in samples("unit_runs_by_team_total")}
    assert got == {"data-eng": 1, "(invalid)": 3, "é" * 1024: 1}
