"""The processor of an older commit against this tree's, in one run on one broker (throughput and latency).

    .venv/bin/python -m bench.versus [--against 2f1efa3] [--pairs 2] [--events 100000] [--rate 1000]
                                     [--seconds 10] [--broker kafka|tansu]

Both sides run the same way, as `floe run processor` in its own process with the same environment and this
venv's interpreter and dependencies: the older commit's ``src/`` is extracted with ``git archive`` into a
temporary folder and put first on its ``PYTHONPATH``. The rows alternate ABBA (old, new, new, old, …) so that a
change of the machine's load, and the broker's growing number of topics, hit both sides alike:

  throughput: ``--events`` pre-filled materialization events (64 assets, 6 partitions, freshness contract)
              drained by the processor; events/s from its first to its last committed offset (commit interval
              100 ms, polled every 50 ms), and the CPU time the processor process used for the whole run
              (start-up included) per event: on a shared machine the neighbours' load moves events/s a lot
              and CPU per event little;
  latency:    bench.processor's event → violation row (open-loop ``--rate`` for ``--seconds``, 1 in 10 events
              changes its asset's schema: a drift opens, the previous one resolves).

Default ``--against`` is the last commit before the architecture step of issue 14 (sinks on one runtime,
telemetry that wraps, one record router).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from bench.common import pct
from bench.processor import (
    ASSETS,
    Brokers,
    contract_dir,
    prefill,
    print_gc,
    processor_cmd,
    processor_env,
    processor_latency,
    warm_broker,
)
from floe_stream.runtime.devtools.embedded import BROKER_KINDS
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.topics import TopicKey, topic_name

REPO = Path(__file__).resolve().parents[1]


def extract(commit: str, into: Path) -> Path:
    """The ``src/`` of ``commit`` (``git archive``), without touching the work tree."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def head() -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip()


