"""Freshness: data age against the contract's latency SLA, on arrival and on every tick (absence)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.durations import format_age, format_duration
from floe_stream.processors.checks.base import ExplainContext, sla_severity
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.enums import CheckStatus, CheckType

KEY = "freshness"
_new = tuple.__new__


def round_nonneg(x: float, scale: float) -> float:
    """``round(x, n)`` for ``x >= 0`` and ``scale = 10**n`` at a quarter of its cost (it runs twice per event).
    It differs from ``round`` only when ``x * scale`` lies within a float ulp of a tie, and then by one unit
    of the last kept digit (tests/unit/test_hot_path.py)."""
    return int(x * scale + 0.5) / scale


@lru_cache(maxsize=4096)
def _expected(threshold_s: float) -> str:
    return f"age <= {format_duration(threshold_s)}"


def evaluate_age(
    asset: MonitoredAsset, data_time: datetime, ctx: EvalContext, *, absent: bool
) -> Evaluation | None:
    sla = asset.freshness
    if sla is None:
        return None
    threshold = sla.threshold_s
    age = max(0.0, (ctx.now - data_time).total_seconds())
    consumed = age / threshold
    breached = age > threshold + ctx.clock_skew_s
    severity = sla_severity(consumed, breached, ctx)
    expected = _expected(threshold)
    actual = f"age {format_age(age)}"
    consumed_r = round_nonneg(consumed, 1e4)
    if severity is None:
        message = "within freshness SLA"  # the common case first
    elif breached and absent:
        message = f"no update for {format_duration(age)}; freshness SLA is {format_duration(threshold)}"
    elif breached:
        message = (
            f"data is {format_duration(age)} old on arrival; freshness SLA is {format_duration(threshold)}"
        )
    else:
        message = f"{consumed:.0%} of the {format_duration(threshold)} freshness SLA consumed"
    # Hot-path trick, justified by bench/processor_cpu.py (the 'fresh' workload: one freshness pass per event):
    # Finding / Evaluation built by tuple.__new__ with every field, in field order — NamedTuple's own __new__ is
    # a Python function (keywords ~2x, positional ~1.4x this cost). The field order is pinned by
    # tests/unit/test_hot_path.py::test_field_order_of_the_positionally_built_tuples.
    finding = _new(Finding, (KEY, severity, message, sla.element, expected, actual, None, consumed_r, None))
    if breached:  # the moment the SLA was breached: timeToDetect is measured from it (rare path)
        at = data_time + timedelta(seconds=threshold + ctx.clock_skew_s)
        finding = finding._replace(context={"breached_at": at.isoformat()})
    return _new(
        Evaluation,
        (
            CheckType.FRESHNESS,
            CheckStatus.FAIL if breached else CheckStatus.PASS,
            (finding,),
            KEY,
            severity,
            round_nonneg(age, 1e3),
            consumed_r,
            expected,
            actual,
            message,
            None,
        ),
    )


class FreshnessCheck:
    check_type = CheckType.FRESHNESS
    judges_new_data = True  # the engine skips it for updates that are not new data

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        if state.last_update_at is not None and update.data_time < state.last_update_at:
            # An older, late-arriving event cannot make the asset staler or fresher than it is.
            return []
        ev = evaluate_age(asset, update.data_time, ctx, absent=False)
        return [ev] if ev else []

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        f = asset.freshness
        if f is None:
            return []
        return [
            {
                "check": "freshness",
                "evaluates": f"{f.source_property} {format_duration(f.threshold_s, 'exact')}",
                "measured": f"now (or arrival) minus the newest {f.element or 'update time'}; on every update and tick",
                "severity": ex.severities,
            }
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        since = state.last_update_at or state.watch_since
        if since is None:
            return []
        sla = asset.freshness
        if sla is None:
            return []
        quiet = (ctx.now - since).total_seconds() < ctx.info_at * sla.threshold_s
        if quiet and KEY not in state.open and KEY not in state.tracks:
            return []  # fast path for the common quiet asset: nothing to report before the INFO level
        ev = evaluate_age(asset, since, ctx, absent=True)
        if ev is None:
            return []
        # Ticks only report news: escalations and breaches; a quiet, healthy asset yields no result.
        already = state.open.get(KEY)
        if ev.severity is None and already is None:
            return []
        if (
            already is not None
            and already.passes == 0  # a failure while passes are counting resets them (hysteresis M)
            and ev.severity is not None
            and ev.severity.rank <= already.severity.rank
        ):
            return []
        return [ev]
