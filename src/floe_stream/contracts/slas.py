"""ODCS SLA properties: the catalogue of every property (what floe does with each), and which SLA of a contract
applies to which table.

Every ODCS v3 ``slaProperties[].property`` is either evaluated by a check or explained (why it cannot be).
:data:`SLA_PROPERTIES` is the single list: the loader, ``floe contracts lint`` and ``floe contracts explain``
read it. Names are matched case-insensitively; ODCS abbreviations (``ly``, ``av``, ``toa`` …) are accepted.

Resolution rules:

- Freshness comes from the SLA property ``latency`` (synonym ``ly``) or ``freshness``. Its value is a
  number with a time unit or an ISO-8601 duration such as ``PT6H`` (:mod:`floe_stream.durations`). A number
  without a unit is rejected: seconds and days would both be guesses.
- Availability comes from ``availability`` (synonym ``av``): ``"99.9%"``, ``99.9`` (a number above 1
  is a percentage) or ``0.999`` all give the ratio 0.999.
- An SLA's ``element`` (``table.column``, ``column`` or a comma list; default ``slaDefaultElement``)
  picks the tables it applies to; an SLA without an element applies to every table. An element that
  names no table of the contract is reported as a warning and the SLA is not attached there. When a
  table gets two SLAs of one kind, one naming it in ``element`` beats one without; otherwise the
  stricter wins, with a warning.
- A value floe cannot use (a duration without a unit, a unit that is no time unit …) is a warning and that
  property is not evaluated (explain and lint say so); the rest of the contract is monitored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from open_data_contract_standard.model import OpenDataContractStandard, SchemaObject

from floe_stream.contracts.document import DocumentProblem
from floe_stream.contracts.extension import FloeExtension, did_you_mean
from floe_stream.contracts.models import (
    AvailabilitySla,
    FrequencySla,
    FreshnessSla,
    LifecycleSla,
    ResponseSla,
    RetentionSla,
    SlaNote,
    TimeOfAvailabilitySla,
)
from floe_stream.contracts.schema import column_names
from floe_stream.contracts.units import availability_ratio, parse_datetime, time_of_day
from floe_stream.durations import duration_seconds, format_duration

__all__ = [
    "SLA_ITEM_KEYS",
    "SLA_PROPERTIES",
    "SlaProperty",
    "canonical_property",
    "freshness_and_availability",
    "other_slas",
    "sla_targets_by_item",
]

_FRESHNESS_PROPERTIES = ("latency", "ly", "freshness")
_AVAILABILITY_PROPERTIES = ("availability", "av")
_Sla = TypeVar("_Sla", FreshnessSla, AvailabilitySla)


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


# --- which SLA applies to which table --------------------------------------------------------------


def freshness_and_availability(
    doc: OpenDataContractStandard, objects: list[SchemaObject], warnings: list[str]
) -> tuple[dict[int, FreshnessSla], dict[int, AvailabilitySla]]:
    """Freshness and availability SLAs per table index."""
    freshness: dict[int, list[tuple[bool, int, FreshnessSla]]] = {}
    availability: dict[int, list[tuple[bool, int, AvailabilitySla]]] = {}
    for n, sla in enumerate(doc.slaProperties or []):
        prop = (sla.property or "").strip()
        if not prop:
            raise DocumentProblem(f"slaProperties[{n}]: missing required key 'property'")
        where = f"slaProperties[{n}] {prop}"
        element = sla.element or doc.slaDefaultElement
        specific = sla.element is not None  # names its tables, so it beats an SLA for every table
        try:
            if prop.lower() in _FRESHNESS_PROPERTIES:
                fresh = FreshnessSla(threshold_s=duration_seconds(sla.value, sla.unit), source_property=prop)
                for index, column in _sla_targets(element, objects, where, warnings):
                    freshness.setdefault(index, []).append(
                        (specific, n, fresh.model_copy(update={"element": column}))
                    )
            elif prop.lower() in _AVAILABILITY_PROPERTIES:
                avail = AvailabilitySla(target_ratio=availability_ratio(sla.value, sla.unit))
                for index, _ in _sla_targets(element, objects, where, warnings):
                    availability.setdefault(index, []).append((specific, n, avail))
            # every other SLA property (retention, frequency, timeOfAvailability, ...) is not monitored
        except ValueError as exc:  # valid ODCS floe cannot use: that property is not evaluated, the rest is
            warnings.append(f"{where}: {exc}; not evaluated")
    return (
        _strictest(freshness, lambda f: f.threshold_s, "freshness", objects, warnings),
        _strictest(availability, lambda a: -a.target_ratio, "availability", objects, warnings),
    )


def sla_targets_by_item(
    doc: OpenDataContractStandard, objects: list[SchemaObject], warnings: list[str], notes: list[str]
) -> dict[int, dict[int, str | None]]:
    """SLA item index → {table index: column} for the properties beyond freshness/availability; unknown
    property names are warned about here (with a "did you mean")."""
    out: dict[int, dict[int, str | None]] = {}
    for n, sla in enumerate(doc.slaProperties or []):
        prop = (sla.property or "").strip()
        known = canonical_property(prop)
        if known is None:
            names = [p.name for p in SLA_PROPERTIES]
            warnings.append(
                f"slaProperties[{n}]: unknown SLA property {prop!r}{did_you_mean(prop, names)} "
                "(not an ODCS SLA property; not evaluated)"
            )
            continue
        # freshness/availability already warned about an element naming no table; the others say it to lint
        targets = _sla_targets(
            sla.element or doc.slaDefaultElement,
            objects,
            f"slaProperties[{n}] {prop}",
            [] if known.name in ("latency", "freshness", "availability") else notes,
        )
        out[n] = dict(targets)
    return out


def other_slas(
    doc: OpenDataContractStandard,
    targets: dict[int, dict[int, str | None]],
    index: int,
    floe: FloeExtension,
    freshness: FreshnessSla | None,
    availability: AvailabilitySla | None,
    warnings: list[str],
) -> dict[str, Any]:
    """frequency, timeOfAvailability, lifecycle dates, response targets and the per-property notes of one table."""
    items = doc.slaProperties or []
    notes: list[SlaNote] = []
    frequency: FrequencySla | None = None
    toa: list[TimeOfAvailabilitySla] = []
    life: dict[str, datetime] = {}
    response: dict[str, float] = {}
    retention: RetentionSla | None = None
    for n, column_of in targets.items():
        if index not in column_of:
            continue
        sla = items[n]
        known = canonical_property(sla.property or "")
        assert known is not None
        where = f"slaProperties[{n}] {sla.property}"
        shown = f"{sla.value}{' ' + sla.unit if sla.unit else ''}"
        evaluated_by, detail = known.evaluated_by, known.reason
        try:
            if known.name in ("latency", "freshness"):
                duration_seconds(sla.value, sla.unit)  # an unusable value: "not evaluated" (warned already)
                if freshness is None or freshness.source_property != sla.property:
                    detail = (
                        f"{detail} (another {known.name} SLA for this table is stricter or more specific)"
                    )
            elif known.name == "availability":
                availability_ratio(sla.value, sla.unit)  # an unusable value: "not evaluated" (warned already)
            elif known.name == "frequency":
                frequency = _frequency(sla, column_of[index], floe)
                detail = (
                    f"a cron run ({frequency.cron}, {frequency.timezone}) without an update within 10 % of the period"
                    if frequency.cron
                    else f"no update for more than 110 % of {format_duration(frequency.interval_s or 0, 'exact')}"
                )
            elif known.name == "timeOfAvailability":
                one = _time_of_availability(sla, column_of[index], floe)
                toa.append(one)
                detail = f"an update between the previous deadline and {one.deadline.isoformat('minutes')} ({one.timezone}) each day"
            elif known.name in ("generalAvailability", "endOfSupport", "endOfLife"):
                life[_LIFECYCLE_FIELDS[known.name]] = parse_datetime(sla.value)
            elif known.name == "retention":
                retention = RetentionSla(
                    period_s=duration_seconds(sla.value, sla.unit), element=column_of[index]
                )
            elif known.name in ("timeToDetect", "timeToNotify", "timeToRepair"):
                response[_RESPONSE_FIELDS[known.name]] = duration_seconds(sla.value, sla.unit)
        except ValueError as exc:
            if known.name not in ("latency", "freshness", "availability"):  # those were warned about once
                warnings.append(f"{where}: {exc}; not evaluated")
            evaluated_by, detail = None, f"not evaluated: {exc}"
        notes.append(
            SlaNote(
                index=n, property=str(sla.property), value=shown, evaluated_by=evaluated_by, detail=detail
            )
        )
    del availability
    return {
        "frequency": frequency,
        "time_of_availability": tuple(toa),
        "lifecycle": LifecycleSla(**life, notice_days=floe.lifecycle.notice_days) if life else None,
        "response": ResponseSla(**response) if response else None,
        "retention": retention,
        "sla_notes": tuple(notes),
    }


_LIFECYCLE_FIELDS = {
    "generalAvailability": "general_availability",
    "endOfSupport": "end_of_support",
    "endOfLife": "end_of_life",
}
_RESPONSE_FIELDS = {
    "timeToDetect": "time_to_detect_s",
    "timeToNotify": "time_to_notify_s",
    "timeToRepair": "time_to_repair_s",
}


def _frequency(sla: Any, column: str | None, floe: FloeExtension) -> FrequencySla:
    zone = floe.timezone or "UTC"
    if (sla.scheduler or "").strip().lower() == "cron" or sla.schedule:
        expr = str(sla.schedule or sla.value or "").strip()
        from croniter import croniter

        if not croniter.is_valid(expr):
            raise ValueError(f"schedule {expr!r} is not a cron expression (e.g. '0 6 * * *')")
        return FrequencySla(cron=expr, timezone=zone, element=column)
    return FrequencySla(interval_s=duration_seconds(sla.value, sla.unit), timezone=zone, element=column)


def _time_of_availability(sla: Any, column: str | None, floe: FloeExtension) -> TimeOfAvailabilitySla:
    deadline, zone = time_of_day(sla.value)  # a fixed offset in the value wins (no DST)
    if zone is None and isinstance(sla.valueExt, str) and sla.valueExt.strip():
        zone = FloeExtension.model_validate({"timezone": sla.valueExt}).timezone
    return TimeOfAvailabilitySla(deadline=deadline, timezone=zone or floe.timezone or "UTC", element=column)


def _strictest(
    candidates: dict[int, list[tuple[bool, int, _Sla]]],
    strictness: Callable[[_Sla], float],
    kind: str,
    objects: list[SchemaObject],
    warnings: list[str],
) -> dict[int, _Sla]:
    """One SLA per table: those naming the table beat those for every table; among equals the strictest."""
    chosen: dict[int, _Sla] = {}
    for index, found in candidates.items():
        specific = any(c[0] for c in found)
        top = [c for c in found if c[0] == specific]
        if len(top) > 1:
            sources = ", ".join(f"slaProperties[{c[1]}]" for c in top)
            warnings.append(
                f"table {objects[index].name!r} has {len(top)} {kind} SLAs ({sources}); the strictest is kept"
            )
        chosen[index] = min(top, key=lambda c: strictness(c[2]))[2]
    return chosen


def _sla_targets(
    element: str | None, objects: list[SchemaObject], where: str, warnings: list[str]
) -> list[tuple[int, str | None]]:
    """(table index, column) pairs an SLA element names; no element means every table."""
    if not objects:
        return []  # a contract without tables: its SLA items are noted once each (loader), not per element
    if element is None:
        return [(i, None) for i in range(len(objects))]
    targets: list[tuple[int, str | None]] = []
    for part in (p.strip() for p in element.split(",")):
        if not part:
            continue
        found = _find_element(part, objects)
        if not found:
            tables = ", ".join(str(obj.name) for obj in objects) or "none"
            warnings.append(
                f"{where}: element {part!r} names no table of this contract (tables: {tables}); SLA not attached"
            )
        for index, column in found:
            if column and objects[index].properties and column not in column_names(objects[index]):
                warnings.append(
                    f"{where}: column {column!r} is not a property of table {objects[index].name!r}"
                )
        targets += found
    return targets


def _find_element(part: str, objects: list[SchemaObject]) -> list[tuple[int, str | None]]:
    best: tuple[int, int, str | None] | None = None  # (length of the matched table name, index, column)
    for i, obj in enumerate(objects):
        for table in (obj.name, obj.physicalName):
            if not table:
                continue
            if part == table:
                match: tuple[int, int, str | None] = (len(table), i, None)
            elif part.startswith(f"{table}."):
                match = (len(table), i, part[len(table) + 1 :])
            else:
                continue
            if best is None or match[0] > best[0]:
                best = match
    if best is not None:
        return [(best[1], best[2])]
    if "." in part:
        return []
    holders = [i for i, obj in enumerate(objects) if part in column_names(obj)]
    if not holders and len(objects) == 1:
        holders = [0]
    return [(i, part) for i in holders]
