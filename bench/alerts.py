"""Alerts benchmark: violation on the topic → webhook received (no grouping wait), p50/p99.

    .venv/bin/python -m bench.alerts [--broker kafka|tansu] [--single 200] [--burst 1000] [--events 200]

Apache Kafka (default, from `make tools`) or embedded Tansu + the machine's PostgreSQL (FLOE_BENCH_PG_DSN, default
postgresql://postgres@127.0.0.1:5432/postgres; a scratch database is created and dropped), the alerts
sink in-process with one webhook channel (CloudEvents structured + HMAC) to a loopback HTTP server.
(a) one violation at a time: publish, wait until the receiver has it — end-to-end latency per alert;
(b) a burst of N violations (distinct assets) published at once — latency from publish to receipt and
throughput. Every delivery goes through the PostgreSQL decision + ledger path (claim, mark);
(c) event → webhook: one materialization at a time whose schema drifts, through floe's processor (in the
same process) and the alerts sink: publish → the violation's webhook received;
(0) the baseline of the same run: one record at a time, produce → a plain consumer receives it (one hop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bench.common import summary
from bench.processor import ASSETS, contract_dir, create_topics, event
from floe_stream.processors.ids import stable_id
from floe_stream.runtime.deployables.app import alerts_sink, load_registry, processor_service
from floe_stream.runtime.devtools.embedded import BROKER_KINDS, BrokerKind, make_broker
from floe_stream.runtime.framework.database import migrate
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.settings import DatabaseSettings, KafkaSettings, Settings
from floe_stream.sinks.alerts.config import parse_config
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.enums import CheckType, Severity
from floe_stream.topics.violation import ViolationData, encode_violation

ADMIN_DSN = os.environ.get("FLOE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.violations: dict[str, list[float]] = {}  # asset → arrival times of its violation notifications
        self.event = asyncio.Event()
        self.port = 0

    async def start(self) -> None:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        self.server = server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                line = await reader.readline()
                if not line:
                    break
                length = 0
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                body = await reader.readexactly(length)
                ce = json.loads(body)
                self.arrived[ce["id"]] = now = time.perf_counter()
                if ce.get("type") == "floe.contract.violation":
                    self.violations.setdefault(ce["data"]["asset"], []).append(now)
                self.event.set()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # keep-alive
                await writer.drain()
        writer.close()


def violation(i: int, run: str) -> ViolationData:
    now = datetime.now(UTC)
    corr = f"bench.{run}.{i}/freshness"
    return ViolationData(
        violation_id=stable_id("violation", corr, now.isoformat()),
        correlation_key=corr,
        contract_id=f"c{i % 50}",
        contract_name=f"contract-{i % 50}",
        contract_version="1.0.0",
        asset=f"bench.{run}.{i}",
        violation_type=CheckType.FRESHNESS,
        severity=Severity.ERROR,
        message="stale by 61s",
        expected_value="<= 60s",
        actual_value="121s",
        detected_at=now,
        episode_started_at=now,
        labels={"domain": "bench"},
        consumers=["dashboard"],
    )


async def one_hop(k: KafkaSettings, n: int) -> list[float]:
    """(0) produce one record, wait until a plain consumer has it; n times."""
    topic = f"{k.topic_prefix}hop"
    await create_topics(k, [topic], 1)
    producer = AIOKafkaProducer(bootstrap_servers=k.bootstrap_servers, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=k.bootstrap_servers, fetch_max_wait_ms=k.fetch_max_wait_ms)
    await producer.start()
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        lat: list[float] = []
        for i in range(n):
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, str(i).encode(), partition=0)
            while not await consumer.getmany(tp, timeout_ms=1000):
                pass
            lat.append((time.perf_counter() - t0) * 1000)
        return lat
    finally:
        await consumer.stop()
        await producer.stop()


async def main(kind: BrokerKind, single: int, burst: int, partitions: int, events: int) -> None:
    db = f"floe_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{db}"
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    tmp = Path(tempfile.mkdtemp())
    broker = make_broker(kind, log_file=tmp / "broker.log").start()
    try:
        k = KafkaSettings(
            bootstrap_servers=broker.bootstrap,
            topic_prefix="bench.",
            group_prefix="bench",
            partitions=partitions,
            fetch_max_wait_ms=5,
            linger_ms=0,
        )
        settings = Settings(
            kafka=k,
            database=DatabaseSettings(dsn=dsn),
            health_port=-1,  # type: ignore[arg-type]
            contracts_dir=contract_dir(tmp / "contracts", 3600),
            clock_skew_s=0,
        )
        await ensure_topics(k)
        hop = await one_hop(k, single)
        print(f"(0) baseline, one record at a time, produce → consumer received (ms): {summary(hop[5:])}")
        rx = Receiver()
        await rx.start()
        cfg = parse_config(
            {
                "policy": {
                    "group_wait_s": 0,
                    "rate_limit": {"max_alerts": 1_000_000},
                    "dedup_window_s": 0,
                },  # (c) drifts the same 64 assets again and again
                "channels": [
                    {
                        "name": "hook",
                        "type": "webhook",
                        "url": f"http://127.0.0.1:{rx.port}/e",
                        "secret": "bench-secret",
                    }
                ],
                "routes": [{"channel": "hook"}],
            }
        )
        sink = alerts_sink(settings, cfg)
        from floe_stream.runtime.deployables.app import tune_gc  # as the composition root does before running

        tune_gc()
        task = asyncio.create_task(sink.run())
        while not sink.ever_assigned:
            await asyncio.sleep(0.05)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        await producer.start()
        topic = topic_name(k.topic_prefix, TopicKey.VIOLATIONS)

        # (a) one at a time
        lat: list[float] = []
        for i in range(single):
            v = violation(i, "single")
            key, value, headers = encode_violation(v)
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, value, key=key, headers=headers)
            while v.violation_id not in rx.arrived:
                rx.event.clear()
                await rx.event.wait()
            lat.append((rx.arrived[v.violation_id] - t0) * 1000)
        print(f"(a) one violation at a time, topic → webhook received (ms): {summary(lat[5:])}")

        # (b) burst
        items = [violation(i, "burst") for i in range(burst)]
        sent: dict[str, float] = {}
        t_start = time.perf_counter()
        for v in items:
            key, value, headers = encode_violation(v)
            sent[v.violation_id] = time.perf_counter()
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
        while not all(v.violation_id in rx.arrived for v in items):
            rx.event.clear()
            await rx.event.wait()
        t_end = max(rx.arrived[v.violation_id] for v in items)
        blat = [(rx.arrived[i] - sent[i]) * 1000 for i in sent]
        print(f"(b) burst of {burst}: publish → received (ms): {summary(blat)}")
        print(
            f"    {burst / (t_end - t_start):.0f} alerts/s end to end ({t_end - t_start:.2f} s for {burst})"
        )

        # (c) event → processor → violation → alerts sink → webhook
        if events:
            proc = processor_service(settings, load_registry(settings))
            ptask = asyncio.create_task(proc.run())
            while not proc.ever_assigned:
                await asyncio.sleep(0.05)
            mat = topic_name(k.topic_prefix, TopicKey.MATERIALIZATIONS)
            elat: list[float] = []
            for i in range(events + 5):
                asset = ASSETS[i % len(ASSETS)]
                seen = len(rx.violations.get(asset, []))
                t0 = time.perf_counter()
                await producer.send_and_wait(mat, event(i, asset, drift=True), key=asset.encode())
                while len(rx.violations.get(asset, [])) <= seen:
                    rx.event.clear()
                    await asyncio.wait_for(rx.event.wait(), 60)
                elat.append((rx.violations[asset][seen] - t0) * 1000)
            print(f"(c) event → processor → alerts sink → webhook received (ms): {summary(elat[5:])}")
            proc.request_stop()
            await ptask
        await producer.stop()
        sink.request_stop()
        await task
        rx.server.close()
    finally:
        broker.stop()
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", choices=BROKER_KINDS, default="kafka")
    ap.add_argument("--events", type=int, default=200, help="(c) materializations through the processor")
    ap.add_argument("--single", type=int, default=200)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=3)
    a = ap.parse_args()
    asyncio.run(main(a.broker, a.single, a.burst, a.partitions, a.events))
