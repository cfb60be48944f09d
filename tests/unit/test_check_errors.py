"""A check that raises yields an ``error`` result for that check only; the other checks still run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from floe_stream.contracts.models import ColumnSpec, FreshnessSla, MonitoredAsset
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.checks.freshness import FreshnessCheck
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation
from floe_stream.topics.enums import CheckStatus, CheckType

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ASSET = MonitoredAsset(
    asset_id="a",
    contract_id="c",
    contract_name="c",
    contract_version="1",
    table="t",
    columns=(ColumnSpec(name="id"),),
    freshness=FreshnessSla(threshold_s=10),
)


class Broken:
    """A drift check with a bug."""

    check_type = CheckType.SCHEMA_DRIFT

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        raise KeyError("fields")

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        raise ZeroDivisionError("division by zero")

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        return []


def update(at: datetime, eid: str = "e1") -> AssetUpdate:
    return AssetUpdate(asset_id="a", source="materialization", event_id=eid, updated_at=at)


def test_raising_check_is_an_error_result_and_the_others_run() -> None:
    eng = Engine(checks=(Broken(), FreshnessCheck()), clock_skew_s=0)
    out = eng.apply_update(ASSET, update(T0), T0)
    by_type = {r.check_type: r for r in out.check_results}
    assert by_type[CheckType.SCHEMA_DRIFT].status == CheckStatus.ERROR
    assert by_type[CheckType.SCHEMA_DRIFT].message == "check raised KeyError: 'fields'"
    assert by_type[CheckType.SCHEMA_DRIFT].severity is None
    assert by_type[CheckType.FRESHNESS].status == CheckStatus.PASS
    assert out.violations == []
    assert eng.states["a"].last_update_at == T0  # the update still counts


def test_an_error_on_tick_neither_opens_nor_resolves_episodes() -> None:
    eng = Engine(checks=(Broken(), FreshnessCheck()), clock_skew_s=0)
    eng.apply_update(ASSET, update(T0), T0)
    late = eng.apply_tick([ASSET], T0 + timedelta(seconds=30))  # freshness breached, drift raises
    statuses = {r.check_type: r.status for r in late.check_results}
    assert statuses == {CheckType.SCHEMA_DRIFT: CheckStatus.ERROR, CheckType.FRESHNESS: CheckStatus.FAIL}
    assert [v.violation_type for v in late.violations] == [CheckType.FRESHNESS]
    open_before = dict(eng.states["a"].open)
    again = eng.apply_tick([ASSET], T0 + timedelta(seconds=31))
    assert all(v.violation_type != CheckType.SCHEMA_DRIFT for v in again.violations)
    assert eng.states["a"].open.keys() == open_before.keys()
