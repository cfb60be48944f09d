"""PostgreSQL sink write rate (check results per second), with the SLA aggregates maintained incrementally.

    .venv/bin/python -m bench.sink [--results 100000] [--assets 1000] [--batch N] [--broker kafka|tansu]
                                   [--dsn postgresql://…/postgres]

(a) the database path alone: ``store.write_history`` per batch (one transaction: binary COPY into staging tables,
    one set-based statement per table), results in time order per asset, ``--batch`` per write (default: the
    sink's ``sink.flush_max_records``, what it writes at once while a backlog keeps its fetches full);
(b) the same batches again: every row is a duplicate (what a replay or a second replica costs);
(c) 2 % of the results delivered late (older than the newest result of their asset): the recomputation path;
(d) end to end: the records pre-filled into the check-results topic (6 partitions) of Apache Kafka from
    ``make tools`` (``--broker kafka``, the default) or Tansu, consumed by the PostgreSQL sink (decode, write,
    commit) with the shipped settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.common import fill
from floe_stream.reporting import store
from floe_stream.runtime.deployables.app import postgres_sink
from floe_stream.runtime.devtools.embedded import BROKER_KINDS, make_broker
from floe_stream.runtime.framework.database import migrate
from floe_stream.runtime.framework.kafka import ensure_topics, make_producer
from floe_stream.settings import DatabaseSettings, HistorySettings, KafkaSettings, Settings
from floe_stream.topics import TopicKey, topic_name
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.partitioning import partition_for


def results(n: int, assets: int, start: datetime, tag: str = "") -> list[CheckResult]:
    rnd = random.Random(3)
    per = max(1, n // assets)
    out = []
    for i in range(per):
        for a in range(assets):
            t = start + timedelta(seconds=60 * i + a % 60)
            out.append(
                CheckResult(
                    result_id=f"{tag}{a}-{i}",
                    asset=f"bench.a{a:04d}",
                    contract_id="bench",
                    contract_version="1.0.0",
                    check_type="freshness",
                    status="fail" if rnd.random() < 0.05 else "pass",  # type: ignore[arg-type]
                    evaluated_at=t,
                    metric=float(i),
                    sla_consumed=0.5,
                    message="within freshness SLA",
                )
            )
    return out[:n]


CPU_US: list[float] = []  # client (this process) CPU per result of each db_path run: less load-sensitive


async def db_path(conn: asyncpg.Connection, rs: list[CheckResult], batch: int) -> float:
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(rs), batch):
        async with conn.transaction():
            await store.write_history(conn, rs[i : i + batch])
    CPU_US.append((time.process_time() - c0) / len(rs) * 1e6)
    return len(rs) / (time.perf_counter() - t0)


async def end_to_end(s: Settings, rs: list[CheckResult], partitions: int) -> float:
    producer = make_producer(s.kafka, linger_ms=5)
    await producer.start()
    try:
        topic = topic_name(s.kafka.topic_prefix, TopicKey.CHECK_RESULTS)
        await fill(
            producer,
            topic,
            [
                (partition_for(r.asset, partitions), r.asset.encode(), r.model_dump_json().encode())
                for r in rs
            ],
        )
    finally:
        await producer.stop()
    sink = postgres_sink(s)
    from floe_stream.runtime.deployables.app import tune_gc  # as the composition root does before running

    tune_gc()
    task = asyncio.create_task(sink.run())
    t0 = None
    while sink.sink.rows_written < len(rs):
        if t0 is None and sink.sink.rows_written > 0:
            t0 = time.perf_counter()
            first = sink.sink.rows_written
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    sink.request_stop()
    await task
    return (len(rs) - first) / elapsed if elapsed > 0 else float("nan")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=int, default=100_000)
    ap.add_argument("--assets", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=Settings().sink.flush_max_records)
    ap.add_argument("--broker", choices=BROKER_KINDS, default="kafka")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--only", default="abcd", help="which measurements to run, e.g. 'a' (default: abcd)")
    ap.add_argument(
        "--dsn", default=os.environ.get("FLOE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    a = ap.parse_args()
    admin = await asyncpg.connect(a.dsn)
    base, _, _ = a.dsn.rpartition("/")
    names = [f"floe_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for n in names:
        await admin.execute(f'CREATE DATABASE "{n}"')
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rs = results(a.results, a.assets, start)
    print(f"{len(rs):,} check results, {a.assets} assets, batches of {a.batch}")
    try:
        conn = await asyncpg.connect(f"{base}/{names[0]}")
        try:
            await migrate(conn)
            rate = await db_path(conn, rs, a.batch)
            if "a" in a.only:
                print(
                    f"(a) write_history, in order:              {rate:10,.0f} results/s"
                    f"  (client CPU {CPU_US[-1]:.0f} µs/result)"
                )
            if "b" in a.only:
                rate = await db_path(conn, rs, a.batch)
                print(f"(b) write_history, all duplicates:        {rate:10,.0f} results/s")
            if "c" in a.only:
                late = results(a.results, a.assets, start + timedelta(days=3), tag="x")
                rnd = random.Random(5)
                for i in rnd.sample(range(len(late)), len(late) // 50):  # 2 % arrive after newer results
                    late[i] = late[i].model_copy(
                        update={"evaluated_at": late[i].evaluated_at - timedelta(hours=6)}
                    )
                rate = await db_path(conn, late, a.batch)
                print(f"(c) write_history, 2 % out of order:      {rate:10,.0f} results/s")
        finally:
            await conn.close()
        if "d" not in a.only:
            return
        tmp = Path(tempfile.mkdtemp(prefix="floe-bench-"))
        dsn2 = f"{base}/{names[1]}"
        conn = await asyncpg.connect(dsn2)
        await migrate(conn)
        await conn.close()
        with make_broker(a.broker, log_file=tmp / f"{a.broker}.log") as broker:
            k = KafkaSettings(
                bootstrap_servers=broker.bootstrap,
                topic_prefix="bench.",
                group_prefix="bench",
                partitions=a.partitions,
                fetch_max_wait_ms=50,
                session_timeout_ms=6000,
                heartbeat_interval_ms=1000,
            )
            await ensure_topics(k)
            s = Settings(
                kafka=k,
                database=DatabaseSettings(dsn=dsn2),
                health_port=-1,  # type: ignore[arg-type]
                history=HistorySettings(register_contracts=False),
            )
            rate = await end_to_end(s, rs, a.partitions)
            print(f"(d) PostgreSQL sink via {a.broker}, end to end: {rate:10,.0f} results/s")
    finally:
        for n in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
