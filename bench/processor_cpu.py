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
from floe_stream.runtime.deployables.app import load_registry, processor_service, tune_gc
from floe_stream.runtime.deployables.outputs import Emitted
from floe_stream.runtime.deployables.processor import ProcessorService
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for

PARTITIONS = 6


class _NoBroker:
    """The commit strategy with Kafka taken out: outputs are encoded into a buffer, then dropped."""

    def __init__(self) -> None:
        self.buf = Emitted()

    def buffer(self, partition: int) -> Emitted:
        return self.buf

    async def send(self) -> None:
        self.buf = Emitted()

    def finish(self, offsets: Any, changes: Any, commit_offsets: Any) -> None:
        return None  # the changelog write is I/O: not measured here


def _batches(t_mat: str, mode: str, n: int, size: int) -> list[dict[TopicPartition, list[Any]]]:
    now = int(time.time() * 1000)
    flat: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes]]] = []
    offsets: dict[int, int] = {}
    for i in range(n):
        a = ASSETS[i % len(ASSETS)]
        drift = mode == "drift" or (mode == "mix" and (i // len(ASSETS)) % 10 == 0)
        p = partition_for(a, PARTITIONS)
        off = offsets[p] = offsets.get(p, -1) + 1
        rec = ConsumerRecord(
            t_mat, p, off, now + i // 1000, 0, a.encode(), event(i, a, drift=True if drift else None),
            None, 0, 0, [],
        )  # fmt: skip
        flat.append((TopicPartition(t_mat, p), rec))
    out = []
    for j in range(0, n, size):
        b: dict[TopicPartition, list[Any]] = {}
        for tp, r in flat[j : j + size]:
            b.setdefault(tp, []).append(r)
        out.append(b)
    return out


async def run(mode: str, n: int, size: int, profile: Path | None) -> float:
    with tempfile.TemporaryDirectory(prefix="floe-bench-cpu-") as d:  # its contracts only: removed after
        return await _run(Path(d), mode, n, size, profile)


async def _run(tmp: Path, mode: str, n: int, size: int, profile: Path | None) -> float:
    s = Settings(
        kafka=KafkaSettings(topic_prefix="bench.", partitions=6),
        contracts_dir=contract_dir(tmp / "c", 3600 if mode == "fresh" else 60),
        health_port=-1,
        clock_skew_s=0,
    )
    svc = processor_service(s, load_registry(s))
    svc.pipeline.partitions = PARTITIONS
    enc = svc.encoder
    enc.partitions = {enc.t_results: PARTITIONS, enc.t_viol: PARTITIONS, enc.t_dlq: PARTITIONS}
    kafka_strategy, svc.strategy = svc.strategy, _NoBroker()  # type: ignore[assignment]
    try:
        return await _time(svc, s, mode, n, size, profile)
    finally:  # its Kafka clients were never started: closed, so none is reported unclosed at exit
        await kafka_strategy.close()
        await svc.consumer.stop()
        if svc.producer is not None:
            await svc.producer.stop()


async def _time(
    svc: ProcessorService, s: Settings, mode: str, n: int, size: int, profile: Path | None
) -> float:
    batches = _batches(topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS), mode, n, size)
    tune_gc()
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    for b in batches:
        await svc.handle(b)
        svc.finish({})  # the state changes are taken (their changelog write is I/O: not measured)
    if prof and profile:
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
