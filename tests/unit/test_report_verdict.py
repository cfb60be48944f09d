"""The one duration parser, the human units, and the verdict of a (asset, check) against its target."""

from __future__ import annotations

from datetime import timedelta

import pytest

from floe_stream.durations import format_duration, parse_duration
from floe_stream.reporting.compliance import CheckSummary, judge
from floe_stream.reporting.render import _Col, _layout, _pct


@pytest.mark.parametrize(
    ("text", "want"),
    [("90d", timedelta(days=90)), ("2w", timedelta(weeks=2)), ("36h", timedelta(hours=36)),
     ("4h30m", timedelta(hours=4, minutes=30)), ("PT6H", timedelta(hours=6)), ("P1DT12H", timedelta(hours=36)),
     ("1.5h", timedelta(minutes=90)), ("45s", timedelta(seconds=45))],
)  # fmt: skip
def test_any_duration(text: str, want: timedelta) -> None:
    assert parse_duration(text) == want


@pytest.mark.parametrize("text", ["7x", "", "P", "PT", "0d", "seven days", "7"])
def test_bad_durations_name_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="90d, 2w"):
        parse_duration(text)


def test_human_units() -> None:
    assert format_duration(16200, "report") == "4h 30m"
    assert format_duration(42472.7954 * 60, "report") == "29d 11h"
    assert _pct(98.7) == "98.7 %" and _pct(99.96) == "99.96 %" and _pct(100.0) == "100.0 %"


def _c(pct: float | None, **kw: object) -> CheckSummary:
    base: dict[str, object] = dict(
        check_type="availability", basis="time", compliance_pct=pct, checks_run=10, passed=10, failed=0,
        skipped=0, errored=0, minutes_observed=1.0, minutes_within_sla=1.0, minutes_breached=0.0,
        minutes_unknown=0.0, uptime_ratio=1.0, expected_checks=None, coverage_pct=None, worst_severity=None,
        metric_avg=None, metric_min=None, metric_max=None, violations=0, violations_by_severity={},
        episodes_resolved=0, mttr_s=None, current_status="pass", consecutive_failures=0, trend="stable",
        trend_change_pp=0.0,
    )  # fmt: skip
    base.update(kw)
    return CheckSummary.model_validate(base)


def test_the_target_decides() -> None:
    # 99.6 % passes a 99 % default but breaches the contract's 99.9 %
    ok = judge(_c(99.6), 99.0, "default", None, None)
    assert ok.status == "ok" and ok.error_budget_left_pct == 60.0
    bad = judge(_c(99.6), 99.9, "contract", None, None)
    assert bad.status == "breaching" and bad.below_target_pp == pytest.approx(0.3)
    assert "99.6 % < target 99.9 %" in bad.reason and bad.error_budget_left_pct is not None
    assert bad.error_budget_left_pct < 0
    # above target with the budget nearly spent, degrading, or failing now: at risk
    assert judge(_c(99.1), 99.0, "default", None, None).status == "at_risk"
    assert (
        judge(_c(99.9, trend="degrading", trend_change_pp=-3.0), 99.0, "default", None, None).status
        == "at_risk"
    )
    failing = judge(_c(99.9, current_status="fail", consecutive_failures=3), 99.0, "default", None, None)
    assert failing.status == "at_risk" and "failing now (3 in a row)" in failing.reason
    assert judge(_c(None), 99.0, "default", None, None).status == "no_data"


def test_columns_drop_by_priority_and_ids_are_never_cut() -> None:
    cols = [_Col("asset", 0), _Col("compliance", 1, right=True), _Col("owner", 3), _Col("why", 2, wrap=10)]
    rows = [["finance.revenue_daily_snapshot", "96.7 %", "fin-data", "96.7 % < target 99.0 % (2.3 pp below)"]]
    lines, dropped = _layout(cols, rows, 60)
    assert all(len(line) <= 60 for line in lines)
    assert "finance.revenue_daily_snapshot" in lines[2] and dropped == ["owner"]
    lines, dropped = _layout(cols, rows, 20)  # narrower than the id: the id stays whole, the rest goes
    assert "finance.revenue_daily_snapshot" in lines[2] and set(dropped) == {"compliance", "owner", "why"}
    lines, dropped = _layout(cols, rows, None)  # pipes and files: everything
    assert dropped == [] and "fin-data" in lines[2]
