"""Pure arithmetic of the SLA history: midnight splits, incremental deltas, trends, calendar buckets, renderers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest

from floe_stream.reporting.compliance import (
    AssetCompliance,
    BucketPoint,
    CheckSeries,
    CheckSummary,
    ComplianceReport,
    ViolationCount,
)
from floe_stream.reporting.render import render_csv, render_html
from floe_stream.reporting.timeline import (
    ResultPoint,
    apply_points,
    bucket_label,
    bucket_start,
    buckets_between,
    compliance_pct,
    fold_status,
    split_by_day,
    trend,
)

T = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


def p(
    rid: str, status: str, at: datetime, metric: float | None = None, severity: str | None = None
) -> ResultPoint:
    return ResultPoint(result_id=rid, status=status, at=at, metric=metric, severity=severity, contract_id="c")


def test_an_interval_straddling_midnight_is_split_between_the_days() -> None:
    parts = split_by_day(T, T + timedelta(hours=27))
    assert parts == [(date(2026, 3, 1), 7200.0), (date(2026, 3, 2), 86400.0), (date(2026, 3, 3), 3600.0)]
    assert split_by_day(T, T) == []


def test_a_new_result_closes_the_previous_interval_across_midnight() -> None:
    first = apply_points(None, [p("a", "fail", T, severity="error")])
    assert first.last is not None and first.days[date(2026, 3, 1)].checks_run == 1
    assert first.days[date(2026, 3, 1)].breached_s == 0  # the newest status is still open
    second = apply_points(first.last, [p("b", "pass", T + timedelta(hours=3), metric=0.9)])
    d1, d2 = second.days[date(2026, 3, 1)], second.days[date(2026, 3, 2)]
    assert (d1.breached_s, d1.checks_run) == (7200.0, 0)
    assert (d2.breached_s, d2.checks_run, d2.passed, d2.metric_sum) == (3600.0, 1, 1, 0.9)
    assert second.last is not None and second.last.result_id == "b" and second.last.consecutive_failures == 0


def test_older_results_are_flagged_for_recomputation_and_duplicates_ignored() -> None:
    state = apply_points(None, [p("a", "pass", T), p("b", "fail", T + timedelta(hours=1))]).last
    again = apply_points(
        state, [p("b", "fail", T + timedelta(hours=1)), p("x", "fail", T + timedelta(minutes=5))]
    )
    assert [q.result_id for q in again.out_of_order] == ["x"]
    assert again.days == {} and again.last is state


def test_failure_streak_and_last_pass() -> None:
    st = fold_status([p("c", "fail", T + timedelta(2)), p("a", "pass", T), p("b", "fail", T + timedelta(1)),
                      p("d", "error", T + timedelta(3))])  # fmt: skip
    assert st is not None and (st.status, st.consecutive_failures, st.last_pass_at) == ("error", 2, T)


def test_compliance_basis() -> None:
    assert compliance_pct("time", 90, 10, 0, 0) == 90.0
    assert compliance_pct("evaluations", 0, 0, 3, 1) == 75.0
    assert compliance_pct("time", 0, 0, 5, 0) is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([90, 92, 95, 97, 99], "improving"),
        ([99, 97, 96, 93], "degrading"),
        ([99, 98.5, 99.2, 99], "stable"),
        ([None, 50, None], "stable"),
        ([80, None, None, 90], "improving"),
    ],
)
def test_trend_rule(values: list[float | None], expected: str) -> None:
    assert trend(values)[0] == expected


def test_calendar_buckets_are_iso_weeks_and_months() -> None:
    d = date(2026, 3, 4)  # a Wednesday
    assert bucket_start(d, "week") == date(2026, 3, 2) and bucket_label(d, "week") == "2026-W10"
    assert bucket_start(d, "month") == date(2026, 3, 1) and bucket_label(d, "month") == "2026-03"
    assert buckets_between(date(2026, 1, 30), date(2026, 3, 2), "month") == [
        date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)
    ]  # fmt: skip
    assert len(buckets_between(date(2026, 3, 1), date(2026, 3, 31), "day")) == 31


def _report() -> ComplianceReport:
    pts = [
        BucketPoint(start=date(2026, 3, i), end=date(2026, 3, i + 1), label=f"2026-03-0{i}", compliance_pct=v,
                    checks_run=3, passed=2, failed=1, minutes_observed=60, minutes_within_sla=v * 0.6,
                    uptime_ratio=v / 100, metric_avg=None, metric_min=None, metric_max=None, worst_severity=None,
                    violations=0)
        for i, v in ((1, 90.0), (2, 95.5))
    ]  # fmt: skip
    c = CheckSummary(
        check_type="freshness", basis="time", compliance_pct=92.75, checks_run=6, passed=4, failed=2, skipped=0,
        errored=0, minutes_observed=120, minutes_within_sla=111.3, minutes_breached=8.7, minutes_unknown=0,
        uptime_ratio=0.9275, expected_checks=24, coverage_pct=25.0, worst_severity="error", metric_avg=None,
        metric_min=None, metric_max=None, violations=2, violations_by_severity={"error": 2}, episodes_resolved=1,
        mttr_s=600.0, current_status="pass", consecutive_failures=0, trend="improving", trend_change_pp=5.5,
    )  # fmt: skip
    a = AssetCompliance(asset="sales.<orders>", contract_id="c", owner="o", team="t", compliance_pct=92.75,
                        checks=[c], series=[CheckSeries(check_type="freshness", basis="time", points=pts,
                                                        trend="improving", trend_change_pp=5.5)])  # fmt: skip
    return ComplianceReport(
        generated_at=T, as_of=T, window="24h", window_start=T - timedelta(days=1), window_end=T, bucket="day",
        filters={}, compliance_pct=92.75, checks_run=6, coverage_pct=25.0, episodes_opened=2, episodes_resolved=1,
        mttr_s=600.0, totals=[c], violations=[ViolationCount(check_type="freshness", severity="error", episodes=2)],
        groups=[],
        assets=[a],
    )  # fmt: skip


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-field" in a:
            self.cells.append((a["data-field"] or "", a.get("data-value") or ""))
        if tag in ("script", "link", "img") or any(
            v and v.startswith("http") for k, v in attrs if k in ("src", "href")
        ):
            self.external.append(tag)


def test_html_is_self_contained_and_carries_exact_figures() -> None:
    text = render_html(_report())
    parser = _Cells()
    parser.feed(text)
    assert parser.external == []
    assert ("compliance_pct", "92.75") in parser.cells
    assert ("freshness.compliance_pct", "95.5") in parser.cells
    assert "<svg" in text and "polyline" in text and "sales.&lt;orders&gt;" in text


def test_csv_has_window_and_bucket_rows() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(_report()))))
    assert [r["period"] for r in rows] == ["window", "day", "day"]
    assert float(rows[0]["compliance_pct"]) == 92.75 and rows[2]["compliance_pct"] == "95.5"


def test_replay_positions() -> None:
    from floe_stream.replay import parse_position

    now = datetime(2026, 3, 10, tzinfo=UTC)
    assert parse_position("earliest") == "earliest"
    assert parse_position("1200") == 1200
    assert parse_position("7d", now) == now - timedelta(days=7)
    assert parse_position("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_position("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a time"):
        parse_position("yesterday")


def test_summarize_and_roll_up_are_pure_over_the_fetched_history() -> None:
    """The report's arithmetic without a database: a hand-made History in, the judged report out."""
    from floe_stream.reporting.compliance import History, Targets, roll_up, summarize

    start = T - timedelta(days=1)
    figures = {
        "checks_run": 10,
        "passed": 9,
        "failed": 1,
        "skipped": 0,
        "errored": 0,
        "within_s": 82_800.0,
        "breached_s": 3_600.0,
        "unknown_s": 0.0,
        "worst": None,
        "metric_avg": None,
        "metric_min": None,
        "metric_max": None,
        "contract_id": "shop",
    }
    history = History(
        start=start,
        end=T,
        window={("orders", "freshness"): figures},
        status={},
        series={},
        first_seen={},
        meta={
            "quiet": {
                "contract_id": "shop",
                "owner": "ann",
                "team": None,
                "targets": None,
                "expected_intervals": '{"quality": 3600}',
            }
        },
        opened={("orders", "freshness"): {"error": 1}},
        resolved={("orders", "freshness"): (1, 600.0)},
    )
    summary = summarize(history)
    assert sorted(summary.checks) == ["orders", "quiet"] and summary.contract_of["orders"] == "shop"
    [fresh] = summary.checks["orders"]
    assert (fresh.compliance_pct, fresh.violations, fresh.mttr_s) == (95.8333, 1, 600.0)
    [quiet] = summary.checks["quiet"]  # registered, never ran: coverage 0 %, compliance n/a
    assert (quiet.checks_run, quiet.coverage_pct, quiet.compliance_pct) == (0, 0.0, None)
    report = roll_up(
        history, summary, Targets(fail_under=99.0), window="24h", by="day", filters={}, generated_at=T
    )
    assert [(a.asset, a.status) for a in report.assets] == [("orders", "breaching"), ("quiet", "no_data")]
    assert (report.episodes_opened, report.episodes_resolved, report.coverage_pct) == (1, 1, 0.0)
