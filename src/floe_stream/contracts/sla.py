"""The ODCS SLA properties: their names, what floe does with each, and the typed SLAs beyond freshness.

Every ODCS v3 ``slaProperties[].property`` is either evaluated by a check or explained (why it cannot be).
:data:`SLA_PROPERTIES` is the single list: the loader, ``floe contracts lint`` and ``floe contracts explain``
read it. Names are matched case-insensitively; ODCS abbreviations (``ly``, ``av``, ``toa`` …) are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field

from floe_stream.contracts.extension import _Strict

__all__ = [
    "SLA_ITEM_KEYS",
    "SLA_PROPERTIES",
    "FrequencySla",
    "LifecycleSla",
    "ResponseSla",
    "RetentionSla",
    "SlaNote",
    "SlaProperty",
    "TimeOfAvailabilitySla",
    "canonical_property",
    "parse_datetime",
    "zone_of",
]


@dataclass(frozen=True)
class SlaProperty:
    name: str
    abbreviations: tuple[str, ...]
    evaluated_by: str | None
    """The floe check (or report) that evaluates it; None when floe cannot."""
    reason: str = ""
    """What is measured, or why it is not evaluated."""


SLA_PROPERTIES: tuple[SlaProperty, ...] = (
    SlaProperty(
        "latency", ("ly",), "freshness", "data age: now (or arrival) minus the newest value of element"
    ),
    SlaProperty("freshness", (), "freshness", "same as latency (a synonym floe accepts)"),
    SlaProperty("availability", ("av",), "availability", "rolling ratio of successful pings of the server"),
    SlaProperty(
        "frequency", ("fy",), "frequency", "expected cadence of updates (interval, or cron schedule)"
    ),
    SlaProperty(
        "timeOfAvailability",
        ("toa",),
        "time_of_availability",
        "daily deadline by which an update must arrive",
    ),
    SlaProperty("generalAvailability", ("ga",), "lifecycle", "INFO notice until the GA date"),
    SlaProperty("endOfSupport", ("eos",), "lifecycle", "INFO notice before the date, WARNING once past it"),
    SlaProperty("endOfLife", ("eol",), "lifecycle", "INFO notice before the date, WARNING once past it"),
    SlaProperty(
        "timeToDetect",
        ("ttd",),
        "floe sla report --response",
        "floe's detection delay: breach → violation emitted",
    ),
    SlaProperty(
        "timeToNotify",
        ("ttn",),
        "floe sla report --response",
        "violation → first successful alert delivery (alert ledger)",
    ),
    SlaProperty(
        "timeToRepair", ("ttr",), "floe sla report --response", "episode open → resolved (violation history)"
    ),
    SlaProperty(
        "retention",
        ("rt", "re"),
        "retention",
        "rows younger than the retention period must still be there: judged on updates whose producer reports "
        "the oldest row (materialization oldest_data_timestamp); Iceberg commits and OpenLineage do not carry it",
    ),
    SlaProperty(
        "throughput",
        ("th",),
        None,
        "not evaluated: floe sees updates, not the serving system's request rate",
    ),
    SlaProperty(
        "errorRate",
        ("er",),
        None,
        "not evaluated: floe sees updates, not the serving system's request errors",
    ),
)

_BY_NAME = {n.lower(): p for p in SLA_PROPERTIES for n in (p.name, *p.abbreviations)}

SLA_ITEM_KEYS = (
    "id",
    "property",
    "value",
    "valueExt",
    "unit",
    "element",
    "driver",
    "description",
    "scheduler",
    "schedule",
    "customProperties",
    "authoritativeDefinitions",
)
"""The keys of one ODCS v3.1 ``slaProperties`` item."""


def canonical_property(name: str) -> SlaProperty | None:
    return _BY_NAME.get(name.strip().lower())


class FrequencySla(_Strict):
    """``frequency``: an update is expected every ``interval_s`` or at each ``cron`` run (in ``timezone``)."""

    interval_s: float | None = Field(default=None, gt=0)
    cron: str | None = None
    timezone: str = "UTC"
    element: str | None = None


class TimeOfAvailabilitySla(_Strict):
    """``timeOfAvailability``: each day by ``deadline`` (wall clock in ``timezone``) an update has arrived since
    the previous day's deadline. ``timezone`` is an IANA name (DST-aware) or a fixed offset such as ``-08:00``."""

    deadline: time
    timezone: str = "UTC"
    element: str | None = None


class RetentionSla(_Strict):
    """``retention``: data younger than ``period_s`` stays available."""

    period_s: float = Field(gt=0)
    element: str | None = None


class LifecycleSla(_Strict):
    general_availability: AwareDatetime | None = None
    end_of_support: AwareDatetime | None = None
    end_of_life: AwareDatetime | None = None
    notice_days: float = 30.0


class ResponseSla(_Strict):
    """Targets on floe's own response (seconds): detection, notification, repair."""

    time_to_detect_s: float | None = None
    time_to_notify_s: float | None = None
    time_to_repair_s: float | None = None


class SlaNote(_Strict):
    """One SLA property of the contract as it applies to one asset: which check evaluates it, or why not."""

    index: int
    property: str
    value: str
    evaluated_by: str | None
    detail: str


def zone_of(name: str) -> tzinfo:
    """An IANA zone (DST-aware) or a fixed offset such as ``-08:00``."""
    if name[:1] in "+-" and len(name) == 6:
        sign = -1 if name[0] == "-" else 1
        return timezone(sign * timedelta(hours=int(name[1:3]), minutes=int(name[4:6])))
    return ZoneInfo(name)


def parse_datetime(value: object) -> datetime:
    """An ISO-8601 date or timestamp; a date or a naive time is taken as UTC."""
    from datetime import UTC

    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"value {value!r} is not an ISO-8601 date or timestamp (e.g. '2032-05-12T09:30:10-08:00')"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
