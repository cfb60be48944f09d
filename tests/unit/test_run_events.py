"""Run events mean what the emitter meant (normalize.from_openlineage + the engine + the violation context):
a FAIL still delivers its assertions; a FAIL/ABORT of a producing run is no new data but "last run failed"
context; an assertion in two facet maps counts once; an untyped schema facet is declared, not observed; dbt
test names meet the contract's rules. Hand-written events shaped like dbt-ol 1.54's (integration/dbt)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from floe_stream.contracts.models import ColumnSpec, MonitoredAsset, QualityRule
from floe_stream.processors.context import ImpactContext, display_lines
from floe_stream.processors.engine import Engine
from floe_stream.processors.normalize import from_openlineage
from floe_stream.topics import CheckStatus, CheckType, OpenLineageRunEvent, ViolationData

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
NS, NAME = "duckdb://warehouse.duckdb", "warehouse.sales.orders"


def assertion(
    kind: str, column: str | None, ok: bool, failures: int | None = None, **kw: Any
) -> dict[str, Any]:
    a: dict[str, Any] = {
        "assertion": kind,
        "name": f"{kind}_orders_{column}",
        "success": ok,
        "column": column,
    }
    if failures is not None:
        a |= {"actual": str(failures), "expected": "0"}
    return a | kw


def dbt_test_job(event_type: str, assertions: list[dict[str, Any]]) -> OpenLineageRunEvent:
    """dbt-ol's `<model>.build.test` job: the model as an input, its assertions in facets and inputFacets."""
    facet = {"_producer": "p", "_schemaURL": "s", "assertions": assertions}
    return OpenLineageRunEvent.model_validate({
        "eventType": event_type, "eventTime": T0.isoformat(), "producer": "p", "schemaURL": "s",
        "run": {"runId": "0193c2a4-0000-7000-8000-0000000000aa"},
        "job": {"namespace": "dbt", "name": "warehouse.sales.shop.orders.build.test"},
        "inputs": [{"namespace": NS, "name": NAME,
                    "facets": {"dataQualityAssertions": facet}, "inputFacets": {"dataQualityAssertions": facet}}],
    })  # fmt: skip


def run_job(
    event_type: str, fields: list[dict[str, Any]] | None = None, error: str | None = None
) -> OpenLineageRunEvent:
    run: dict[str, Any] = {"runId": "0193c2a4-0000-7000-8000-0000000000bb"}
    if error:
        run["facets"] = {"errorMessage": {"message": error, "programmingLanguage": "sql"}}
    out: dict[str, Any] = {"namespace": NS, "name": NAME}
    if fields is not None:
        out["facets"] = {"schema": {"fields": fields}}
    return OpenLineageRunEvent.model_validate({
        "eventType": event_type, "eventTime": T0.isoformat(), "producer": "p", "schemaURL": "s", "run": run,
        "job": {"namespace": "dbt", "name": "warehouse.sales.shop.orders.build.run"}, "outputs": [out],
    })  # fmt: skip


ORDERS = MonitoredAsset(
    asset_id="warehouse.sales.orders", contract_id="c", contract_name="orders", contract_version="1", table="orders",
    columns=(ColumnSpec(name="order_id", logical_type="string"), ColumnSpec(name="status", logical_type="string")),
    quality_rules=(
        QualityRule(name="order_id_not_null", column="order_id", metric="nullValues", operator="mustBe", threshold=0),
        QualityRule(name="order_id_unique", column="order_id", metric="duplicateValues", operator="mustBe", threshold=0),
        QualityRule(name="status_valid", column="status", metric="invalidValues", operator="mustBe", threshold=0),
    ),
)  # fmt: skip


def test_a_fail_event_still_delivers_its_assertions_each_once() -> None:
    ev = dbt_test_job(
        "FAIL",
        [
            assertion("not_null", "order_id", True, 0),
            assertion("unique", "order_id", False, 3),  # 3 duplicated *values*, not rows
            assertion("accepted_values", "status", True, 0),
            assertion("relationships", "customer_id", False, 2, severity="warn"),
        ],
    )
    [((ns, name, _), update)] = from_openlineage(ev)
    assert (ns, name, update.quality_only, update.run_failed) == (NS, NAME, True, None)  # a tested input
    assert update.quality is not None and len(update.quality) == 4  # facets + inputFacets: counted once
    unique = next(q for q in update.quality if q.name == "unique_orders_order_id")
    assert (unique.metric, unique.observed_value, unique.passed) == ("duplicateValues", None, False)
    out = Engine(clock_skew_s=0).apply_update(ORDERS, update, T0)
    [res] = [r for r in out.check_results if r.check_type == CheckType.QUALITY]
    # the three contract rules are judged from the dbt tests of the same rule; relationships counts alone
    assert res.status == CheckStatus.FAIL and res.metric == 0.5  # unique (rule) and relationships failed
    failed = {v.correlation_key.rsplit("/", 1)[1] for v in out.violations if isinstance(v, ViolationData)}
    assert {"order_id_unique", "relationships_orders_customer_id"} <= failed


