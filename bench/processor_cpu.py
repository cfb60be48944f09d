"""CPU per event of the processor's batch handler, broker stubbed: decode → resolve → checks → episodes →
check result / CloudEvent bytes. What is left of a processor's per-event cost once Kafka I/O is taken out.

    .venv/bin/python -m bench.processor_cpu [--events 20000] [--batch 500] [--profile FILE]

Three workloads over the 64 assets of bench/processor.py: ``fresh`` (every event a quiet freshness pass:
the common case), ``mix`` (1 in 10 events changes the schema: a drift violation opens, the previous one
resolves) and ``drift`` (every event does).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from bench.processor import ASSETS, contract_dir, event
from floe_stream.runtime.app import load_registry, tune_gc
from floe_stream.runtime.processor import ProcessorService
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.topics.partitioning import partition_for


class _NoBroker:
    async def enqueue(self, records: Any, lanes: Any = None) -> list[Any]:
        return []

    async def send_all(self, records: Any, lanes: Any = None) -> None:
        return None


def _batches(svc: ProcessorService, mode: str, n: int, size: int) -> list[dict[TopicPartition, list[Any]]]:
    now = int(time.time() * 1000)
    flat: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes]]] = []
    offsets: dict[int, int] = {}
    for i in range(n):
        a = ASSETS[i % len(ASSETS)]
        drift = mode == "drift" or (mode == "mix" and (i // len(ASSETS)) % 10 == 0)
        p = partition_for(a, svc.partitions)
        off = offsets[p] = offsets.get(p, -1) + 1
        rec = ConsumerRecord(
            svc.t_mat, p, off, now + i // 1000, 0, a.encode(), event(i, a, drift=True if drift else None),
            None, 0, 0, [],
        )  # fmt: skip
        flat.append((TopicPartition(svc.t_mat, p), rec))
    out = []
    for j in range(0, n, size):
        b: dict[TopicPartition, list[Any]] = {}
        for tp, r in flat[j : j + size]:
            b.setdefault(tp, []).append(r)
        out.append(b)
    return out


async def run(mode: str, n: int, size: int, profile: Path | None) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="floe-bench-cpu-"))
    s = Settings(
        kafka=KafkaSettings(topic_prefix="bench.", partitions=6),
        contracts_dir=contract_dir(tmp / "c", 3600 if mode == "fresh" else 60),
        health_port=-1,
        clock_skew_s=0,
    )
    svc = ProcessorService(s, load_registry(s))
    svc.partitions = svc.pipeline.partitions = 6
    enc = svc.encoder
    enc.partitions = {enc.t_results: 6, enc.t_viol: 6, enc.t_dlq: 6}
    svc.batch_producer = _NoBroker()  # type: ignore[assignment]
    batches = _batches(svc, mode, n, size)
    tune_gc()
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    for b in batches:
        await svc.handle(b)
        tail = svc.take_tail()
        if asyncio.iscoroutine(tail):
            tail.close()  # the changelog write is I/O: not measured here
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    return (time.perf_counter() - t0) / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--profile", type=Path, default=None, help="cProfile the 'fresh' workload into FILE")
    a = ap.parse_args()
    for mode in ("fresh", "mix", "drift"):
        n = a.events if mode != "drift" else max(640, a.events // 10)
        us = await run(mode, n, a.batch, a.profile if mode == "fresh" else None)
        print(
            f"{mode:>5}: {us:6.1f} µs/event of handler CPU ({1e6 / us:,.0f} events/s per core), batch {a.batch}"
        )


if __name__ == "__main__":
    asyncio.run(main())
