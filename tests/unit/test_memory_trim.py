"""The processor hands freed memory back after work, not while idle, and not more often than its interval."""

from __future__ import annotations

import pytest

from floe_stream.runtime.framework import memory
from floe_stream.runtime.framework.memory import MemoryTrimmer


def test_trims_after_work_once_quiet_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    calls: list[int] = []
    trimmer = MemoryTrimmer(min_interval_s=30)
    trimmer._trim = lambda pad: calls.append(pad) or 1
    assert trimmer.when_idle() is False  # nothing handled since start: nothing to give back
    trimmer.worked()
    clock[0] += 0.5
    assert trimmer.when_idle() is False  # a gap between two records of a stream: no trim
    clock[0] += memory.QUIET_S
    assert trimmer.when_idle() is True and calls == [0]  # quiet after work: the freed pages go back
    trimmer.worked()
    clock[0] += memory.QUIET_S
    assert trimmer.when_idle() is False  # within the interval: not again
    clock[0] += 30
    assert trimmer.when_idle() is True and calls == [0, 0]
    assert trimmer.now() is True  # after a restore: at once
