"""Time of availability: a daily deadline by which the day's update must have arrived. Pure, on ticks.

From the ODCS ``timeOfAvailability`` SLA (``value: "09:00"``). Each day, at the deadline (wall-clock time in
the SLA's zone), an update must have arrived since the previous day's deadline; otherwise the deadline is
missed (ERROR) until an update arrives. The zone is, in order: an offset in the value (``09:00-08:00``, a
fixed offset), an IANA name in ``valueExt`` (``Europe/Berlin``), the ``floe`` property ``timezone``, else UTC.
An IANA zone follows its DST changes: "09:00 Europe/Berlin" is 07:00 UTC in summer and 08:00 UTC in winter;
consecutive deadlines are one wall-clock day apart, whatever the day's length in seconds (23 h or 25 h).
A deadline that falls before floe started watching the asset is not judged.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from floe_stream.contracts.models import MonitoredAsset, TimeOfAvailabilitySla
from floe_stream.contracts.units import zone_of
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.enums import CheckStatus, CheckType, Severity

KEY = "time_of_availability"


def _at(day: date, sla: TimeOfAvailabilitySla) -> datetime:
    return datetime.combine(day, sla.deadline, tzinfo=zone_of(sla.timezone))


def deadlines(sla: TimeOfAvailabilitySla, now: datetime) -> tuple[datetime, datetime]:
    """(previous deadline, latest deadline at or before ``now``), both aware, in the SLA's zone."""
    local = now.astimezone(zone_of(sla.timezone))
    latest = _at(local.date(), sla)
    if latest > now:
        latest = _at(local.date() - timedelta(days=1), sla)
    return _at(latest.date() - timedelta(days=1), sla), latest


def last_arrival(state: AssetState) -> datetime | None:
    raw = state.checks.get(KEY, {}).get("last_arrival")
    return datetime.fromisoformat(raw) if raw else None


class TimeOfAvailabilityCheck:
    check_type = CheckType.TIME_OF_AVAILABILITY
    judges_new_data = True  # the engine skips it for updates that are not new data

    def applies(self, asset: MonitoredAsset) -> bool:
        """Only assets with this SLA: the engine does not call it for the others (hot path)."""
        return bool(asset.time_of_availability)

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        if not asset.time_of_availability:
            return []
        previous = last_arrival(state)
        arrived = max(update.updated_at, previous) if previous else update.updated_at
        return [
            Evaluation(
                check_type=CheckType.TIME_OF_AVAILABILITY,
                status=CheckStatus.PASS,
                findings=tuple(
                    Finding(_key(i), None, "update arrived") for i in range(len(asset.time_of_availability))
                ),
                scope=KEY,
                message="update arrived",
                state_update={"last_arrival": arrived.isoformat()},
            )
        ]

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        return [
            {
                "check": "time_of_availability",
                "evaluates": f"by {toa.deadline.isoformat('minutes')} {toa.timezone} daily",
                "measured": "an update between the previous deadline and this one (wall clock, DST-aware)",
                "severity": "missed deadline ERROR",
            }
            for toa in asset.time_of_availability
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        if not asset.time_of_availability or state.watch_since is None:
            return []
        arrived = last_arrival(state)
        findings: list[Finding] = []
        for i, sla in enumerate(asset.time_of_availability):
            previous, latest = deadlines(sla, ctx.now)
            if state.watch_since > previous or _key(i) in state.open:
                continue  # not watched for the whole period, or already reported
            if arrived is not None and arrived > previous:
                continue
            expected = f"an update by {sla.deadline.isoformat('minutes')} {sla.timezone} daily"
            actual = f"none since {previous.isoformat()}"
            message = f"deadline {latest.isoformat()} missed: no update since the previous deadline"
            context = {"breached_at": latest.isoformat()}
            findings.append(
                Finding(_key(i), Severity.ERROR, message, sla.element, expected, actual, context=context)
            )
        if not findings:
            return []
        first = findings[0]
        return [
            Evaluation(
                check_type=CheckType.TIME_OF_AVAILABILITY,
                status=CheckStatus.FAIL,
                findings=tuple(findings),
                severity=Severity.ERROR,
                expected=first.expected,
                actual=first.actual,
                message=first.message,
            )
        ]


def _key(i: int) -> str:
    return KEY if i == 0 else f"{KEY}#{i + 1}"
