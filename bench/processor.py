"""Processor benchmark on Apache Kafka or Tansu, next to raw aiokafka baselines in the same run.

    .venv/bin/python -m bench.processor [--broker kafka|tansu] [--events 100000] [--rate 1000] [--seconds 10]
                                        [--eos] [--eos-commit-ms 100] [--only latency] [--breakdown]

``--broker kafka`` (default) is a KRaft Apache Kafka from `make tools`, one broker for every row (new topics
per row); ``--broker tansu`` starts a fresh Tansu per latency row (its cost per request grows with what it
holds). ``--eos`` adds the processor with ``processing_guarantee=exactly_once`` (Apache Kafka only) to the
throughput and latency halves: (b') in-process, default commit interval; (d') `floe run processor` with
``commit_interval_ms=--eos-commit-ms``, the violations read with ``isolation_level=read_committed`` (what
an exactly-once reader sees, i.e. at the transaction's commit).

Throughput: N pre-filled 300-byte materialization events (64 assets, 6 partitions) through
  (a) a raw aiokafka at-least-once pass-through: getmany → model_validate_json → model_dump_json →
      send_batch per partition → await → commit once per batch;
  (b) floe's ProcessorService (decode, resolve asset, freshness evaluation, check result out, state
      changelog + checkpoint, commit).
Latency at a fixed open-loop rate:
  (c) one hop, no processor: producer → topic → consumer (record CreateTime → receive);
  (d) event → violation through `floe run processor` in its own process, same rate: 1 in
      `--violation-every` events changes its asset's schema (a column new in that event), which opens a
      drift violation and resolves the previous one (2 CloudEvents); the other events are evaluated for
      freshness only. The schema changes come in bursts of `--drift-burst` consecutive events (64: every
      asset at once, as a migration that changes many tables does; 1: spread evenly). Latency = receive time
      of the CloudEvent − CreateTime of the input record (the CloudEvent's `time`, which is the evaluation
      time = the input record's timestamp);
  (e) the same rate through bench/passthrough.py, a raw aiokafka forwarder in its own process (two hops,
      the least work), and (e') that forwarder also subscribed to the processor's other input topics, left
      empty (every fetch request and response then names as many partitions as the processor's).
Their output topics keep the broker's append time (``message.timestamp.type=LogAppendTime``), so each of those
rows also splits its latency at the broker: input → output record appended (the process's share, its produce
request included), appended → received (the bench's consumer).
The rows with a process of their own ((d), (e), (e')) also print how it spent the span of the input: on a CPU,
or runnable but waiting for a core (Linux scheduler statistics), and how busy all cores were: a busy box
from a slow process.
The latency half starts and ends with the box's speed (:func:`box_speed`): on a shared host the tail moves
with it.
``--breakdown`` runs (d) with timing probes inside the processor (bench/processor_probe.py): input → handler
start, the handler's time, the event loop's lateness.
Apache Kafka's JVM writes its GC log, and each latency row prints the broker's stop-the-world pauses that fell
inside it and the p50/p99 of its samples that crossed none (bench/broker_gc.py), and the comparison is printed
again without those samples: how much of a tail is the broker's. ``--broker-jvm``: ``test`` (default, the JVM of
every earlier row here and of the test suite: 256–512 MB, serial GC, C1 only, or ``$FLOE_KAFKA_JAVA_OPTS`` when
set; a young collection stops it for about 9 ms once a second at this rate) or ``script`` (as Kafka's own start script runs it: G1, 1 GB, both JIT
tiers; ``--warm-s`` of load first, 20 by default, while it compiles and sizes its heap).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from bench import broker_gc
from bench.common import CoreTime, fill, pct, summary
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.processor import INPUTS as PROCESSOR_INPUTS
from floe_stream.runtime.devtools.embedded import (
    BROKER_KINDS,
    KAFKA_SCRIPT_JAVA_OPTS,
    Broker,
    BrokerKind,
    make_broker,
)
from floe_stream.runtime.framework.kafka import ensure_topics, make_consumer, make_producer
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.topics import MaterializationEvent, ObservedColumn, TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.violation import decode_violation

ASSETS = [f"bench.t{i:02d}" for i in range(64)]


def contract_dir(root: Path, sla_s: int) -> Path:
    tables = "\n".join(
        f"  - name: t{i:02d}\n    customProperties: [{{property: floe, value: {{asset: bench.t{i:02d}}}}}]\n"
        f"    properties: [{{name: id, logicalType: integer, required: true}}, {{name: updated_at, logicalType: timestamp}}]"
        for i in range(len(ASSETS))
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench.odcs.yaml").write_text(
        "apiVersion: v3.1.0\nkind: DataContract\nid: bench\nname: bench\nversion: 1.0.0\nstatus: active\n"
        f"schema:\n{tables}\nslaProperties:\n  - property: latency\n    value: {sla_s}\n    unit: s\n"
    )
    return root


COLUMNS = [
    ObservedColumn(name="id", type="long", nullable=False),
    ObservedColumn(name="updated_at", type="timestamptz"),
]


def event(i: int, asset: str, stale: bool = False, drift: bool | None = None) -> bytes:
    """A ~300-byte materialization. ``drift=True`` adds the actual schema with a column new in this event
    (so the previous event's extra column is gone): one drift opens and the previous one resolves."""
    now = datetime.now(UTC)
    ev = MaterializationEvent(
        event_id=f"e{i}", asset=asset, materialized_at=now, run_id=f"run-{i:08d}", job="bench.job",
        data_timestamp=now - timedelta(hours=2) if stale else now, row_count=1000 + i,
        labels={"env": "bench", "team": "platform"},
        columns=None if drift is None else ([*COLUMNS, ObservedColumn(name=f"extra_{i}", type="string")] if drift else COLUMNS),
    )  # fmt: skip
    return ev.model_dump_json(exclude_none=True).encode()  # unset fields omitted, as hooks send them


async def raw_pass_through(k: KafkaSettings, n: int, partitions: int) -> float:
    src, dst = f"{k.topic_prefix}raw-in", f"{k.topic_prefix}raw-out"
    await create_topics(k, [src, dst], partitions)
    producer = make_producer(k)
    await producer.start()
    await fill(
        producer,
        src,
        [
            (partition_for(a, partitions), a.encode(), event(i, a))
            for i, a in ((i, ASSETS[i % 64]) for i in range(n))
        ],
    )
    consumer = make_consumer(k, src, group_id=f"{k.group_prefix}-raw")
    await consumer.start()
    done, t0 = 0, 0.0
    while done < n:
        batch = await consumer.getmany(timeout_ms=200, max_records=k.max_batch_records)
        if not batch:
            continue
        t0 = t0 or time.perf_counter()
        futures = []
        for tp, recs in batch.items():
            out = producer.create_batch()
            for r in recs:
                body = MaterializationEvent.model_validate_json(r.value).model_dump_json().encode()
                if out.append(key=r.key, value=body, timestamp=None) is None:
                    out.close()
                    futures.append(await producer.send_batch(out, dst, partition=tp.partition))
                    out = producer.create_batch()
                    out.append(key=r.key, value=body, timestamp=None)
            out.close()
            futures.append(await producer.send_batch(out, dst, partition=tp.partition))
            done += len(recs)
        await asyncio.gather(*futures)
        await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batch.items()})
    elapsed = time.perf_counter() - t0
    await consumer.stop()
    await producer.stop()
    return n / elapsed


