"""Lifecycle notices from ``generalAvailability``, ``endOfSupport`` and ``endOfLife``. Pure, on ticks.

* before ``generalAvailability``: INFO "not generally available until …";
* ``notice_days`` (the ``floe`` property ``lifecycle.notice_days``, default 30) before end of support / end of
  life: INFO "… in N days"; once past it: WARNING "past end of support / end of life since …".

The violation goes to the contract's consumers (``consumers`` of the violation). A result is recorded only
when the notice changes (state ``checks.lifecycle.level``), so a quiet contract costs nothing per tick.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from floe_stream.contracts.models import LifecycleSla, MonitoredAsset
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.enums import CheckStatus, CheckType, Severity

KEY = "lifecycle"


def notice(sla: LifecycleSla, now: datetime) -> tuple[str, Severity | None, str]:
    """(level, severity, message) of the lifecycle at ``now``; level is a stable name of the situation."""
    notice_s = timedelta(days=sla.notice_days)
    for field, label in (("end_of_life", "end of life"), ("end_of_support", "end of support")):
        at: datetime | None = getattr(sla, field)
        if at is None:
            continue
        if now >= at:
            return f"past_{field}", Severity.WARNING, f"past {label} since {at.isoformat()}"
        if now >= at - notice_s:
            days = max(0, (at - now).days)
            return f"notice_{field}", Severity.INFO, f"{label} on {at.isoformat()} (in {days} days)"
    ga = sla.general_availability
    if ga is not None and now < ga:
        return "pre_ga", Severity.INFO, f"not generally available until {ga.isoformat()}"
    return "ok", None, "within its supported lifecycle"


def _dates(sla: LifecycleSla, names: tuple[str, str, str]) -> str:
    """The declared dates, each under its name (GA, end of support, end of life, in that order)."""
    dates = (sla.general_availability, sla.end_of_support, sla.end_of_life)
    return ", ".join(
        f"{n} {at.date().isoformat()}" for n, at in zip(names, dates, strict=True) if at is not None
    )


class LifecycleCheck:
    check_type = CheckType.LIFECYCLE
    reacts_to_updates = False

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        return []

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        life = asset.lifecycle
        if life is None:
            return []
        return [
            {
                "check": "lifecycle",
                "evaluates": _dates(life, ("generalAvailability", "endOfSupport", "endOfLife")),
                "measured": f"INFO notice {life.notice_days:g} days before, WARNING once past; to the consumers",
                "severity": "INFO / WARNING",
            }
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        sla = asset.lifecycle
        if sla is None:
            return []
        level, severity, message = notice(sla, ctx.now)
        if state.checks.get(KEY, {}).get("level", "ok" if KEY not in state.open else "") == level:
            return []  # only news: the notice changed
        expected = _dates(sla, ("GA", "end of support", "end of life"))
        past = level.startswith("past_")
        finding = Finding(KEY, severity, message, None, expected, level)
        return [
            Evaluation(
                check_type=CheckType.LIFECYCLE,
                status=CheckStatus.FAIL if past else CheckStatus.PASS,
                findings=(finding,),
                scope=KEY,
                severity=severity,
                expected=expected,
                actual=level,
                message=message,
                state_update={"level": level},
            )
        ]
