"""One duration parser and one human formatter for every command line flag and report.

``parse_duration`` takes ``90d``, ``2w``, ``36h``, ``30m``, ``45s``, ``1.5h``, ``4h30m`` (units may be combined)
and ISO 8601 durations (``PT6H``, ``P1D``, ``P2W``, ``P1DT12H``). ``human_duration`` writes ``4h 30m``.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_COMPACT = re.compile(r"^(?:(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*)+$", re.IGNORECASE)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
EXAMPLES = "90d, 2w, 36h, 30m, 4h30m or ISO 8601 PT6H"


def parse_duration(text: str) -> timedelta:
    """A positive duration; ValueError naming the value and the accepted forms otherwise."""
    t = text.strip()
    seconds: float | None = None
    if _COMPACT.match(t):
        seconds = sum(float(n) * _UNIT_S[u.lower()] for n, u in _PART.findall(t))
    else:
        m = _ISO.match(t)
        if m and t.upper() not in ("P", "PT") and not t.upper().endswith("T"):
            seconds = sum(float(v) * _UNIT_S[k] for k, v in m.groupdict().items() if v)
    if seconds is None:
        raise ValueError(f"{text!r} is not a duration (use e.g. {EXAMPLES})")
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration (use e.g. {EXAMPLES})")
    return timedelta(seconds=seconds)


def human_duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``4h 30m``, ``3d 4h``; ``—`` for None."""
    if seconds is None:
        return "—"
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


def window_label(td: timedelta) -> str:
    """A compact label of a window: 7d, 14d (for 2w), 36h, 90m."""
    s = int(td.total_seconds())
    for unit in ("d", "h", "m"):
        if s % _UNIT_S[unit] == 0:
            return f"{s // _UNIT_S[unit]}{unit}"
    return f"{s}s"
