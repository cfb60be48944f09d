"""The Apache Kafka broker's stop-the-world pauses, read from its GC log, beside a latency row.

A broker started with ``ApacheKafka(gc_log=...)`` writes one line per pause (``-Xlog:gc:...:timemillis``):

    [1765091234567ms] GC(12) Pause Young (Normal) (G1 Evacuation Pause) 115M->69M(1024M) 6.396ms

The line is written when the pause ends; its duration is the last field. While the broker is paused nothing is
appended and no fetch is answered, so every record in flight waits, and the records behind it queue: a latency
row's p99 over 1% of its samples is decided by a handful of pauses. :func:`summary` says how many pauses fell
inside a row and what the samples that crossed none of them measure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.common import pct

_PAUSE = re.compile(r"^\[(\d+)ms\].*\bPause\b.*\s([\d.]+)ms\s*$")


@dataclass(frozen=True, slots=True)
class Pause:
    start_ms: float
    end_ms: float

    @property
    def ms(self) -> float:
        return self.end_ms - self.start_ms


def read(path: Path) -> list[Pause]:
    """Every stop-the-world pause in the log (young, mixed, full, remark, cleanup), in order; none if absent."""
    if not path.exists():
        return []
    pauses = []
    for line in path.read_text(errors="replace").splitlines():
        m = _PAUSE.match(line)
        if m:
            end, took = float(m.group(1)), float(m.group(2))
            pauses.append(Pause(end - took, end))
    return pauses


def within(pauses: list[Pause], t0_ms: float, t1_ms: float) -> list[Pause]:
    return [p for p in pauses if p.end_ms > t0_ms and p.start_ms < t1_ms]


def crossed(pauses: list[Pause], t_in_ms: float, t_out_ms: float) -> bool:
    """Whether the broker paused while this sample was on its way (input CreateTime → received)."""
    return any(p.end_ms > t_in_ms and p.start_ms < t_out_ms for p in pauses)


def clear(pauses: list[Pause], spans: list[tuple[float, float]]) -> list[float]:
    """The latencies of the samples that crossed no pause."""
    return [out - t_in for t_in, out in spans if not crossed(pauses, t_in, out)]


def summary(pauses: list[Pause], spans: list[tuple[float, float]]) -> str:
    """One line for a latency row: the broker's pauses during its samples (``spans``: (input ms, received ms)),
    and the p50/p99 of the samples that crossed none."""
    if not spans:
        return "  the broker's GC pauses: no samples"
    t0, t1 = min(s[0] for s in spans), max(s[1] for s in spans)
    during = within(pauses, t0, t1)
    if not during:
        return f"  the broker's GC pauses while the row ran: none in {(t1 - t0) / 1000:.1f} s"
    others = clear(during, spans)
    longest = max(p.ms for p in during)
    total = sum(p.ms for p in during)
    return (
        f"  the broker's GC pauses while the row ran: {len(during)} in {(t1 - t0) / 1000:.1f} s, longest "
        f"{longest:.1f} ms, {total:.0f} ms in all; {len(spans) - len(others)} of {len(spans)} samples crossed "
        f"one; the others p50={pct(others, 50):.2f} p99={pct(others, 99):.2f} ms"
    )
