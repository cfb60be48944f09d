"""Shared bench helpers: an embedded broker, fast producers, percentile maths."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary(values: Sequence[float]) -> str:
    return f"n={len(values)} p50={pct(values, 50):.2f} p90={pct(values, 90):.2f} p99={pct(values, 99):.2f} mean={statistics.fmean(values):.2f}"


async def fill(producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[int, bytes, bytes]]) -> None:
    """Produce (partition, key, value) records fast: one send_batch per partition chunk."""
    by_part: dict[int, list[tuple[bytes, bytes]]] = {}
    for p, k, v in records:
        by_part.setdefault(p, []).append((k, v))
    futures = []
    for p, items in by_part.items():
        batch = producer.create_batch()
        for k, v in items:
            if batch.append(key=k, value=v, timestamp=None) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=p))
                batch = producer.create_batch()
                batch.append(key=k, value=v, timestamp=None)
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=p))
    for f in futures:
        await f


def _schedstat(pid: int) -> tuple[int, int, int] | None:
    """(ns on a CPU, ns runnable but waiting for one, times scheduled) summed over the threads of ``pid``
    (Linux /proc/<pid>/task/*/schedstat); None where the kernel does not keep them."""
    total = [0, 0, 0]
    try:
        for f in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with open(f) as fh:
                for i, v in enumerate(fh.read().split()[:3]):
                    total[i] += int(v)
    except OSError:
        return None
    return (total[0], total[1], total[2]) if any(total) else None


def _box() -> tuple[int, int] | None:
    """(busy, total) jiffies of every core since boot (Linux /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


class CoreTime:
    """How a process spent a span of wall time: on a CPU, or runnable but waiting for a core. On a box with
    fewer cores than runnable threads (broker, bench and the process under test on 2 cores), the waiting is
    latency no code change in that process removes: it tells a busy box from a slow process."""

    def __init__(self, pid: int) -> None:
        self.pid, self.t0, self.start, self.box = pid, time.monotonic(), _schedstat(pid), _box()

    def line(self, who: str) -> str:
        end, wall = _schedstat(self.pid), time.monotonic() - self.t0
        if self.start is None or end is None or wall <= 0:
            return f"  {who}: no scheduler statistics here"
        cpu, wait, n = (b - a for a, b in zip(self.start, end, strict=True))
        box, box_end = self.box, _box()
        cores = (
            f"; all {os.cpu_count()} cores {(box_end[0] - box[0]) / (box_end[1] - box[1]):.0%} busy"
            if box is not None and box_end is not None and box_end[1] > box[1]
            else ""
        )
        return (
            f"  {who}: on a CPU {cpu / 1e9 / wall:.0%} of the time, runnable but waiting for a core "
            f"{wait / 1e9 / wall:.0%} ({n / wall:,.0f} times scheduled a second){cores}"
        )
