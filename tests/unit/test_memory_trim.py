"""The processor hands freed memory back after work, not while idle, and not more often than its interval."""

from __future__ import annotations

from floe_stream.runtime.memory import MemoryTrimmer


def test_trims_after_work_at_most_once_per_interval() -> None:
    trimmer = MemoryTrimmer(min_interval_s=3600)
    available = trimmer._trim is not None  # glibc here; a no-op elsewhere
    assert trimmer.when_idle() is False  # nothing handled since start: nothing to give back
    trimmer.busy = True
    assert trimmer.when_idle() is available
    trimmer.busy = True
    assert trimmer.when_idle() is False or not available  # within the interval: not again
    assert trimmer.now() is available  # after a restore: at once
