"""The one duration parser and the one duration formatter: command line flags, contracts, checks, reports, alerts.

One grammar, read by every caller:

- a number with a time unit, units may be combined: ``90d``, ``2w``, ``36h``, ``30m``, ``45s``, ``1.5h``,
  ``4h30m``, ``30 min``, ``2 weeks``, ``500ms``; units are ``ns``, ``us``/``µs``, ``ms``/``millisecond(s)``,
  ``s``/``sec``/``second(s)``, ``m``/``min``/``minute(s)``, ``h``/``hr``/``hour(s)``, ``d``/``day(s)``,
  ``w``/``week(s)``, ``month(s)`` (30 days), ``y``/``yr``/``year(s)`` (365 days), in any case;
- an ISO 8601 duration: ``PT6H``, ``P1D``, ``P2W``, ``P1DT12H``, ``PT0.5S``, ``P1M`` (30 days), ``P1Y``
  (365 days).

An ODCS SLA writes one as ``value`` + ``unit`` (``500`` + ``ms``), as a value with its unit in it
(``'500ms'``, ``'6 hours'``) or as ISO 8601 (``PT6H``): :func:`duration_seconds` reads all three.

:func:`parse_duration` reads a flag's text, :func:`duration_seconds` an ODCS SLA ``value`` + ``unit`` pair,
:func:`interval_seconds` a ``floe`` setting (a bare number is seconds there). A plain number without a unit is
refused everywhere else: seconds and days would both be guesses.

:func:`format_duration` writes one, in the style the caller's reader expects (see :data:`DurationStyle`).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Literal

import isodate

__all__ = [
    "EXAMPLES",
    "DurationStyle",
    "duration_seconds",
    "format_duration",
    "interval_seconds",
    "number",
    "parse_duration",
]

_DAY = 86_400.0
UNITS: dict[str, float] = {
    **dict.fromkeys(("ns", "nanosecond", "nanoseconds"), 1e-9),
    **dict.fromkeys(("us", "µs", "μs", "microsecond", "microseconds"), 1e-6),
    **dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), 1e-3),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600.0),
    **dict.fromkeys(("d", "day", "days"), _DAY),
    **dict.fromkeys(("w", "week", "weeks"), 7 * _DAY),
    **dict.fromkeys(("month", "months"), 30 * _DAY),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * _DAY),
}
"""Seconds per time unit (lower case)."""

_NUMBER = r"\d+(?:\.\d+)?"
_LETTERS = "[a-zµμ]+"
_PART = re.compile(rf"({_NUMBER})\s*({_LETTERS})", re.IGNORECASE)
_COMPACT = re.compile(rf"^\s*(?:{_NUMBER}\s*{_LETTERS}\s*)+$", re.IGNORECASE)
_ONE_PART = re.compile(rf"^\s*({_NUMBER})\s*({_LETTERS})\s*$", re.IGNORECASE)
_UNIT_NAMES = "ms, s, m, h, d, w or y"
EXAMPLES = "90d, 2w, 36h, 30m, 4h30m or ISO 8601 PT6H"


# --- parsing ----------------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """A positive duration; ValueError naming the value and the accepted forms otherwise."""
    t = text.strip()
    seconds = _compact_seconds(t)
    if seconds is None and t[:1] in ("P", "p") and not t.upper().endswith("T"):
        try:
            seconds = _iso_seconds(t.upper())
        except ValueError:
            seconds = None
    if seconds is None:
        raise ValueError(f"{text!r} is not a duration (use e.g. {EXAMPLES})")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{text!r} is not a positive duration (use e.g. {EXAMPLES})")
    return timedelta(seconds=seconds)


def duration_seconds(value: object, unit: str | None = None) -> float:
    """Seconds in an SLA duration: a number with a time unit (``4`` + ``d``, ``500`` + ``ms``), a value with
    its unit in it (``'500ms'``, ``'6 hours'``, ``'4h30m'``) or ISO 8601 (``PT6H``).

    Raises ValueError with a message that names the bad value or unit.
    """
    text = value.strip() if isinstance(value, str) else None
    if text and text[:1] in ("P", "p") and not _COMPACT.match(text):
        if unit:
            raise ValueError(f"value {text!r} is an ISO-8601 duration, so unit {unit!r} must be left out")
        seconds = _iso_seconds(text.upper())
    elif text and _COMPACT.match(text):  # the unit is in the value: '500ms', '6 hours', '4h30m'
        one = _ONE_PART.match(text)
        if one and UNITS.get(one.group(2).lower()) is None:
            raise ValueError(f"value {text!r}: {one.group(2)!r} is not a time unit (use {_UNIT_NAMES})")
        found = _compact_seconds(text)
        if found is None:
            raise ValueError(f"value {text!r} is not a duration (use e.g. {EXAMPLES})")
        if unit and unit.strip().lower() != (one.group(2).lower() if one else ""):
            raise ValueError(f"value {text!r} already has a unit, so unit {unit!r} must be left out")
        seconds = found
    else:
        amount = number(value, "a number with a unit or an ISO-8601 duration such as 'PT6H'")
        if not unit:
            raise ValueError(
                f"value {value!r} has no unit; add a unit ({_UNIT_NAMES}) or write an ISO-8601 duration such as 'PT6H'"
            )
        factor = UNITS.get(unit.strip().lower())
        if factor is None:
            raise ValueError(f"unit {unit!r} is not a time unit (use {_UNIT_NAMES})")
        seconds = amount * factor
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"value {value!r} is not a positive duration")
    return seconds


def interval_seconds(value: object) -> float:
    """Seconds in a ``floe`` duration setting: a number of seconds, ``"6h"``, ``"30 min"``, ``"4h30m"`` or
    ``"PT6H"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return duration_seconds(value, "s")
    if isinstance(value, str):
        one = _ONE_PART.match(value)
        if one:  # "30 min": the unit's own message when it is not a time unit
            return duration_seconds(one.group(1), one.group(2))
        seconds = _compact_seconds(value)
        if seconds is not None and math.isfinite(seconds) and seconds > 0:
            return seconds
        return duration_seconds(value)
    raise ValueError(f"value {value!r} is not a duration (e.g. 3600, '6h', 'PT6H')")


