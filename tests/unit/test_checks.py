"""The pure evaluation core: freshness (arrival + absence), drift, episodes. No broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from floe_stream.contracts.models import ColumnSpec, FreshnessSla, MonitoredAsset
from floe_stream.processors.checks.drift import diff_schema, logical_of, normalize_physical
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate
from floe_stream.topics import CheckStatus, DriftKind, ObservedColumn, ResolvedData, Severity, ViolationData

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def asset(**kw: object) -> MonitoredAsset:
    base: dict[str, object] = {
        "asset_id": "sales.orders",
        "contract_id": "c1",
        "contract_name": "sales-orders",
        "contract_version": "1.0.0",
        "table": "orders",
        "freshness": FreshnessSla(threshold_s=100, element="orders.updated_at"),
        "columns": (
            ColumnSpec(name="id", logical_type="integer", physical_type="long", required=True),
            ColumnSpec(name="amount", logical_type="number", physical_type="decimal(10,2)"),
            ColumnSpec(name="note", logical_type="string"),
        ),
        "owner": "alice",
    }
    base.update(kw)
    return MonitoredAsset.model_validate(base)


def upd(at: datetime, event_id: str = "e1", **kw: object) -> AssetUpdate:
    return AssetUpdate(
        asset_id="sales.orders", source="materialization", event_id=event_id, updated_at=at, **kw
    )  # type: ignore[arg-type]


def test_fresh_arrival_passes_without_violation() -> None:
    eng = Engine(clock_skew_s=0)
    out = eng.apply_update(asset(), upd(T0), T0 + timedelta(seconds=10))
    assert [r.status for r in out.check_results] == [CheckStatus.PASS]
    assert out.check_results[0].metric == pytest.approx(10)
    assert out.violations == []


@pytest.mark.parametrize(
    ("age", "severity", "status"),
    [(79, None, CheckStatus.PASS), (80, Severity.INFO, CheckStatus.PASS), (90, Severity.WARNING, CheckStatus.PASS),
     (100, Severity.WARNING, CheckStatus.PASS), (101, Severity.ERROR, CheckStatus.FAIL)],
)  # fmt: skip
def test_arrival_severity_follows_sla_consumed(
    age: int, severity: Severity | None, status: CheckStatus
) -> None:
    eng = Engine(clock_skew_s=0)
    out = eng.apply_update(asset(), upd(T0), T0 + timedelta(seconds=age))
    assert out.check_results[0].status == status
    assert out.check_results[0].severity == severity
    assert [v.severity for v in out.violations if isinstance(v, ViolationData)] == (
        [severity] if severity else []
    )


def test_clock_skew_tolerance_delays_the_breach() -> None:
    eng = Engine(clock_skew_s=60)
    out = eng.apply_update(asset(), upd(T0), T0 + timedelta(seconds=150))
    assert out.check_results[0].status == CheckStatus.PASS  # 150 s < 100 s SLA + 60 s skew
    out = Engine(clock_skew_s=60).apply_update(asset(), upd(T0), T0 + timedelta(seconds=161))
    assert out.check_results[0].status == CheckStatus.FAIL


def test_future_timestamp_from_skewed_clock_is_age_zero() -> None:
    out = Engine().apply_update(asset(), upd(T0 + timedelta(seconds=30)), T0)
    assert out.check_results[0].metric == 0
    assert out.violations == []


def test_data_timestamp_of_the_sla_column_wins_over_materialized_at() -> None:
    out = Engine(clock_skew_s=0).apply_update(
        asset(), upd(T0, data_timestamp=T0 - timedelta(seconds=500)), T0
    )
    assert out.check_results[0].status == CheckStatus.FAIL
    assert out.check_results[0].metric == pytest.approx(500)


def test_absence_escalates_on_ticks_once_per_level_then_resolves_on_arrival() -> None:
    eng, a = Engine(clock_skew_s=0), asset()
    eng.apply_update(a, upd(T0), T0)
    seen: list[Severity] = []
    for s in range(0, 130, 5):
        out = eng.apply_tick([a], T0 + timedelta(seconds=s))
        seen += [v.severity for v in out.violations if isinstance(v, ViolationData)]
    assert seen == [Severity.INFO, Severity.WARNING, Severity.ERROR]
    ids = {ep.correlation_key for ep in eng.states["sales.orders"].open.values()}
    out = eng.apply_update(a, upd(T0 + timedelta(seconds=131), "e2"), T0 + timedelta(seconds=131))
    resolved = [v for v in out.violations if isinstance(v, ResolvedData)]
    assert len(resolved) == 1
    assert resolved[0].correlation_key in ids
    assert resolved[0].open_duration_s == pytest.approx(51)  # opened at the INFO level, 80 s after T0
    assert eng.states["sales.orders"].open == {}


def test_asset_never_seen_breaches_after_sla_from_watch_start() -> None:
    eng, a = Engine(clock_skew_s=0), asset()
    assert eng.apply_tick([a], T0).violations == []
    out = eng.apply_tick([a], T0 + timedelta(seconds=101))
    assert [v.severity for v in out.violations] == [Severity.ERROR]
    assert "no update" in out.violations[0].message


def test_replayed_evaluation_yields_identical_ids() -> None:
    def run() -> list[str]:
        eng, a = Engine(clock_skew_s=0), asset()
        eng.apply_update(a, upd(T0), T0)
        out = eng.apply_tick([a], T0 + timedelta(seconds=200))
        return [v.violation_id for v in out.violations] + [r.result_id for r in out.check_results]

    assert run() == run()


def test_asset_without_freshness_sla_gets_no_freshness_result() -> None:
    out = Engine().apply_update(asset(freshness=None), upd(T0), T0 + timedelta(days=30))
    assert out.check_results == []


# --- drift ---------------------------------------------------------------------------------------------


def test_type_normalization() -> None:
    assert normalize_physical("BIGINT") == "long"
    assert normalize_physical("VARCHAR(18)") == "string"
    assert normalize_physical("numeric(10, 2)") == "decimal(10,2)"
    assert normalize_physical("geometry") is None
    assert logical_of("long") == "integer"
    assert logical_of("timestamptz") == "timestamp"
    assert logical_of("decimal(12,2)") == "number"


def test_diff_schema_reports_each_drift_with_expected_and_actual() -> None:
    a = asset()
    actual = (
        ObservedColumn(name="ID", type="long", nullable=True),  # required → nullable
        ObservedColumn(name="amount", type="decimal(12,2)"),  # precision widened
        ObservedColumn(name="extra", type="string"),  # added
    )  # note removed
    findings = {(f.drift_kind, f.element): f for f in diff_schema(a.columns, actual)}
    assert set(findings) == {
        (DriftKind.NULLABILITY_CHANGED, "id"),
        (DriftKind.TYPE_CHANGED, "amount"),
        (DriftKind.COLUMN_ADDED, "extra"),
        (DriftKind.COLUMN_REMOVED, "note"),
    }
    tc = findings[(DriftKind.TYPE_CHANGED, "amount")]
    assert (tc.expected, tc.actual) == ("decimal(10,2)", "decimal(12,2)")
    assert findings[(DriftKind.COLUMN_ADDED, "extra")].severity == Severity.WARNING
    assert findings[(DriftKind.COLUMN_REMOVED, "note")].severity == Severity.ERROR


def test_matching_schema_is_no_drift_even_with_vendor_spellings() -> None:
    a = asset(
        columns=(
            ColumnSpec(name="id", physical_type="BIGINT"),
            ColumnSpec(name="s", physical_type="VARCHAR(3)"),
        )
    )
    assert (
        diff_schema(
            a.columns, (ObservedColumn(name="id", type="long"), ObservedColumn(name="s", type="string"))
        )
        == []
    )


def test_drift_opens_one_violation_per_drift_and_resolves_when_fixed() -> None:
    eng, a = Engine(), asset(freshness=None)
    bad = (ObservedColumn(name="id", type="long"), ObservedColumn(name="amount", type="string"),
           ObservedColumn(name="note", type="string"), ObservedColumn(name="x", type="int"))  # fmt: skip
    out = eng.apply_update(a, upd(T0, columns=bad, sequence=1), T0)
    kinds = sorted(v.drift_kind for v in out.violations if isinstance(v, ViolationData) and v.drift_kind)
    assert kinds == [DriftKind.COLUMN_ADDED, DriftKind.TYPE_CHANGED]
    assert out.check_results[0].status == CheckStatus.FAIL
    # the same drift again: no new violation (episode already open)
    assert eng.apply_update(a, upd(T0, "e2", columns=bad, sequence=2), T0).violations == []
    # type fixed, extra column still there: one resolved
    fixed = (bad[0], ObservedColumn(name="amount", type="decimal(10,2)"), bad[2], bad[3])
    out = eng.apply_update(a, upd(T0, "e3", columns=fixed, sequence=3), T0)
    assert [type(v).__name__ for v in out.violations] == ["ResolvedData"]
    # an older snapshot arriving late changes nothing
    assert eng.apply_update(a, upd(T0, "e4", columns=bad, sequence=2), T0).check_results == []
