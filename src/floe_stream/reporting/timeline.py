"""Pure arithmetic of the SLA history: status intervals, UTC-day attribution, daily deltas, trends.

Semantics (the same in the sink, the rebuild SQL, the reports and the brute-force test):

* Results of one (asset, check type) are ordered by ``(evaluated_at, result_id)``.
* A result's status **holds until the next result** of the same asset and check type (freshness results are
  emitted on every arrival and on ticks only when severity escalates, so "no news" means "still the same").
  The newest result holds until the report's ``as_of`` time.
* Time with status ``pass`` is *within SLA*, ``fail`` is *breached*, ``skipped``/``error`` is *unknown*
  (it counts neither for nor against compliance).
* An interval that straddles UTC midnight is split at midnight and each part is attributed to its own day.
* Counts (checks run, passed, failed …), the worst severity and metric statistics belong to the day of the
  result's ``evaluated_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

Trend = Literal["improving", "degrading", "stable"]

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
RANK_SEVERITY = {v: k for k, v in SEVERITY_RANK.items()}
TIME_WEIGHTED = frozenset({"freshness", "availability"})
TREND_THRESHOLD_PP = 2.0
"""A series whose least-squares fit changes by at least this many percentage points from its first to its
last bucket is improving (or degrading); anything flatter is stable."""


def day_of(t: datetime) -> date:
    return t.astimezone(UTC).date()


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def split_by_day(start: datetime, end: datetime) -> list[tuple[date, float]]:
    """``[start, end)`` cut at UTC midnights: (day, seconds) with seconds > 0."""
    if start >= end:
        return []
    first = day_of(start)
    if first == day_of(end):  # the common case (bench/sink.py (a)): one day, no midnight arithmetic
        return [(first, (end - start).total_seconds())]
    out: list[tuple[date, float]] = []
    cur = start
    while cur < end:
        nxt = min(end, midnight(day_of(cur)) + timedelta(days=1))
        secs = (nxt - cur).total_seconds()
        if secs > 0:
            out.append((day_of(cur), secs))
        cur = nxt
    return out


@dataclass(slots=True)
class ResultPoint:
    result_id: str
    status: str
    at: datetime
    severity: str | None = None
    metric: float | None = None
    contract_id: str = ""
    contract_version: str = ""

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.at, self.result_id)


@dataclass(slots=True)
class DayDelta:
    checks_run: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errored: int = 0
    within_s: float = 0.0
    breached_s: float = 0.0
    unknown_s: float = 0.0
    worst_rank: int | None = None
    metric_count: int = 0
    metric_sum: float = 0.0
    metric_min: float | None = None
    metric_max: float | None = None
    contract_id: str = ""

    def add_result(self, p: ResultPoint) -> None:
        self.checks_run += 1
        if p.status == "pass":
            self.passed += 1
        elif p.status == "fail":
            self.failed += 1
        elif p.status == "skipped":
            self.skipped += 1
        else:
            self.errored += 1
        rank = SEVERITY_RANK.get(p.severity or "")
        if rank is not None and (self.worst_rank is None or rank > self.worst_rank):
            self.worst_rank = rank
        if p.metric is not None:
            self.metric_count += 1
            self.metric_sum += p.metric
            self.metric_min = p.metric if self.metric_min is None else min(self.metric_min, p.metric)
            self.metric_max = p.metric if self.metric_max is None else max(self.metric_max, p.metric)
        if p.contract_id:
            self.contract_id = p.contract_id

    def add_time(self, status: str, seconds: float) -> None:
        if status == "pass":
            self.within_s += seconds
        elif status == "fail":
            self.breached_s += seconds
        else:
            self.unknown_s += seconds


@dataclass(slots=True)
class LastState:
    """What ``sla_status`` keeps per (asset, check type) for the incremental aggregates."""

    result_id: str
    status: str
    at: datetime
    consecutive_failures: int = 0
    last_pass_at: datetime | None = None
    last_fail_at: datetime | None = None
    severity: str | None = None
    metric: float | None = None
    contract_id: str = ""
    contract_version: str = ""

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.at, self.result_id)


@dataclass(slots=True)
class Applied:
    last: LastState | None
    days: dict[date, DayDelta] = field(default_factory=dict)
    out_of_order: list[ResultPoint] = field(default_factory=list)


def _advance(last: LastState | None, p: ResultPoint) -> LastState:
    fails = 0 if last is None else last.consecutive_failures
    last_pass = None if last is None else last.last_pass_at
    last_fail = None if last is None else last.last_fail_at
    if p.status == "pass":
        fails, last_pass = 0, p.at
    elif p.status == "fail":
        fails, last_fail = fails + 1, p.at
    return LastState(
        result_id=p.result_id,
        status=p.status,
        at=p.at,
        consecutive_failures=fails,
        last_pass_at=last_pass,
        last_fail_at=last_fail,
        severity=p.severity,
        metric=p.metric,
        contract_id=p.contract_id,
        contract_version=p.contract_version,
    )


def apply_points(last: LastState | None, points: Iterable[ResultPoint]) -> Applied:
    """Fold new results of one (asset, check type) into daily deltas.

    In-order results (after ``last``) close the previous result's interval, attributed to the days it spans,
    and count in their own day. Results older than ``last`` are returned in ``out_of_order``: they split an
    interval that is already aggregated, so the caller recomputes the affected days from the raw table.
    """
    res = Applied(last=last)
    for p in sorted(points, key=lambda q: q.order):
        if res.last is not None and p.order <= res.last.order:
            if p.order < res.last.order:
                res.out_of_order.append(p)
            continue
        if res.last is not None:
            for d, secs in split_by_day(res.last.at, p.at):
                res.days.setdefault(d, DayDelta()).add_time(res.last.status, secs)
        res.days.setdefault(day_of(p.at), DayDelta()).add_result(p)
        res.last = _advance(res.last, p)
    return res


def fold_status(points: Sequence[ResultPoint]) -> LastState | None:
    """The status after all ``points`` (any order): newest result, failure streak since the last pass."""
    last: LastState | None = None
    for p in sorted(points, key=lambda q: q.order):
        last = _advance(last, p)
    return last


def compliance_pct(basis: str, within_s: float, breached_s: float, passed: int, failed: int) -> float | None:
    if basis == "time":
        observed = within_s + breached_s
        return 100.0 * within_s / observed if observed > 0 else None
    judged = passed + failed
    return 100.0 * passed / judged if judged else None


def basis_of(check_type: str) -> Literal["time", "evaluations"]:
    return "time" if check_type in TIME_WEIGHTED else "evaluations"


def trend(values: Sequence[float | None], threshold_pp: float = TREND_THRESHOLD_PP) -> tuple[Trend, float]:
    """Least-squares line through the buckets that have a value (x = bucket index).

    Returns the direction and the fitted change from the first to the last bucket (percentage points):
    ≥ +threshold → improving, ≤ −threshold → degrading, else stable; fewer than two points → stable.
    """
    pts = [(float(i), v) for i, v in enumerate(values) if v is not None]
    if len(pts) < 2:
        return "stable", 0.0
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
    change = slope * (pts[-1][0] - pts[0][0])
    if change >= threshold_pp:
        return "improving", round(change, 3)
    if change <= -threshold_pp:
        return "degrading", round(change, 3)
    return "stable", round(change, 3)


Bucket = Literal["day", "week", "month"]


def bucket_start(d: date, by: Bucket) -> date:
    if by == "day":
        return d
    if by == "week":
        return d - timedelta(days=d.weekday())  # ISO week: Monday
    return d.replace(day=1)


def next_bucket(d: date, by: Bucket) -> date:
    if by == "day":
        return d + timedelta(days=1)
    if by == "week":
        return d + timedelta(days=7)
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def bucket_label(d: date, by: Bucket) -> str:
    if by == "day":
        return d.isoformat()
    if by == "week":
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}"
    return f"{d.year}-{d.month:02d}"


def buckets_between(first: date, last: date, by: Bucket) -> list[date]:
    """Starts of the calendar buckets that overlap ``[first, last]``."""
    out = []
    cur = bucket_start(first, by)
    while cur <= last:
        out.append(cur)
        cur = next_bucket(cur, by)
    return out
