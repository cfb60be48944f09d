"""The values of an ODCS contract that carry a unit, other than durations (those are read by
:mod:`floe_stream.durations`, the one duration parser): availability percentages, dates, times of day, zones.

Each reader raises ValueError with a message naming the bad value; the callers add where it is.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from floe_stream.durations import number

__all__ = ["availability_ratio", "parse_datetime", "time_of_day", "zone_of"]


def availability_ratio(value: object, unit: str | None = None) -> float:
    """Availability as a ratio: ``"99.9%"``, ``99.9`` (above 1 means percent) and ``0.999`` give 0.999."""
    percent = bool(unit) and str(unit).strip().lower() in ("%", "percent")
    if unit and not percent:
        raise ValueError(f"unit {unit!r} is not a percentage unit (use '%' or 'percent', or no unit)")
    number_part = value
    if isinstance(value, str) and value.strip().endswith("%"):
        number_part, percent = value.strip()[:-1], True
    amount = number(number_part, "a percentage such as '99.9%' or a ratio such as 0.999")
    ratio = round(amount / 100, 12) if percent or amount > 1 else amount  # 99.9 / 100 → 0.999, not 0.99900…01
    if not 0 < ratio <= 1:
        raise ValueError(f"value {value!r} is not an availability between 0 and 100%")
    return ratio


def parse_datetime(value: object) -> datetime:
    """An ISO-8601 date or timestamp; a date or a naive time is taken as UTC."""
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"value {value!r} is not an ISO-8601 date or timestamp (e.g. '2032-05-12T09:30:10-08:00')"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_TIME_WITH_OFFSET = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(Z|[+-]\d{2}:?\d{2})?$")


def time_of_day(value: object) -> tuple[time, str | None]:
    """``09:00``, ``09:00:30``, ``09:00Z``, ``09:00-08:00``: the wall-clock time and its fixed offset as a zone
    name (``UTC``, ``-08:00``), None when the value names none."""
    text = str(value).strip()
    m = _TIME_WITH_OFFSET.match(text)
    if not m:
        raise ValueError(f"value {text!r} is not a time of day such as '09:00', '09:00-08:00' or '09:00Z'")
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"value {text!r} is not a time of day")
    offset = m.group(4)
    zone = None
    if offset:
        zone = "UTC" if offset == "Z" else (offset if ":" in offset else f"{offset[:3]}:{offset[3:]}")
    return time(hour, minute, second), zone


def zone_of(name: str) -> tzinfo:
    """An IANA zone (DST-aware) or a fixed offset such as ``-08:00``."""
    if name[:1] in "+-" and len(name) == 6:
        sign = -1 if name[0] == "-" else 1
        return timezone(sign * timedelta(hours=int(name[1:3]), minutes=int(name[4:6])))
    return ZoneInfo(name)