async def committed(k: KafkaSettings, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=k.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:  # the group does not exist yet (no coordinator): nothing committed
        return 0
    finally:
        await admin.close()
    mat = topic_name(k.topic_prefix, TopicKey.MATERIALIZATIONS)
    return sum(m.offset for tp, m in offsets.items() if tp.topic == mat and m.offset > 0)


async def dead_letters(k: KafkaSettings) -> int:
    """Records on the dead-letter topic: a side that dead-letters the bench's events measures nothing."""
    consumer = AIOKafkaConsumer(bootstrap_servers=k.bootstrap_servers)
    await consumer.start()
    try:
        dlq = topic_name(k.topic_prefix, TopicKey.DLQ)
        ends = await consumer.end_offsets([TopicPartition(dlq, p) for p in range(k.partitions)])
    finally:
        await consumer.stop()
    return sum(ends.values())


async def throughput(s: Settings, n: int, src: Path | None, log: Path) -> tuple[float, float]:
    """(events/s, CPU µs per event of the processor process)."""
    await prefill(s, n)
    group = f"{s.kafka.group_prefix}-tp-processor"
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = usage.ru_utime + usage.ru_stime
    with open(log, "ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            *processor_cmd(src), env=processor_env(s, "-tp", src), stdout=fh, stderr=fh
        )
    try:
        first = 0
        deadline = time.monotonic() + 300
        while (done := await committed(s.kafka, group)) == 0:
            if time.monotonic() > deadline or proc.returncode is not None:
                raise RuntimeError(f"the processor committed nothing (see {log})")
            await asyncio.sleep(0.05)
        first, t0 = done, time.perf_counter()
        while done < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the processor committed {done} of {n} (see {log})")
            await asyncio.sleep(0.05)
            done = await committed(s.kafka, group)
        elapsed = time.perf_counter() - t0
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_us = (usage.ru_utime + usage.ru_stime - cpu_before) / n * 1e6
    if dead := await dead_letters(s.kafka):
        raise RuntimeError(f"{dead} events dead-lettered (see {log}): the sides must read the same events")
    return (n - first) / elapsed, cpu_us


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", default="2f1efa3", help="the older commit")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--broker", choices=BROKER_KINDS, default="kafka")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--only", choices=("throughput", "latency"), default=None)
    ap.add_argument("--broker-jvm", choices=("script", "test"), default="test", help="as bench.processor's")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="floe-versus-"))
    old_src = extract(a.against, tmp / "old")
    sides: list[tuple[str, Path | None]] = [
        (f"old {a.against}", old_src),
        (f"new {head()} + work tree", None),
    ]
    print(
        f"broker {a.broker}; {a.events} events, {len(ASSETS)} assets, {a.partitions} partitions; {a.pairs} pairs"
    )

    def kafka_on(bootstrap: str, prefix: str) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"{prefix}.", group_prefix=prefix,
                             partitions=a.partitions, fetch_max_wait_ms=5, session_timeout_ms=6000,
                             heartbeat_interval_ms=1000, linger_ms=5, commit_interval_ms=100)  # fmt: skip

    eps: dict[str, list[float]] = {name: [] for name, _ in sides}
    cpu: dict[str, list[float]] = {name: [] for name, _ in sides}
    lat: dict[str, list[float]] = {name: [] for name, _ in sides}
    p99: dict[str, list[float]] = {name: [] for name, _ in sides}
    with Brokers(a.broker, tmp, a.broker_jvm) as brokers:
        if a.only != "throughput" and a.broker_jvm == "script":
            await warm_broker(brokers, kafka_on, a.rate, 20, a.partitions)
        for i in range(a.pairs):
            # ABBA: the side that runs first alternates, as the shared broker holds more topics with every row
            for j, (name, src) in enumerate(sides if i % 2 == 0 else sides[::-1]):
                tag = f"v{i}{j}"
                if a.only != "latency":
                    with brokers.row(f"{tag}t") as (broker, prefix):
                        s = Settings(kafka=kafka_on(broker.bootstrap, prefix), health_port=-1, clock_skew_s=0,
                                     contracts_dir=contract_dir(tmp / f"c-{prefix}", 3600))  # fmt: skip
                        r, us = await throughput(s, a.events, src, tmp / f"{prefix}.log")
                    eps[name].append(r)
                    cpu[name].append(us)
                    print(
                        f"pair {i + 1} {name:<28} throughput {r:10,.0f} events/s  CPU {us:5.1f} µs/event",
                        flush=True,
                    )
                if a.only != "throughput":
                    with brokers.row(f"{tag}l") as (broker, prefix):
                        k = kafka_on(broker.bootstrap, prefix).model_copy(update={"commit_interval_ms": 1000})
                        await ensure_topics(k)
                        s = Settings(kafka=k, health_port=-1, clock_skew_s=0,
                                     contracts_dir=contract_dir(tmp / f"c-{prefix}", 60))  # fmt: skip
                        spans: list[tuple[float, float]] = []
                        got = await processor_latency(
                            s, a.rate, a.seconds, tmp / f"{prefix}.log", 10, src, spans=spans
                        )
                    lat[name].extend(got)
                    p99[name].append(pct(got, 99))
                    print(
                        f"pair {i + 1} {name:<28} event→violation p50 {pct(got, 50):6.1f} ms  "
                        f"p99 {pct(got, 99):6.1f} ms",
                        flush=True,
                    )
                    print_gc(brokers.gc_line(spans))
    print("\nsummary (median over the pairs; latency percentiles over every sample of a side)")
    for name, _ in sides:
        line = f"  {name:<28}"
        if eps[name]:
            line += f" throughput {statistics.median(eps[name]):10,.0f} events/s"
            line += f"  CPU {statistics.median(cpu[name]):5.1f} µs/event"
        if lat[name]:
            line += f"  p50 {pct(lat[name], 50):6.1f} ms  p99 {pct(lat[name], 99):6.1f} ms"
            line += f"  (p99 per pair: {', '.join(f'{x:.1f}' for x in p99[name])})"
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
