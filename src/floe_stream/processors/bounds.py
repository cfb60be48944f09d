"""Bounds the pure core applies to one input, against its record time and its asset's state. Pure.

The strings of every input are bounded where it is decoded (``topics/bounds.py``); what needs "now" (the
record's timestamp — the core has no wall clock) or the asset's state is bounded here, by
:class:`~floe_stream.topics.bounds.InputLimits` (settings ``limits``):

* **time**: an update or probe result whose times lie beyond now + ``max_future_s`` (or, for the time the
  event happened, before now − ``max_past_days``) is refused with :class:`RejectedInput`; the processor
  dead-letters it with the reason and it moves no watermark (``last_update_at``, availability's last ping);
* **sequence**: an Iceberg commit more than ``max_sequence_jump`` ahead of the newest seen for its table is
  refused (it would make every later commit of the table look older);
* **findings**: one check reports at most ``max_findings`` findings per asset and evaluation
  (:func:`bound_findings`: the rest become one "N more" finding), so one record makes a bounded number of
  violations; the state keeps at most ``max_tracked_keys`` finding keys per asset (``episodes.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from floe_stream.processors.model import AssetUpdate, Evaluation, Finding
from floe_stream.topics.bounds import InputLimits, clip
from floe_stream.topics.decode import DecodeError
from floe_stream.topics.probe import ProbeResult

SAMPLE = 10
"""Names listed in a finding that stands for many (the rest counted)."""
SAMPLE_CHARS = 1000
"""Characters of such a list at most."""

_EVENT_TIME = {
    "materialization": "materialized_at",
    "openlineage": "eventTime",
    "catalog_commit": "timestamp_ms",
}


class RejectedInput(DecodeError):
    """An input the core refuses as implausible: it changes nothing and is dead-lettered with this reason."""


class OutputTooLarge(Exception):
    """Raised by an ``emit`` (the processor's encoder) when one output of an input record would not fit the
    broker's record size: the pipeline undoes the record's state changes and dead-letters it instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _future(field: str, value: datetime, now: datetime, limits: InputLimits) -> str:
    return (
        f"implausible time: {field} {value.isoformat()} is later than the record time {now.isoformat()} "
        f"+ limits.max_future_s ({limits.max_future_s:g} s)"
    )


def _past(field: str, value: datetime, now: datetime, limits: InputLimits) -> str:
    return (
        f"implausible time: {field} {value.isoformat()} is earlier than the record time {now.isoformat()} "
        f"- limits.max_past_days ({limits.max_past_days:g} days)"
    )


def admit_update(update: AssetUpdate, last_sequence: int | None, now: datetime, limits: InputLimits) -> None:
    """Raise :class:`RejectedInput` when ``update`` is implausible at ``now`` (its record time) for an asset
    whose newest Iceberg sequence number is ``last_sequence``."""
    horizon = now + timedelta(seconds=limits.max_future_s)
    at = update.updated_at
    if at > horizon:
        raise RejectedInput(_future(_EVENT_TIME.get(update.source, "time"), at, now, limits))
    if at < now - timedelta(days=limits.max_past_days):
        raise RejectedInput(_past(_EVENT_TIME.get(update.source, "time"), at, now, limits))
    data = update.data_timestamp
    if data is not None and data > horizon:
        raise RejectedInput(_future("data_timestamp", data, now, limits))
    oldest = update.oldest_data_time
    if oldest is not None and oldest > horizon:
        raise RejectedInput(_future("oldest_data_timestamp", oldest, now, limits))
    seq = update.sequence
    if seq is not None and last_sequence is not None and seq - last_sequence > limits.max_sequence_jump:
        raise RejectedInput(
            f"sequence jump: sequence_number {seq} is more than limits.max_sequence_jump "
            f"({limits.max_sequence_jump}) ahead of the newest one seen for {update.asset_id or 'the table'} "
            f"({last_sequence})"
        )


def admit_probe(result: ProbeResult, now: datetime, limits: InputLimits) -> None:
    """Raise :class:`RejectedInput` when a probe result's times are implausible at ``now`` (its record time)."""
    horizon = now + timedelta(seconds=limits.max_future_s)
    floor = now - timedelta(days=limits.max_past_days)
    for field, value in (("scheduled_at", result.scheduled_at), ("started_at", result.started_at)):
        if value > horizon:
            raise RejectedInput(_future(field, value, now, limits))
        if value < floor:
            raise RejectedInput(_past(field, value, now, limits))


def admit_tick(tick_time: datetime, now: datetime, limits: InputLimits) -> None:
    """Raise :class:`RejectedInput` when a tick's time is implausible at ``now`` (its record time): a far
    future tick would stand for "now" in every freshness verdict and hold back every later tick."""
    if tick_time > now + timedelta(seconds=limits.max_future_s):
        raise RejectedInput(_future("tick_time", tick_time, now, limits))
    if tick_time < now - timedelta(days=limits.max_past_days):
        raise RejectedInput(_past("tick_time", tick_time, now, limits))


def record_time_problem(timestamp_ms: int, not_after_ms: int, limits: InputLimits) -> str:
    """The dead-letter reason of a record whose own timestamp lies beyond the processor's clock + the tolerance
    (the runtime's bound: the core has no clock; "now" is the record's time, so it must be plausible)."""
    at = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat()
    bound = datetime.fromtimestamp(not_after_ms / 1000, tz=UTC).isoformat()
    return (
        f"implausible time: the record timestamp {at} is later than the processor's clock "
        f"+ limits.max_future_s ({limits.max_future_s:g} s): {bound}"
    )


def _rank(f: Finding) -> tuple[int, str]:
    return (-(f.severity.rank if f.severity is not None else -1), f.key)


def bound_findings(ev: Evaluation, limit: int) -> Evaluation:
    """``ev`` with at most ``limit`` findings: the most severe ``limit - 1`` (then by key: the same ones from
    one evaluation to the next) and one finding standing for the rest, firing at their worst severity. Its key
    lies in the evaluation's scope, so it resolves like the others."""
    if len(ev.findings) <= limit:
        return ev
    ranked = sorted(ev.findings, key=_rank)
    kept = {f.key for f in ranked[: limit - 1]}
    rest = ranked[limit - 1 :]
    worst = next((f.severity for f in rest if f.severity is not None), None)
    prefix = ev.scope if ev.scope is not None else f"{ev.check_type.value}:"
    names = ", ".join(f.element or f.key.removeprefix(prefix) for f in rest[:SAMPLE])
    more = f", … (+{len(rest) - SAMPLE} more)" if len(rest) > SAMPLE else ""
    firing = sum(f.severity is not None for f in rest)
    folded = Finding(
        key=f"{prefix}+more",
        severity=worst,
        message=clip(
            f"{len(rest)} more {ev.check_type.value} findings ({firing} failing) beyond limits.max_findings "
            f"({limit}): {names}{more}",
            SAMPLE_CHARS,
        ),
        expected=None,
        actual=f"{len(rest)} findings",
        context={"findings": str(len(rest)), "failing": str(firing)},
    )
    return ev._replace(findings=(*(f for f in ev.findings if f.key in kept), folded))