async def prefill(s: Settings, n: int) -> None:
    """Create the topics and put ``n`` materialization events (64 assets, keyed and partitioned by asset)."""
    await ensure_topics(s.kafka)
    producer = make_producer(s.kafka)
    await producer.start()
    topic = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    p = s.kafka.partitions
    await fill(
        producer,
        topic,
        [(partition_for(a, p), a.encode(), event(i, a)) for i, a in ((i, ASSETS[i % 64]) for i in range(n))],
    )
    await producer.stop()


async def processor_throughput(s: Settings, n: int) -> float:
    await prefill(s, n)
    svc = processor_service(s, load_registry(s))
    from floe_stream.runtime.deployables.app import tune_gc  # as the composition root does before running

    tune_gc()
    task = asyncio.create_task(svc.run())
    while svc.records == 0:
        await asyncio.sleep(0.001)
    t0 = time.perf_counter()
    first = svc.records
    while svc.records < n:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - t0
    svc.request_stop()
    await task
    return (n - first) / elapsed


async def open_loop(
    k: KafkaSettings, topic: str, rate: float, seconds: float, make: object, partitions: int
) -> int:
    producer = make_producer(k, linger_ms=0)
    await producer.start()
    interval, sent = 1.0 / rate, 0
    start = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed / interval) + 1
            while sent < due:
                asset = ASSETS[sent % 64]
                await producer.send(
                    topic, make(sent, asset), key=asset.encode(), partition=partition_for(asset, partitions)
                )  # type: ignore[operator]
                sent += 1
            await asyncio.sleep(max(0.0, (sent * interval) - (time.perf_counter() - start)))
        await producer.flush()
    finally:
        await producer.stop()
    return sent