def test_a_failed_model_run_is_no_new_data_but_the_assets_last_run_failed() -> None:
    eng = Engine(clock_skew_s=0)
    eng.apply_update(ORDERS, from_openlineage(run_job("COMPLETE", [{"name": "order_id", "type": "VARCHAR"},
                                                                  {"name": "status", "type": "VARCHAR"}]))[0][1], T0)  # fmt: skip
    later = T0 + timedelta(hours=1)
    for kind in ("FAIL", "ABORT"):
        ev = run_job(kind, error='Binder Error: column "statuz" not found').model_copy(
            update={"eventTime": later}
        )
        [(_, update)] = from_openlineage(ev)
        assert update.quality_only and update.quality is None
        assert update.run_failed is not None and update.run_failed.startswith(f"{kind} of job dbt/warehouse.")
        assert 'column "statuz" not found' in update.run_failed
        out = eng.apply_update(ORDERS, update, later)
        assert out.check_results == [] and out.violations == []  # nothing judged
        assert eng.states[ORDERS.asset_id].last_update_at == T0  # freshness did not move
    # the violation context says so until the asset is materialized again
    ctx = ImpactContext()
    ctx.note_update(ORDERS.asset_id, T0, "e0", None, None, None)
    ctx.note_run_failed(ORDERS.asset_id, later, "FAIL of job dbt/x (run r): boom")
    drift = Engine(clock_skew_s=0).apply_update(
        ORDERS, from_openlineage(run_job("COMPLETE", [{"name": "order_id", "type": "VARCHAR"}]))[0][1], later
    )
    [v] = [v for v in drift.violations if isinstance(v, ViolationData)]  # 'status' removed
    enriched = ctx.enrich_violation(
        v, declared_consumers=(), asset_identifiers=(), upstream_health=lambda _: None, now=later
    )
    assert enriched.context["last_run.failed"].endswith("FAIL of job dbt/x (run r): boom")
    assert ("Last run failed", enriched.context["last_run.failed"]) in display_lines(enriched.context)
    ctx.note_update(ORDERS.asset_id, later + timedelta(minutes=5), "e1", None, None, None)
    again = ctx.enrich_violation(
        v, declared_consumers=(), asset_identifiers=(), upstream_health=lambda _: None, now=later
    )
    assert "last_run.failed" not in again.context


def test_an_untyped_schema_facet_is_declared_not_observed() -> None:
    # dbt-ol without a fresh catalog.json: the documented columns, no types (here 'status' is undocumented)
    [(_, update)] = from_openlineage(run_job("COMPLETE", [{"name": "order_id", "description": "the id"}]))
    assert (update.columns, update.declared_schema) == (None, True)
    out = Engine(clock_skew_s=0).apply_update(ORDERS, update, T0)
    [drift] = [r for r in out.check_results if r.check_type == CheckType.SCHEMA_DRIFT]
    assert drift.status == CheckStatus.SKIPPED and "declared schema" in drift.message
    assert out.violations == []  # no column_removed for 'status'
    # with types (catalog.json fresh) it is the observed schema
    [(_, typed)] = from_openlineage(run_job("COMPLETE", [{"name": "order_id", "type": "VARCHAR"}]))
    assert typed.columns is not None and not typed.declared_schema
    out = Engine(clock_skew_s=0).apply_update(ORDERS, typed, T0)
    assert any(
        isinstance(v, ViolationData) and v.violation_type.value == "schema_drift" for v in out.violations
    )


def test_start_and_running_events_mean_nothing_yet() -> None:
    assert from_openlineage(run_job("START")) == []
    assert from_openlineage(dbt_test_job("RUNNING", [assertion("not_null", "order_id", False, 1)])) == []
