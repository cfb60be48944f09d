"""Availability: ping outcomes (``probe-results``) → rolling availability ratio vs the contract SLA. Pure.

The pings themselves run outside the evaluation core (:mod:`floe_stream.probes`); each outcome arrives as
a :class:`ProbeResult` keyed by asset, so this check is deterministic and replayable. Per asset the state
keeps hourly (window/24) buckets of (ok, total) over the rolling window (default 24 h), the number of
consecutive failures, the last failure time and reason, and the newest ping time (results for a ping time
already counted are ignored: a replay or a second processor never counts twice).

Severity follows the error budget: consumed = (1 - ratio) / (1 - target); INFO at ``info_at`` of the
budget, WARNING at ``warning_at``, ERROR when the ratio falls below the target.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.checks.base import sla_severity
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.enums import CheckStatus, CheckType
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
    budget = 1.0 - sla.target_ratio
    consumed = (1.0 - ratio) / budget if budget > 0 else (0.0 if ratio >= 1 else 1.0)
    breached = ratio < sla.target_ratio
    severity = sla_severity(consumed, breached, ctx)
    hours = ctx.policy.availability_window_s / 3600
    expected = f"availability >= {_pct(sla.target_ratio)}"
    actual = f"{_pct(ratio)} of {pings} pings in {hours:g}h"
    fails = int(new["consecutive_failures"])
    plural = "failure" if fails == 1 else "failures"
    now = "up" if result.ok else f"down ({result.reason or 'failed'}, {fails} consecutive {plural})"
    if breached:
        message = f"availability {_pct(ratio)} is below the {_pct(sla.target_ratio)} SLA; target is {now}"
    elif severity is not None:
        message = f"{consumed:.0%} of the availability error budget consumed; target is {now}"
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

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        return []

    def on_probe(
        self, asset: MonitoredAsset, state: AssetState, result: ProbeResult, ctx: EvalContext
    ) -> list[Evaluation]:
        ev = evaluate_probe(asset, state, result, ctx)
        return [ev] if ev else []
