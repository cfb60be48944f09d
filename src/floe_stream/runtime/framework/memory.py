"""Hand freed memory back to the system (glibc's ``malloc_trim``), where there is much of it to hand back.

A processor that restored 100,000 states or drained a backlog of 200,000 events freed most of what it
allocated meanwhile (records, decoded events, outputs), but glibc keeps freed heap pages mapped: bench/state.py
measured the RSS it keeps. ``malloc_trim(0)`` returns the free pages; it is called after a restore and when
the processor goes idle after a busy spell, at most once every ``MIN_INTERVAL_S``. A no-op where the C library
has no ``malloc_trim`` (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

__all__ = ["MemoryTrimmer"]

MIN_INTERVAL_S = 30.0
QUIET_S = 2.0
"""Idle for this long after the last work: a drained backlog, not a gap between two records of a stream (a trim
pauses the loop for milliseconds: never in a steady stream, bench/versus.py)."""


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class MemoryTrimmer:
    def __init__(self, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self._trim = _malloc_trim()
        self.min_interval_s = min_interval_s
        self._last = -min_interval_s
        self._worked = 0.0
        self.busy = False
        """Whether there was work since the last trim (an idle processor trims nothing)."""

    def worked(self) -> None:
        """The caller handled work (a batch) just now."""
        self.busy = True
        self._worked = time.monotonic()

    def now(self) -> bool:
        """Trim now (after a restore). Returns whether anything was called."""
        if self._trim is None:
            return False
        self._trim(0)
        return True

    def when_idle(self) -> bool:
        """Trim if there was work since the last idle trim, none for ``QUIET_S`` and that trim is
        ``min_interval_s`` old."""
        if not self.busy:
            return False
        t = time.monotonic()
        if t - self._worked < QUIET_S or t - self._last < self.min_interval_s:
            return False
        self.busy = False
        self._last = t
        return self.now()
