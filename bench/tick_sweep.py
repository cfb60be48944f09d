"""One tick over every asset of a partition: how long the processor's event loop is held, sliced vs in one go.

    .venv/bin/python -m bench.tick_sweep [--assets 100000] [--contracts-dir DIR --cache-dir CACHE]

The processor's batch handler (broker stubbed, one partition holding every asset) gets two ticks 10 s apart:
the first starts watching each asset, the second finds each one late (its latency SLA is 1 h in bench/state.py's
contracts, so it is a quiet pass unless the contracts say less). Another task on the same event loop notes the
longest time it had to wait for its turn. Run once with the sweep in slices (``Engine.tick_slice``, the
default) and once in one go, on the same registry.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from bench.state import write_contracts
from floe_stream.contracts.compiled import ContractCache
from floe_stream.processors.engine import TICK_SLICE
from floe_stream.runtime.deployables.app import load_registry, processor_service, tune_gc
from floe_stream.runtime.deployables.outputs import Emitted
from floe_stream.settings import ChecksSettings, KafkaSettings, Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.tick import Tick


class _NoBroker:
    def __init__(self) -> None:
        self.buf = Emitted()
        self.records = 0

    def buffer(self, partition: int) -> Emitted:
        return self.buf

    async def send(self) -> None:
        self.records += len(self.buf.records) + sum(len(lane) for lane in self.buf.lanes.values())
        self.buf = Emitted()


async def sweep(s: Settings, registry: Any, slice_: int, start_ms: int) -> tuple[float, float, int, int]:
    """(seconds the two ticks took, longest wait of another task, its turns, records out)."""
    svc = processor_service(s, registry)
    svc.pipeline.partitions = 1
    enc = svc.encoder
    enc.partitions = {enc.t_results: 1, enc.t_viol: 1, enc.t_dlq: 1}
    stub = _NoBroker()
    svc.strategy = stub  # type: ignore[assignment]
    svc.pipeline.engine.tick_slice = slice_
    topic = topic_name(s.kafka.topic_prefix, TopicKey.TICKS)
    recs = []
    for offset, at in enumerate((start_ms, start_ms + 10_000)):
        body = Tick(tick_time=datetime.fromtimestamp(at / 1000, UTC), interval_s=10, ticker_id="bench")
        recs.append(
            ConsumerRecord(topic, 0, offset, at, 0, b"", body.model_dump_json().encode(), None, 0, 0, [])
        )
    tune_gc()
    done = asyncio.Event()
    longest, turns = 0.0, 0

    async def neighbour() -> None:  # what heartbeats, fetches and /readyz would be
        nonlocal longest, turns
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest, turns, last = max(longest, now - last), turns + 1, now

    other = asyncio.create_task(neighbour())
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    await svc.handle({TopicPartition(topic, 0): recs})
    took = time.perf_counter() - t0
    done.set()
    await other
    return took, longest, turns, stub.records


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument(
        "--contracts-dir", type=Path, default=None, help="bench/state.py's contracts, written before"
    )
    ap.add_argument("--cache-dir", type=Path, default=None, help="their compiled forms, kept across runs")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="floe-bench-tick-"))
    contracts = a.contracts_dir or write_contracts(tmp / "contracts", a.assets, 1000, "user")
    s = Settings(
        kafka=KafkaSettings(topic_prefix="bench."),
        contracts_dir=contracts,
        health_port=-1,
        clock_skew_s=0,
        checks=ChecksSettings(contracts_cache_dir=a.cache_dir or tmp / "cache"),
    )
    t = time.perf_counter()
    registry = load_registry(s, ContractCache.configured(s.checks.contracts_cache_dir))
    n = len(registry.assets_in_partition(0, 1))
    print(f"{n:,} assets in one partition (loaded in {time.perf_counter() - t:.1f} s)")
    start = int(time.time() * 1000) - 60_000
    for label, slice_ in ((f"in slices of {TICK_SLICE:,}", TICK_SLICE), ("in one go", 10**12)):
        took, longest, turns, out = await sweep(s, registry, slice_, start)
        print(
            f"two ticks {label}: {took:.2f} s ({took / 2 / n * 1e6:.1f} µs an asset), {out:,} records out; "
            f"another task waited at most {longest * 1000:.0f} ms for its turn ({turns:,} turns)"
        )


if __name__ == "__main__":
    asyncio.run(main())
