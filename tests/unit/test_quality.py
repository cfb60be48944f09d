"""Quality: contract rules judge observed metrics, weighted score vs threshold, per-expectation findings,
skipped when nothing was reported, row counts (volume), OpenLineage facets. No broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from floe_stream.contracts.models import MonitoredAsset, QualityRule
from floe_stream.processors.checks.quality import judge
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate
from floe_stream.processors.normalize import from_openlineage
from floe_stream.topics import (
    CheckStatus,
    OpenLineageRunEvent,
    QualityResult,
    ResolvedData,
    Severity,
    ViolationData,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

RULES = (
    QualityRule(name="no_null_ids", column="id", metric="nullValues", operator="mustBe", threshold=0),
    QualityRule(name="few_null_notes", column="note", metric="nullValues", operator="mustBeLessThan", threshold=5, unit="percent"),
    QualityRule(name="volume", metric="rowCount", operator="mustBeBetween", threshold=(100, 1000)),
    QualityRule(name="unique_ids", column="id", metric="duplicateValues", operator="mustBe", threshold=0, weight=2),
)  # fmt: skip


def asset(**kw: object) -> MonitoredAsset:
    base: dict[str, object] = {
        "asset_id": "sales.orders", "contract_id": "c1", "contract_name": "sales-orders",
        "contract_version": "1.0.0", "table": "orders", "quality_rules": RULES,
    }  # fmt: skip
    base.update(kw)
    return MonitoredAsset.model_validate(base)


def upd(event_id: str = "e1", **kw: object) -> AssetUpdate:
    return AssetUpdate(
        asset_id="sales.orders", source="materialization", event_id=event_id, updated_at=T0, **kw
    )  # type: ignore[arg-type]


def qr(name: str, metric: str | None = None, column: str | None = None, **kw: object) -> QualityResult:
    return QualityResult(name=name, metric=metric, column=column, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("op", "threshold", "value", "ok"),
    [("mustBe", 0, 0, True), ("mustBe", 0, 1, False), ("mustNotBe", 0, 1, True),
     ("mustBeGreaterThan", 5, 5, False), ("mustBeGreaterOrEqualTo", 5, 5, True),
     ("mustBeLessThan", 5, 4.9, True), ("mustBeLessOrEqualTo", 5, 5.1, False),
     ("mustBeBetween", (1, 3), 3, True), ("mustBeBetween", (1, 3), 0, False), ("mustNotBeBetween", (1, 3), 2, False)],
)  # fmt: skip
def test_operators(op: str, threshold: float | tuple[float, float], value: float, ok: bool) -> None:
    assert judge(op, threshold, value) is ok


def test_all_rules_pass_gives_score_one_and_no_violation() -> None:
    quality = (qr("a", "nullValues", "id", observed_value=0), qr("b", "nullValues", "note", observed_value=2),
               qr("c", "duplicateValues", "id", observed_value=0))  # fmt: skip
    out = Engine().apply_update(asset(), upd(quality=quality, row_count=500), T0)
    [res] = out.check_results
    assert (res.status, res.metric) == (CheckStatus.PASS, 1.0)
    assert out.violations == []


def test_failed_expectations_are_reported_one_by_one_with_expected_and_actual() -> None:
    quality = (qr("a", "nullValues", "id", observed_value=3), qr("b", "nullValues", "note", observed_value=50),
               qr("c", "duplicateValues", "id", observed_value=0))  # fmt: skip
    out = Engine().apply_update(asset(), upd(quality=quality, row_count=500), T0)
    [res] = out.check_results
    # weights: ids 1 (fail), note 1 (50/500 = 10% ≥ 5%: fail), volume 1 (pass), unique 2 (pass)
    assert res.metric == pytest.approx(3 / 5)
    assert res.status == CheckStatus.FAIL  # 0.6 < 0.8
    v = {x.correlation_key.split("/", 1)[1]: x for x in out.violations if isinstance(x, ViolationData)}
    assert set(v) == {"quality/no_null_ids", "quality/few_null_notes", "quality"}
    ids = v["quality/no_null_ids"]
    assert (ids.expected_value, ids.actual_value, ids.element, ids.severity) == (
        "nullValues mustBe 0 rows",
        "3",
        "id",
        Severity.ERROR,
    )
    assert v["quality/few_null_notes"].actual_value == "10%"
    assert v["quality"].actual_value == "0.6"
    assert v["quality"].context["failed"] == "no_null_ids,few_null_notes"


def test_score_above_threshold_still_reports_the_failed_expectation_as_warning() -> None:
    quality = (qr("a", "nullValues", "id", observed_value=1), qr("b", "nullValues", "note", observed_value=0),
               qr("c", "duplicateValues", "id", observed_value=0))  # fmt: skip
    out = Engine().apply_update(asset(), upd(quality=quality, row_count=500), T0)
    assert out.check_results[0].status == CheckStatus.PASS  # 4/5 = 0.8
    assert [(v.correlation_key, v.severity) for v in out.violations] == [
        ("sales.orders/quality/no_null_ids", Severity.WARNING)
    ]


def test_contract_threshold_override() -> None:
    quality = (
        qr("a", "nullValues", "id", observed_value=1),
        qr("c", "duplicateValues", "id", observed_value=0),
    )
    strict = asset(overrides={"checks": {"quality_threshold": 0.9}})
    out = Engine().apply_update(strict, upd(quality=quality, row_count=500), T0)
    assert out.check_results[0].status == CheckStatus.FAIL  # 3/4 = 0.75 < 0.9 (score of observed rules)


def test_fixed_data_resolves_each_expectation() -> None:
    eng = Engine()
    eng.apply_update(
        asset(), upd(quality=(qr("a", "nullValues", "id", observed_value=3),), row_count=500), T0
    )
    out = eng.apply_update(
        asset(), upd("e2", quality=(qr("a", "nullValues", "id", observed_value=0),), row_count=500), T0
    )
    assert sorted(v.correlation_key for v in out.violations if isinstance(v, ResolvedData)) == [
        "sales.orders/quality", "sales.orders/quality/no_null_ids"
    ]  # fmt: skip


def test_no_results_for_an_asset_with_rules_is_skipped_never_a_violation() -> None:
    out = Engine().apply_update(asset(quality_rules=RULES[:2]), upd(), T0)
    [res] = out.check_results
    assert res.status == CheckStatus.SKIPPED
    assert "no quality results" in res.message
    assert out.violations == []


def test_contract_without_rules_uses_producer_verdicts_and_nothing_at_all_gives_no_result() -> None:
    a = asset(quality_rules=())
    assert Engine().apply_update(a, upd(), T0).check_results == []
    out = Engine().apply_update(
        a, upd(quality=(qr("dbt_test", passed=False, severity="warning"), qr("ok", passed=True))), T0
    )
    assert out.check_results[0].metric == 0.5
    keys = {(v.correlation_key, v.severity) for v in out.violations}
    assert keys == {
        ("sales.orders/quality/dbt_test", Severity.WARNING),
        ("sales.orders/quality", Severity.ERROR),
    }


def test_unknown_metric_without_verdict_is_noted_not_judged() -> None:
    a = asset(quality_rules=())
    out = Engine().apply_update(a, upd(quality=(qr("weird", "entropyValues", observed_value=3.0),)), T0)
    [res] = out.check_results
    assert res.status == CheckStatus.SKIPPED
    assert "unknown metric 'entropyValues'" in res.message
    assert out.violations == []


def test_volume_rule_from_a_commit_row_count() -> None:
    a = asset(quality_rules=(RULES[2],))
    out = Engine().apply_update(
        a,
        AssetUpdate(
            asset_id="sales.orders", source="catalog_commit", event_id="c", updated_at=T0, row_count=7
        ),
        T0,
    )
    [v] = out.violations
    assert isinstance(v, ViolationData)
    assert (v.correlation_key, v.expected_value, v.actual_value) == (
        "sales.orders/quality/volume",
        "rowCount mustBeBetween [100, 1000]",
        "7",
    )


def test_percent_rule_without_row_count_uses_the_producer_verdict() -> None:
    a = asset(quality_rules=(RULES[1],))
    out = Engine().apply_update(
        a, upd(quality=(qr("b", "nullValues", "note", observed_value=4, passed=False),)), T0
    )
    assert out.check_results[0].status == CheckStatus.FAIL
    assert "no row count" in out.check_results[0].message


OL = {
    "eventType": "COMPLETE", "eventTime": "2026-11-23T12:00:00Z",
    "run": {"runId": "0192e5a0-0000-7000-8000-000000000001"}, "job": {"namespace": "dq", "name": "orders.check"},
    "producer": "https://example.test/gx", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    "inputs": [{"namespace": "postgres://db:5432", "name": "sales.orders", "inputFacets": {"dataQualityAssertions": {
        "_producer": "x", "_schemaURL": "y", "assertions": [
            {"assertion": "not_null", "success": False, "column": "id", "failures": 12, "severity": "error"},
            {"assertion": "unique", "success": True, "column": "id"},
            {"assertion": "custom_sql", "success": False, "name": "amount_positive", "severity": "warn"},
        ]}}}],
    "outputs": [],
}  # fmt: skip


def test_openlineage_assertions_on_an_input_are_a_quality_report_not_a_materialization() -> None:
    [(idents, update)] = from_openlineage(OpenLineageRunEvent.model_validate(OL))
    assert "sales.orders" in idents
    assert update.quality_only
    eng = Engine(clock_skew_s=0)
    a = asset(quality_rules=(RULES[0], RULES[3]))
    out = eng.apply_update(a, update, T0 + timedelta(seconds=1))
    keys = {v.correlation_key: v for v in out.violations if isinstance(v, ViolationData)}
    assert keys["sales.orders/quality/no_null_ids"].actual_value == "12"  # re-judged by the contract rule
    assert keys["sales.orders/quality/amount_positive"].severity == Severity.WARNING  # producer verdict
    assert eng.states["sales.orders"].last_update_at is None  # a test run is not a materialization


def test_openlineage_output_facets_travel_with_the_materialization() -> None:
    ev = {**OL, "inputs": [], "outputs": [{"namespace": "postgres://db:5432", "name": "sales.orders",
          "facets": {"dataQualityAssertions": {"assertions": [{"assertion": "row_count", "success": True, "actual": "50"}]}},
          "outputFacets": {"outputStatistics": {"rowCount": 50}},
          "inputFacets": {"dataQualityMetrics": {"rowCount": 50, "columnMetrics": {"id": {"nullCount": 2}}}}}]}  # fmt: skip
    [(_, update)] = from_openlineage(OpenLineageRunEvent.model_validate(ev))
    assert not update.quality_only
    assert update.row_count == 50
    assert update.quality is not None
    metrics = {(q.metric, q.column, q.observed_value) for q in update.quality}
    assert {("rowCount", None, 50.0), ("nullValues", "id", 2.0)} <= metrics
    eng = Engine(clock_skew_s=0)
    out = eng.apply_update(asset(), update, T0)
    keys = {v.correlation_key for v in out.violations if isinstance(v, ViolationData)}
    assert "sales.orders/quality/no_null_ids" in keys  # nullCount 2 judged by the contract rule
    assert "sales.orders/quality/volume" in keys  # 50 rows, rule wants 100..1000
    assert eng.states["sales.orders"].last_update_at == T0  # and it is a materialization
