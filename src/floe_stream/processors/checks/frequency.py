"""Frequency: the expected cadence of updates, from the ODCS ``frequency`` SLA. Pure, on updates and ticks.

Two forms:

* an interval (``value: 1, unit: d`` or ``PT6H``): a run is missed when no update has arrived for more than
  the interval plus a 10 % grace;
* a cron schedule (``scheduler: cron``, ``schedule: "0 6 * * 1-5"``), in the zone of the ``floe`` property
  ``timezone`` (IANA, DST-aware; default UTC): each scheduled run must be followed by an update within 10 % of
  the period to the next run. Runs scheduled before floe started watching the asset are not judged.

A missed run is an ERROR even while the data is still within its latency SLA. Arrival time (the update's
``updated_at``) is what counts, not the data timestamp. The next arriving update resolves the episode.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from floe_stream.contracts.models import FrequencySla, MonitoredAsset
from floe_stream.contracts.units import zone_of
from floe_stream.durations import format_duration
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.enums import CheckStatus, CheckType, Severity

KEY = "frequency"
GRACE = 0.1
"""Fraction of the period an update may be late before the run counts as missed."""


def last_arrival(state: AssetState, key: str) -> datetime | None:
    raw = state.checks.get(key, {}).get("last_arrival")
    return datetime.fromisoformat(raw) if raw else None


def due_run(sla: FrequencySla, now: datetime) -> tuple[datetime, float] | None:
    """(the newest scheduled run whose grace has passed, its period in seconds) for a cron schedule."""
    if sla.cron is None:
        return None
    local = now.astimezone(zone_of(sla.timezone))
    run = croniter(sla.cron, local).get_prev(datetime)
    before = croniter(sla.cron, run).get_prev(datetime)
    after = croniter(sla.cron, run).get_next(datetime)
    # elapsed time in UTC: aware datetimes sharing a ZoneInfo subtract as wall clock (a DST day is 24 h there)
    period = (after.astimezone(UTC) - run.astimezone(UTC)).total_seconds()
    if (now - run.astimezone(UTC)).total_seconds() < GRACE * period:  # within its grace: judge the one before
        period = (run.astimezone(UTC) - before.astimezone(UTC)).total_seconds()
        run = before
    return run, period


def missed(sla: FrequencySla, since: datetime, now: datetime) -> tuple[bool, str, str, datetime]:
    """(missed, expected, actual, moment the run counted as missed) given the last arrival (or the start of
    watching) ``since``."""
    quiet = (now - since).total_seconds()
    if sla.cron is None:
        assert sla.interval_s is not None
        limit = sla.interval_s * (1 + GRACE)
        at = since + timedelta(seconds=limit)
        return (
            quiet > limit,
            f"an update every {format_duration(sla.interval_s)}",
            f"none for {format_duration(quiet)}",
            at,
        )
    due = due_run(sla, now)
    assert due is not None
    run, period = due
    expected = f"an update after each run of '{sla.cron}' ({sla.timezone})"
    at = run.astimezone(UTC) + timedelta(seconds=GRACE * period)
    return since < run, expected, f"last update {format_duration(quiet)} ago; run due {run.isoformat()}", at


class FrequencyCheck:
    check_type = CheckType.FREQUENCY
    judges_new_data = True  # the engine skips it for updates that are not new data

    def applies(self, asset: MonitoredAsset) -> bool:
        """Only assets with this SLA: the engine does not call it for the others (hot path)."""
        return asset.frequency is not None

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        sla = asset.frequency
        if sla is None:
            return []
        previous = last_arrival(state, KEY)
        arrived = max(update.updated_at, previous) if previous else update.updated_at
        message = "update arrived"
        return [
            Evaluation(
                check_type=CheckType.FREQUENCY,
                status=CheckStatus.PASS,
                findings=(Finding(KEY, None, message),),
                scope=KEY,
                message=message,
                state_update={"last_arrival": arrived.isoformat()},
            )
        ]

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        fr = asset.frequency
        if fr is None:
            return []
        return [
            {
                "check": "frequency",
                "evaluates": f"cron '{fr.cron}' ({fr.timezone})"
                if fr.cron
                else f"every {format_duration(fr.interval_s or 0, 'exact')}",
                "measured": "arrival of updates; a run without an update within 10 % of its period is missed",
                "severity": "missed run ERROR",
            }
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        sla = asset.frequency
        if sla is None:
            return []
        since = last_arrival(state, KEY) or state.watch_since
        if since is None:
            return []
        is_missed, expected, actual, breached_at = missed(sla, since, ctx.now)
        already = state.open.get(KEY)
        if not is_missed or already is not None:
            return []  # only news: a newly missed run (an arriving update resolves it)
        message = f"missed run: {actual}; expected {expected}"
        finding = Finding(
            KEY,
            Severity.ERROR,
            message,
            sla.element,
            expected,
            actual,
            context={"breached_at": breached_at.isoformat()},
        )
        return [
            Evaluation(
                check_type=CheckType.FREQUENCY,
                status=CheckStatus.FAIL,
                findings=(finding,),
                scope=KEY,
                severity=Severity.ERROR,
                metric=round((ctx.now - since).total_seconds(), 3),
                expected=expected,
                actual=actual,
                message=message,
            )
        ]
