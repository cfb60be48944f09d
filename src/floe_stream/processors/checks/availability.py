"""Availability: ping outcomes (``probe-results``) → rolling availability ratio vs the contract SLA. Pure.

The pings themselves run outside the evaluation core (:mod:`floe_stream.probes`); each outcome arrives as
a :class:`ProbeResult` keyed by asset, so this check is deterministic and replayable. Per asset the state
keeps hourly (window/24) buckets of (ok, total) over the rolling window (default 24 h), the number of
consecutive failures, the last failure time and reason, and the newest ping time (results for a ping time
already counted are ignored: a replay or a second processor never counts twice).

Severity follows the error budget: consumed = (1 - ratio) / (1 - target); INFO at ``info_at`` of the
budget, WARNING at ``warning_at``, ERROR when the ratio falls below the target. At real SLAs (99.9 %):

* the ratio is judged only from ``availability_min_samples`` pings in the window (default: the smallest count
  at which one failed ping stays within the budget, ceil(1 / (1 - SLA)): 1000 at 99.9 %, capped at the pings
  one window holds); before that only an outage counts: ``availability_down_after`` (3) consecutive failures
  are an ERROR, and such an episode stays open until the target has recovered;
* recovery: after ``availability_recovery_pings`` (5) consecutive successful pings an open episode resolves,
  even while the window's ratio is still below the SLA — the results stay ``fail`` (the spent budget is
  breach time in the report), but the incident is over; a new failure while below opens a new episode.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.durations import format_duration
from floe_stream.processors.checks.base import ExplainContext, sla_severity
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.processors.policy import CheckPolicy
from floe_stream.topics.enums import CheckStatus, CheckType, Severity
from floe_stream.topics.probe import ProbeResult

KEY = "availability"
BUCKETS = 24


def _pct(r: float) -> str:
    return f"{r * 100:.3f}".rstrip("0").rstrip(".") + "%"


def fold(prev: dict[str, Any], result: ProbeResult, window_s: float) -> dict[str, Any] | None:
    """The new availability state after one ping, or None when the ping time was already counted."""
    last = prev.get("last")
    if last is not None and result.scheduled_at <= datetime.fromisoformat(last):
        return None
    size = window_s / BUCKETS
    at = result.scheduled_at.timestamp()
    start = math.floor(at / size) * size
    horizon = at - window_s
    buckets = {k: list(v) for k, v in prev.get("buckets", {}).items() if float(k) + size > horizon}
    ok, total = buckets.get(f"{start:.0f}", [0, 0])
    buckets[f"{start:.0f}"] = [ok + (1 if result.ok else 0), total + 1]
    state: dict[str, Any] = {
        "last": result.scheduled_at.isoformat(),
        "buckets": buckets,
        "consecutive_failures": 0 if result.ok else int(prev.get("consecutive_failures", 0)) + 1,
        "consecutive_ok": int(prev.get("consecutive_ok", 0)) + 1 if result.ok else 0,
        "last_failure_at": prev.get("last_failure_at"),
        "last_failure_reason": prev.get("last_failure_reason"),
    }
    if not result.ok:
        state["last_failure_at"] = result.scheduled_at.isoformat()
        state["last_failure_reason"] = result.reason or "failed"
    return state


def ratio_of(state: dict[str, Any]) -> tuple[float, int]:
    ok = sum(v[0] for v in state.get("buckets", {}).values())
    total = sum(v[1] for v in state.get("buckets", {}).values())
    return (ok / total if total else 1.0), total


def min_samples(target: float, configured: int | None, policy: CheckPolicy) -> int:
    """Pings in the window before the ratio is judged: ``configured``, else the smallest count at which one
    failed ping stays within the error budget (2 at 50 %, 10 at 90 %, 1000 at 99.9 %), capped at the pings one
    window holds (1440 for 24 h of 60 s pings)."""
    if configured is not None:
        return configured
    budget = 1.0 - target
    needed = math.ceil(round(1.0 / budget, 9)) if budget > 0 else 1
    return max(1, min(needed, int(policy.availability_window_s / policy.ping_interval_s)))


def evaluate_probe(
    asset: MonitoredAsset, state: AssetState, result: ProbeResult, ctx: EvalContext
) -> Evaluation | None:
    sla = asset.availability
    if sla is None:
        return None
    new = fold(state.checks.get(KEY, {}), result, ctx.policy.availability_window_s)
    if new is None:
        return None
    ratio, pings = ratio_of(new)
    pol = ctx.policy
    budget = 1.0 - sla.target_ratio
    consumed = (1.0 - ratio) / budget if budget > 0 else (0.0 if ratio >= 1 else 1.0)
    fails = int(new["consecutive_failures"])
    oks = int(new.get("consecutive_ok", 0))
    judged = pings >= min_samples(sla.target_ratio, pol.availability_min_samples, pol)
    down = fails >= pol.availability_down_after
    below = ratio < sla.target_ratio
    breached = down or (judged and below)
    recovered = oks >= pol.availability_recovery_pings
    if down:
        severity: Severity | None = Severity.ERROR
    elif judged:
        severity = sla_severity(consumed, below, ctx)
    else:  # not judged yet: an outage episode stays open until the target has recovered
        severity = Severity.ERROR if KEY in state.open and not recovered else None
    breached = breached or severity is Severity.ERROR  # an outage still recovering stays a failure
    if recovered:
        severity = (
            None  # healthy again for long enough: the episode closes; a spent budget stays in the report
        )
    hours = pol.availability_window_s / 3600
    expected = f"availability >= {_pct(sla.target_ratio)}"
    actual = f"{_pct(ratio)} of {pings} pings in {hours:g}h"
    plural = "failure" if fails == 1 else "failures"
    now = "up" if result.ok else f"down ({result.reason or 'failed'}, {fails} consecutive {plural})"
    if down and not (judged and below):
        message = f"target is {now}"
    elif breached and recovered:
        message = f"up for {oks} pings; availability {_pct(ratio)} is still below the {_pct(sla.target_ratio)} SLA (budget spent)"
    elif breached:
        message = f"availability {_pct(ratio)} is below the {_pct(sla.target_ratio)} SLA; target is {now}"
    elif severity is not None:
        message = f"{consumed:.0%} of the availability error budget consumed; target is {now}"
    elif not judged:
        message = f"availability {_pct(ratio)} of {pings} pings; judged from {min_samples(sla.target_ratio, pol.availability_min_samples, pol)} pings; target is {now}"
    else:
        message = f"availability {_pct(ratio)}; target is {now}"
    context = {"consecutive_failures": str(fails), "probe": result.probe, "target": result.target}
    if new.get("last_failure_at"):
        context["last_failure_at"] = str(new["last_failure_at"])
        context["last_failure_reason"] = str(new["last_failure_reason"])
    finding = Finding(
        key=KEY,
        severity=severity,
        message=message,
        expected=expected,
        actual=actual,
        sla_consumed=round(consumed, 4),
        context=context,
    )
    return Evaluation(
        check_type=CheckType.AVAILABILITY,
        status=CheckStatus.FAIL if breached else CheckStatus.PASS,
        findings=(finding,),
        scope=KEY,
        severity=severity,
        metric=round(ratio, 6),
        sla_consumed=round(consumed, 4),
        expected=expected,
        actual=actual,
        message=message,
        state_update=new,
    )


class AvailabilityCheck:
    check_type = CheckType.AVAILABILITY

    reacts_to_updates = False  # judged from probe results only; the engine skips it for updates

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        return []

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        if asset.availability is None:
            return []
        where, policy = ex.probe_where(asset), ex.policy
        return [
            {
                "check": "availability",
                "evaluates": f"availability {asset.availability.target_ratio:.3%}",
                "measured": where
                if where.startswith("not evaluated")
                else (
                    f"ping {where} every {format_duration(policy.ping_interval_s, 'exact')} "
                    f"(timeout {format_duration(policy.ping_timeout_s, 'exact')}); "
                    f"ratio over {format_duration(policy.availability_window_s, 'exact')}"
                ),
                "severity": ex.severities.replace("SLA", "error budget"),
            }
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        return []

    def on_probe(
        self, asset: MonitoredAsset, state: AssetState, result: ProbeResult, ctx: EvalContext
    ) -> list[Evaluation]:
        ev = evaluate_probe(asset, state, result, ctx)
        return [ev] if ev else []