class Tail:
    """Read ``topic`` from its end in the background; ``seen(record, now_ms)`` for every record fetched."""

    def __init__(
        self,
        k: KafkaSettings,
        topic: str,
        partitions: int,
        seen: Callable[[ConsumerRecord[bytes, bytes], float], None],
    ) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=k.bootstrap_servers,
            fetch_max_wait_ms=k.fetch_max_wait_ms,
            enable_auto_commit=False,
            isolation_level="read_committed" if k.exactly_once else "read_uncommitted",
        )
        self.tps = [TopicPartition(topic, i) for i in range(partitions)]
        self.seen = seen
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _consume(self) -> None:
        while not self.stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.time() * 1000
            for recs in batch.values():
                for r in recs:
                    self.seen(r, now)

    async def __aenter__(self) -> Tail:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_end(*self.tps)
        self.task = asyncio.create_task(self._consume())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
        await self.consumer.stop()


async def create_topics(k: KafkaSettings, names: list[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=k.bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    await admin.close()


async def append_time(k: KafkaSettings, topic: str) -> str:
    """``topic``'s records carry the broker's append time: the split of a two-hop latency at the broker.
    Returns what the split's first half ends at (Tansu has no AlterConfigs: the output's CreateTime)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=k.bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"message.timestamp.type": "LogAppendTime"})]
        )
    except KafkaError:
        return "created"
    finally:
        await admin.close()
    return "appended"


def print_gc(line: str | None) -> None:
    if line is not None:
        print(line)


def print_split(split: list[tuple[float, float]], warm: int, first: str, second: str) -> None:
    print(f"  {first:<39} {summary([a for a, _ in split[warm:]])}", file=sys.stderr)
    print(f"  {second:<39} {summary([b for _, b in split[warm:]])}", file=sys.stderr)


async def one_hop_latency(
    k: KafkaSettings, rate: float, seconds: float, partitions: int, spans: list[tuple[float, float]]
) -> list[float]:
    """``spans``: each sample's (input CreateTime, received) is added (bench/broker_gc.py)."""
    topic = f"{k.topic_prefix}hop"
    await create_topics(k, [topic], partitions)
    got: list[tuple[float, float]] = []
    async with Tail(k, topic, partitions, lambda r, now: got.append((r.timestamp, now))):
        await open_loop(k, topic, rate, seconds, lambda i, a: event(i, a), partitions)
        await asyncio.sleep(1)
    spans.extend(got[int(rate) :])  # drop the first second (warm-up)
    return [out - t_in for t_in, out in got[int(rate) :]]


async def passthrough_latency(
    k: KafkaSettings,
    rate: float,
    seconds: float,
    partitions: int,
    spans: list[tuple[float, float]],
    idle_topics: int = 0,
) -> list[float]:
    """(e) the same open-loop rate through bench/passthrough.py (a raw aiokafka forwarder in its own
    process): input CreateTime → the forwarded record received, i.e. two hops and the least work. With
    ``idle_topics``, the forwarder also subscribes to that many empty topics of as many partitions (the
    processor's quiet inputs: what the width of its fetches costs)."""
    src, dst = f"{k.topic_prefix}pt-in", f"{k.topic_prefix}pt-out"
    idle = [f"{k.topic_prefix}pt-idle{i}" for i in range(idle_topics)]
    await create_topics(k, [src, dst, *idle], partitions)
    at = await append_time(k, dst)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.passthrough", k.bootstrap_servers, src, dst, f"{k.group_prefix}-pt",
        str(k.fetch_max_wait_ms), ",".join(idle),
    )  # fmt: skip
    split: list[tuple[float, float]] = []
    got: list[tuple[float, float]] = []  # (input, received) ms

    def seen(r: ConsumerRecord[bytes, bytes], now: float) -> None:
        t_in = float(dict(r.headers)["in-ts"])
        split.append((r.timestamp - t_in, now - r.timestamp))
        got.append((t_in, now))

    async with Tail(k, dst, partitions, seen):
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:  # until the forwarder has joined its group
            await open_loop(k, src, 64, 1.0, lambda i, a: event(i, a), partitions)
        split.clear()
        got.clear()
        core = CoreTime(proc.pid)
        await open_loop(k, src, rate, seconds, lambda i, a: event(i, a), partitions)
        busy = core.line("the forwarder while the input ran")
        await asyncio.sleep(1.5)
    proc.terminate()
    await proc.wait()
    print_split(split, int(rate), f"input → forwarded record {at} (ms):", f"{at} → received (ms):")
    print(busy, file=sys.stderr)
    spans.extend(got[int(rate) :])
    return [out - t_in for t_in, out in got[int(rate) :]]


def processor_env(s: Settings, group_suffix: str, src: Path | None = None) -> dict[str, str]:
    """The environment of a `floe run processor` subprocess on these settings; ``src``: run the floe_stream
    package of that source tree instead of the installed one (bench/versus.py: an older commit)."""
    env = {
        **os.environ,
        "FLOE_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
        "FLOE_KAFKA__TOPIC_PREFIX": s.kafka.topic_prefix,
        "FLOE_KAFKA__GROUP_PREFIX": s.kafka.group_prefix + group_suffix,
        "FLOE_KAFKA__FETCH_MAX_WAIT_MS": str(s.kafka.fetch_max_wait_ms),
        "FLOE_KAFKA__LINGER_MS": "0",
        "FLOE_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "FLOE_KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
        "FLOE_KAFKA__COMMIT_INTERVAL_MS": str(s.kafka.commit_interval_ms),
        "FLOE_CONTRACTS_DIR": str(s.contracts_dir),
        "FLOE_CLOCK_SKEW_S": "0",
        "FLOE_HEALTH_PORT": "-1",
        "FLOE_LOG_LEVEL": "WARNING",
    }
    if s.kafka.exactly_once:  # only then: an older commit without the setting still starts
        env["FLOE_KAFKA__PROCESSING_GUARANTEE"] = s.kafka.processing_guarantee
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def processor_cmd(src: Path | None = None) -> list[str]:
    if src is not None:  # that tree's CLI, with this venv's interpreter and dependencies
        return [sys.executable, "-c", "from floe_stream.cli.main import main; main()", "run", "processor"]
    return [str(Path(sys.executable).parent / "floe"), "run", "processor"]


async def processor_latency(
    s: Settings,
    rate: float,
    seconds: float,
    log: Path,
    every: int = 1,
    src: Path | None = None,
    breakdown: Path | None = None,
    burst: int = 64,
    spans: list[tuple[float, float]] | None = None,
) -> list[float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # earlier children (the forwarder) excluded
    cpu_before = before.ru_utime + before.ru_stime
    env = processor_env(s, "-lat", src)
    with open(log, "ab") as fh:
        cmd = processor_cmd(src)
        if breakdown is not None:  # timing probes inside the processor (bench/processor_probe.py)
            cmd = [sys.executable, "-m", "bench.processor_probe", str(breakdown), *cmd[-2:]]
        if os.environ.get("FLOE_BENCH_PROFILE"):  # cProfile the processor process (written on SIGTERM)
            cmd = [sys.executable, "-m", "cProfile", "-o", os.environ["FLOE_BENCH_PROFILE"], *cmd]
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=fh, stderr=fh)
    viol = topic_name(s.kafka.topic_prefix, TopicKey.VIOLATIONS)
    at = await append_time(s.kafka, viol)
    split: list[tuple[float, float]] = []  # (input → processor's output record appended, that → received)
    journeys: list[tuple[float, float]] = []  # (input, received) ms
    got: list[tuple[ConsumerRecord[bytes, bytes], float]] = []

    def seen(r: ConsumerRecord[bytes, bytes], now: float) -> None:
        got.append((r, now))  # decoded after the run: the bench's CPU stays out of the processor's bursts

    def decode_got() -> None:
        for r, now in got:
            t_in = decode_violation(dict(r.headers), r.key, r.value).time.timestamp() * 1000
            split.append((r.timestamp - t_in, now - r.timestamp))
            journeys.append((t_in, now))
        got.clear()

    async with Tail(s.kafka, viol, s.kafka.partitions, seen):
        # wait for the processor to join: publish drifted events until one yields a violation
        deadline = time.monotonic() + 60
        topic = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
        while not got and time.monotonic() < deadline:
            await open_loop(
                s.kafka, topic, 64, 1.0, lambda i, a: event(-i - 1, a, drift=True), s.kafka.partitions
            )
        got.clear()
        core = CoreTime(proc.pid)
        # every event changes its asset's extra column: a new drift opens and the previous one resolves
        await open_loop(
            s.kafka, topic, rate, seconds,
            lambda i, a: event(i, a, drift=True if (i // burst) % every == 0 else None), s.kafka.partitions,
        )  # fmt: skip
        busy = core.line("the processor while the input ran")
        await asyncio.sleep(1.5)
    proc.terminate()
    await proc.wait()
    decode_got()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = cpu.ru_utime + cpu.ru_stime - cpu_before
    print(
        f"  ({len(journeys)} violation events observed; processor process CPU {used:.1f} s in total)",
        file=sys.stderr,
    )
    warm = int(2 * rate / every)  # drop the first second (warm-up): 2 CloudEvents per drift event
    print_split(split, warm, f"input → processor's output {at} (ms):", f"{at} → received (ms):")
    print(busy, file=sys.stderr)
    if breakdown is not None and breakdown.exists():  # noqa: ASYNC240 (the run is over: nothing to block)
        b = json.loads(breakdown.read_text())  # noqa: ASYNC240
        print("  inside the processor (p50/p90/p99 ms; bench/processor_probe.py):", file=sys.stderr)
        for k, v in b.items():
            print(f"    {k:<34} {v}", file=sys.stderr)
    if spans is not None:
        spans.extend(journeys[warm:])
    return [out - t_in for t_in, out in journeys[warm:]]


async def warm_broker(
    brokers: Brokers,
    kafka_on: Callable[[str, str], KafkaSettings],
    rate: float,
    seconds: float,
    partitions: int,
) -> None:
    """Apache Kafka: ``seconds`` of the one-hop load on topics of their own before the first latency row. A new
    broker JVM compiles its hot paths and sizes its young generation in its first tens of seconds, on the
    cores the rows measure: the first row would carry it alone (one hop p99 6–7 ms instead of ~3 on the
    start script's JVM, 2026-12-07)."""
    if brokers.kind != "kafka" or seconds <= 0:
        return
    with brokers.row("warm") as (broker, prefix):
        await one_hop_latency(kafka_on(broker.bootstrap, prefix), rate, seconds, partitions, [])


class Brokers:
    """Kafka: one broker for every row (fresh topics per row). Tansu: a fresh broker per latency row."""

    def __init__(self, kind: BrokerKind, tmp: Path, jvm: str = "test") -> None:
        self.kind, self.tmp = kind, tmp
        # "test": None, i.e. $FLOE_KAFKA_JAVA_OPTS if set, else JAVA_OPTS (ApacheKafka's own choice, as before)
        self.java_opts = KAFKA_SCRIPT_JAVA_OPTS if jvm == "script" else None
        self.gc_log = tmp / "kafka-gc.log"
        self.shared: Broker | None = None
        self.rows = 0

    def gc_line(self, spans: list[tuple[float, float]]) -> str | None:
        """The Apache Kafka broker's GC pauses during these samples (bench/broker_gc.py); None on Tansu."""
        if self.kind != "kafka":
            return None
        return broker_gc.summary(broker_gc.read(self.gc_log), spans)

    def __enter__(self) -> Brokers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shared is not None:
            self.shared.stop()

    @contextlib.contextmanager
    def row(self, name: str) -> Iterator[tuple[Broker, str]]:
        self.rows += 1
        prefix = f"{name}{self.rows}"
        if self.kind == "kafka":
            if self.shared is None:
                self.shared = make_broker(
                    "kafka", log_file=self.tmp / "kafka.log", java_opts=self.java_opts, gc_log=self.gc_log
                ).start()
            yield self.shared, prefix
            return
        with make_broker("tansu", log_file=self.tmp / f"tansu-{prefix}.log") as broker:
            yield broker, prefix


QUIET_BOX_US = 19.0  # bench/processor_cpu.py fresh, 2026-12-06 04:44 UTC, nothing else on the host


async def box_speed() -> float:
    """How fast this box runs Python right now: the handler's CPU per event on the ``fresh`` workload of
    bench/processor_cpu.py (broker stubbed, 20,000 events). A shared host moves it by up to 2× from hour to hour,
    and the latency tail with it: a latency row means little without it."""
    from bench.processor_cpu import run  # imports this module: not at the top

    thresholds = gc.get_threshold()
    try:
        return await run("fresh", 20_000, 500, None)
    finally:
        gc.set_threshold(*thresholds)  # it tunes the collector as the processor does: not this process's


def box_line(when: str, us: float) -> str:
    return (
        f"box speed {when} the latency rows: {us:.1f} µs an event (bench/processor_cpu.py fresh; "
        f"{QUIET_BOX_US} on the quiet box, {us / QUIET_BOX_US:.2f}×)"
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", choices=BROKER_KINDS, default="kafka")
    ap.add_argument(
        "--eos", action="store_true", help="add processing_guarantee=exactly_once rows (kafka only)"
    )
    ap.add_argument(
        "--eos-commit-ms", type=int, default=100, help="commit interval of the exactly-once latency run"
    )
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--fetch-wait-ms", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--violation-every", type=int, default=10,
        help="1 in N events changes its asset's schema (2 CloudEvents: a drift opens, the previous resolves)",
    )  # fmt: skip
    ap.add_argument(
        "--drift-burst", type=int, default=64,
        help="the schema changes come in bursts of N consecutive events (64: every asset; 1: spread evenly)",
    )  # fmt: skip
    ap.add_argument("--only", choices=("throughput", "latency"), default=None, help="run one half")
    ap.add_argument(
        "--warm-s", type=float, default=None,
        help="Apache Kafka: seconds of the one-hop load before the latency rows (20 with --broker-jvm script, else 0)",
    )  # fmt: skip
    ap.add_argument(
        "--broker-jvm", choices=("script", "test"), default="test",
        help="Apache Kafka's JVM: as bin/kafka-server-start.sh runs it (G1, 1 GB), or the tests' (serial GC, C1)",
    )  # fmt: skip
    ap.add_argument(
        "--breakdown", action="store_true",
        help="time the processor's fetch, handler and loop from inside (bench/processor_probe.py; adds a little CPU)",
    )  # fmt: skip
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    sample = event(0, ASSETS[0])
    jvm = f" (JVM: {a.broker_jvm})" if a.broker == "kafka" else ""
    print(
        f"broker {a.broker}{jvm}; event size {len(sample)} bytes; {a.events} events; {len(ASSETS)} assets; "
        f"{a.partitions} partitions"
    )

    def kafka_on(bootstrap: str, prefix: str, **kw: object) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"{prefix}.", group_prefix=prefix, partitions=a.partitions,
                             fetch_max_wait_ms=a.fetch_wait_ms, session_timeout_ms=6000, heartbeat_interval_ms=1000, linger_ms=5,
                             **kw)  # type: ignore[arg-type]  # fmt: skip

    eos = {"processing_guarantee": "exactly_once"}
    raw = proc = proc_eos = box_before = box_after = float("nan")
    hop: list[float] = []
    two: list[float] = []
    hop_spans: list[tuple[float, float]] = []  # each sample's (input, received) ms: bench/broker_gc.py
    two_spans: list[tuple[float, float]] = []
    viol_spans: list[tuple[float, float]] = []
    wide: list[float] = []
    viol: list[float] = []
    viol_eos: list[float] = []
    with Brokers(a.broker, tmp, a.broker_jvm) as brokers:
        if a.only != "latency":
            with brokers.row("bench") as (broker, prefix):
                k = kafka_on(broker.bootstrap, prefix)
                contracts = contract_dir(tmp / "contracts", 3600)
                s = Settings(kafka=k, contracts_dir=contracts, health_port=-1, clock_skew_s=0)
                raw = await raw_pass_through(k, a.events, a.partitions)
                print(f"throughput raw aiokafka pass-through (ALO, send_batch): {raw:,.0f} events/s")
                proc = await processor_throughput(s, a.events)
                print(
                    f"throughput floe processor:                            {proc:,.0f} events/s  ({proc / raw:.0%} of raw)"
                )
            if a.eos:
                with brokers.row("beos") as (broker, prefix):
                    s = Settings(kafka=kafka_on(broker.bootstrap, prefix, **eos), contracts_dir=contracts,
                                 health_port=-1, clock_skew_s=0)  # fmt: skip
                    proc_eos = await processor_throughput(s, a.events)
                print(
                    f"throughput floe processor, exactly_once:              {proc_eos:,.0f} events/s  "
                    f"({proc_eos / raw:.0%} of raw, {proc_eos / proc:.0%} of at_least_once)"
                )
        if a.only != "throughput":
            box_before = await box_speed()
            print(box_line("before", box_before))
            gc.collect()  # the throughput half's garbage: no collector pauses inside the latency measurements
            gc.freeze()
            warm_s = a.warm_s if a.warm_s is not None else (20 if a.broker_jvm == "script" else 0)
            await warm_broker(brokers, kafka_on, a.rate, warm_s, a.partitions)
            with brokers.row("hop") as (broker, prefix):
                k2 = kafka_on(broker.bootstrap, prefix)
                await ensure_topics(k2)
                hop = await one_hop_latency(k2, a.rate, a.seconds, a.partitions, hop_spans)
            print(f"latency one hop, no processor @ {a.rate:.0f}/s (ms):    {summary(hop)}")
            print_gc(brokers.gc_line(hop_spans))
            with brokers.row("fwd") as (broker, prefix):
                k2 = kafka_on(broker.bootstrap, prefix)
                await ensure_topics(k2)
                two = await passthrough_latency(k2, a.rate, a.seconds, a.partitions, two_spans)
            print(f"latency two hops via a raw aiokafka forwarder @ {a.rate:.0f}/s (ms): {summary(two)}")
            print_gc(brokers.gc_line(two_spans))
            with brokers.row("fwdw") as (broker, prefix):
                k2 = kafka_on(broker.bootstrap, prefix)
                await ensure_topics(k2)
                idle = len(PROCESSOR_INPUTS) - 1
                spans: list[tuple[float, float]] = []
                wide = await passthrough_latency(k2, a.rate, a.seconds, a.partitions, spans, idle_topics=idle)
            print(
                f"latency two hops via the raw forwarder also subscribed to {idle} idle topics (the processor's "
                f"other inputs) @ {a.rate:.0f}/s (ms): {summary(wide)}"
            )
            print_gc(brokers.gc_line(spans))
            runs: list[tuple[str, dict[str, object], list[float], list[tuple[float, float]]]] = [
                ("", {}, viol, viol_spans)
            ]
            if a.eos:
                runs.append((", exactly_once", {**eos, "commit_interval_ms": a.eos_commit_ms}, viol_eos, []))
            for label, extra, into, spans in runs:
                with brokers.row("lat") as (broker, prefix):
                    k2 = kafka_on(broker.bootstrap, prefix, **extra)
                    await ensure_topics(k2)
                    s2 = Settings(kafka=k2, contracts_dir=contract_dir(tmp / f"contracts-{prefix}", 60),
                                  health_port=-1, clock_skew_s=0)  # fmt: skip
                    into.extend(
                        await processor_latency(
                            s2,
                            a.rate,
                            a.seconds,
                            tmp / f"processor-{prefix}.log",
                            a.violation_every,
                            breakdown=tmp / f"breakdown-{prefix}.json" if a.breakdown else None,
                            burst=a.drift_burst,
                            spans=spans,
                        )
                    )
                print(f"latency event→violation via processor{label} @ {a.rate:.0f}/s (ms): {summary(into)}")
                print_gc(brokers.gc_line(spans))
                added = pct(into, 99) - pct(hop, 99)
                print(
                    f"processor{label} adds at p99: {added:.1f} ms over the one-hop baseline (p50: {pct(into, 50) - pct(hop, 50):.1f} ms)"
                )
            print(
                f"raw forwarder adds at p99: {pct(two, 99) - pct(hop, 99):.1f} ms over one hop "
                f"(p50: {pct(two, 50) - pct(hop, 50):.1f} ms); processor over the raw forwarder at p99: "
                f"{pct(viol, 99) - pct(two, 99):.1f} ms (p50: {pct(viol, 50) - pct(two, 50):.1f} ms)"
            )
            if a.broker == "kafka":  # where the broker's stop-the-world pauses leave the comparison
                pauses = broker_gc.read(brokers.gc_log)
                hop_c, two_c, viol_c = (
                    broker_gc.clear(pauses, x) for x in (hop_spans, two_spans, viol_spans)
                )
                print(
                    "without the samples that crossed a broker GC pause: processor adds at p99 "
                    f"{pct(viol_c, 99) - pct(hop_c, 99):.1f} ms over one hop (p50: {pct(viol_c, 50) - pct(hop_c, 50):.1f} "
                    f"ms), raw forwarder {pct(two_c, 99) - pct(hop_c, 99):.1f} ms; event→violation p99 "
                    f"{pct(viol_c, 99):.2f} ms"
                )
            print(
                f"the idle topics add to the raw forwarder at p99: {pct(wide, 99) - pct(two, 99):.1f} ms "
                f"(p50: {pct(wide, 50) - pct(two, 50):.1f} ms); processor over that forwarder at p99: "
                f"{pct(viol, 99) - pct(wide, 99):.1f} ms (p50: {pct(viol, 50) - pct(wide, 50):.1f} ms)"
            )
            box_after = await box_speed()
            print(box_line("after", box_after))
    result = {
        "broker": a.broker, "events": a.events, "raw_eps": raw, "processor_eps": proc, "ratio": proc / raw,
        "processor_eos_eps": proc_eos,
        "hop_p50": pct(hop, 50), "hop_p99": pct(hop, 99), "viol_p50": pct(viol, 50), "viol_p99": pct(viol, 99),
        "viol_eos_p50": pct(viol_eos, 50), "viol_eos_p99": pct(viol_eos, 99),
        "two_hop_p50": pct(two, 50), "two_hop_p99": pct(two, 99),
        "two_hop_idle_p50": pct(wide, 50), "two_hop_idle_p99": pct(wide, 99),
        "rate": a.rate, "fetch_wait_ms": a.fetch_wait_ms, "broker_jvm": a.broker_jvm, "drift_burst": a.drift_burst, "box_us_before": box_before, "box_us_after": box_after,
    }  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