def number(value: object, expected: str) -> float:
    """``value`` as a float (a number or its text); ValueError ``value … is not <expected>`` otherwise."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"value {value!r} is not {expected}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise ValueError(f"value {value!r} is not {expected}") from None


def _compact_seconds(text: str) -> float | None:
    """``4h30m``, ``30 min``, ``1.5h`` in seconds; None when ``text`` is not of that form or names an unknown
    unit."""
    if not _COMPACT.match(text):
        return None
    total = 0.0
    for amount, unit in _PART.findall(text):
        factor = UNITS.get(unit.lower())
        if factor is None:
            return None
        total += float(amount) * factor
    return total


def _iso_seconds(text: str) -> float:
    """Seconds in an ISO 8601 duration (a year is 365 days, a month 30 days)."""
    try:
        parsed = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError):
        raise ValueError(f"value {text!r} is not a valid ISO-8601 duration (e.g. 'PT6H', 'P1D')") from None
    if isinstance(parsed, isodate.Duration):  # has years/months
        seconds = float(parsed.tdelta.total_seconds()) + float(parsed.years) * 365 * _DAY
        return seconds + float(parsed.months) * 30 * _DAY
    return float(parsed.total_seconds())


# --- formatting -------------------------------------------------------------------------------------

DurationStyle = Literal["age", "exact", "report", "decimal"]
"""How :func:`format_duration` writes a duration, by what the reader does with it:

- ``age`` (the default): a measured age or span in a violation or an alert, two units, zero-padded, so that
  a value and its threshold line up: ``40s``, ``4m05s``, ``1h00m``, ``2d03h``;
- ``exact``: a declared setting or window echoed back without rounding, in the largest unit that divides it:
  ``6h``, ``90m``, ``7d``, ``1.5s``;
- ``report``: a table cell of a compliance report, at most two units, small ones dropped: ``45s``, ``12m``,
  ``4h 30m``, ``3d 4h``;
- ``decimal``: a column of comparable numbers, one unit with one decimal: ``10.0s``, ``1.0h``, ``2.5d``.
"""


def format_duration(value: float | timedelta, style: DurationStyle = "age") -> str:
    """``value`` (seconds or a timedelta) as text in ``style``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return _STYLES[style](seconds)


def format_age(seconds: float) -> str:
    """``format_duration(seconds)`` (the ``age`` style) without the style lookup: the freshness check formats
    an age per event (bench/processor_cpu.py)."""
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    s = round(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 172_800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def _exact(seconds: float) -> str:
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _report(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m}m" if m >= 10 or not r else f"{m}m {r}s"
    if s < 86400:
        h, r = divmod(s, 3600)
        return f"{h}h {r // 60}m" if r // 60 else f"{h}h"
    d, r = divmod(s, 86400)
    return f"{d}d {r // 3600}h" if r // 3600 else f"{d}d"


def _decimal(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


_STYLES = {"age": format_age, "exact": _exact, "report": _report, "decimal": _decimal}
