"""Shared bench helpers: an embedded broker, fast producers, percentile maths."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

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
