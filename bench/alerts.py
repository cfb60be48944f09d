"""Alerts benchmark: violation on the topic → webhook received (no grouping wait), p50/p99.

    .venv/bin/python -m bench.alerts [--single 200] [--burst 1000] [--partitions 3]

Embedded Tansu broker + the machine's PostgreSQL (FLOE_BENCH_PG_DSN, default
postgresql://postgres@127.0.0.1:5432/postgres; a scratch database is created and dropped), the alerts
sink in-process with one webhook channel (CloudEvents structured + HMAC) to a loopback HTTP server.
(a) one violation at a time: publish, wait until the receiver has it — end-to-end latency per alert;
(b) a burst of N violations (distinct assets) published at once — latency from publish to receipt and
throughput. Every delivery goes through the PostgreSQL decision + ledger path (claim, mark).
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
from aiokafka import AIOKafkaProducer

from bench.common import summary
from floe_stream.processors.ids import stable_id
from floe_stream.runtime.database import migrate
from floe_stream.runtime.embedded import EmbeddedKafka
from floe_stream.runtime.kafka import ensure_topics
from floe_stream.settings import DatabaseSettings, KafkaSettings, Settings
from floe_stream.sinks.alerts.config import parse_config
from floe_stream.sinks.alerts.sink import AlertSink
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.enums import CheckType, Severity
from floe_stream.topics.violation import ViolationData, encode_violation

ADMIN_DSN = os.environ.get("FLOE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
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
                self.arrived[json.loads(body)["id"]] = time.perf_counter()
                self.event.set()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # keep-alive
                await writer.drain()
        writer.close()


def violation(i: int, run: str) -> ViolationData:
    now = datetime.now(UTC)
    corr = f"bench.{run}.{i}/freshness"
    return ViolationData(
        violation_id=stable_id("violation", corr, now.isoformat()), correlation_key=corr,
        contract_id=f"c{i % 50}", contract_name=f"contract-{i % 50}", contract_version="1.0.0",
        asset=f"bench.{run}.{i}", violation_type=CheckType.FRESHNESS, severity=Severity.ERROR,
        message="stale by 61s", expected_value="<= 60s", actual_value="121s", detected_at=now,
        episode_started_at=now, labels={"domain": "bench"}, consumers=["dashboard"],
    )  # fmt: skip


async def main(single: int, burst: int, partitions: int) -> None:
    db = f"floe_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{db}"
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    broker = EmbeddedKafka(log_file=Path(tempfile.mkdtemp()) / "tansu.log").start()
    try:
        k = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix="bench.", group_prefix="bench",
                          partitions=partitions, fetch_max_wait_ms=5, linger_ms=0)  # fmt: skip
        settings = Settings(kafka=k, database=DatabaseSettings(dsn=dsn), health_port=-1)  # type: ignore[arg-type]
        await ensure_topics(k)
        rx = Receiver()
        await rx.start()
        cfg = parse_config(
            {
                "policy": {"group_wait_s": 0, "rate_limit": {"max_alerts": 1_000_000}},
                "channels": [{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{rx.port}/e",
                              "secret": "bench-secret"}],
                "routes": [{"channel": "hook"}],
            }
        )  # fmt: skip
        sink = AlertSink(settings, cfg)
        from floe_stream.runtime.app import tune_gc  # as the composition root does before running

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
    ap.add_argument("--single", type=int, default=200)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=3)
    a = ap.parse_args()
    asyncio.run(main(a.single, a.burst, a.partitions))
