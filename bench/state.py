"""Processor state at scale: resident memory of one `floe run processor` holding N assets' state, and the time
it takes a second one to restore that state from the compacted changelog.

    .venv/bin/python -m bench.state [--broker kafka|tansu] [--assets 100000] [--rounds 2]

1. Generated contracts: N assets (``--per-contract`` tables per contract file, freshness SLA 1 h).
2. The processor-state topic is created with aggressive compaction (``segment.ms=2000``,
   ``min.cleanable.dirty.ratio=0.01``), so the broker compacts it while the run goes on (Apache Kafka; Tansu
   ignores topic configs). ``--rounds`` materializations per asset are published.
3. Process A (`floe run processor`) consumes them all (its group's committed offsets reach the end); its RSS
   (VmRSS) and peak (VmHWM) are read from /proc, beside its RSS right after the contracts were loaded
   (the baseline: the same process before it holds any state). Then SIGTERM.
4. Process B starts on the same group: the time until its log says the partitions are assigned (state
   rebuilt from the changelog; the log line gives the records read and the restore's own time), and its
   RSS once restored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.common import fill
from floe_stream.runtime.embedded import BROKER_KINDS, make_broker
from floe_stream.runtime.kafka import ensure_topics, make_producer
from floe_stream.settings import KafkaSettings
from floe_stream.topics import MaterializationEvent, TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for


def asset_id(i: int, per: int) -> str:
    return f"bench.c{i // per:04d}.t{i % per:04d}"


def write_contracts(root: Path, n: int, per: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for c in range((n + per - 1) // per):
        tables = "\n".join(
            f"  - name: t{i:04d}\n    customProperties: [{{property: floe, value: {{asset: {asset_id(c * per + i, per)}}}}}]\n"
            f"    properties: [{{name: id, logicalType: integer, required: true}}]"
            for i in range(min(per, n - c * per))
        )
        (root / f"c{c:04d}.odcs.yaml").write_text(
            f"apiVersion: v3.1.0\nkind: DataContract\nid: c{c:04d}\nname: c{c:04d}\nversion: 1.0.0\n"
            f"status: active\nschema:\n{tables}\n"
            "slaProperties:\n  - property: latency\n    value: 3600\n    unit: s\n"
        )
    return root


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def wait_log(
    log: Path, pattern: str, proc: asyncio.subprocess.Process, timeout: float
) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"processor exited ({proc.returncode}): {log.read_text()[-2000:]}")  # noqa: ASYNC240
        m = re.search(pattern, log.read_text(errors="replace"))  # noqa: ASYNC240  (a bench, a small file)
        if m:
            return m
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{pattern!r} not in {log} after {timeout}s")


async def caught_up(k: KafkaSettings, group: str, topic: str, partitions: int) -> bool:
    c = AIOKafkaConsumer(bootstrap_servers=k.bootstrap_servers, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        end = await c.end_offsets(tps)
        return all([(await c.committed(tp) or 0) >= end[tp] for tp in tps])
    finally:
        await c.stop()


async def start(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    floe = Path(sys.executable).parent / "floe"
    fh = open(log, "ab")  # noqa: SIM115
    return await asyncio.create_subprocess_exec(str(floe), "run", "processor", env=env, stdout=fh, stderr=fh)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", choices=BROKER_KINDS, default="kafka")
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--per-contract", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2, help="materializations per asset")
    ap.add_argument("--partitions", type=int, default=6)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="floe-bench-state-"))
    t = time.perf_counter()
    contracts = write_contracts(tmp / "contracts", a.assets, a.per_contract)
    print(
        f"{a.assets:,} assets in {len(list(contracts.iterdir()))} contracts (written in {time.perf_counter() - t:.1f} s)"
    )
    with make_broker(a.broker, log_file=tmp / "broker.log") as broker:
        k = KafkaSettings(
            bootstrap_servers=broker.bootstrap,
            topic_prefix="st.",
            group_prefix="st",
            partitions=a.partitions,
            fetch_max_wait_ms=20,
            linger_ms=5,
        )
        state_topic = topic_name(k.topic_prefix, TopicKey.PROCESSOR_STATE)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        compaction = {
            "cleanup.policy": "compact",
            "segment.ms": "2000",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
        }
        await admin.create_topics([NewTopic(state_topic, a.partitions, 1, topic_configs=compaction)])
        await admin.close()
        await ensure_topics(k)
        mat = topic_name(k.topic_prefix, TopicKey.MATERIALIZATIONS)
        producer = make_producer(k)
        await producer.start()
        t = time.perf_counter()
        for r in range(a.rounds):
            now = datetime.now(UTC)
            await fill(
                producer,
                mat,
                [
                    (
                        partition_for(aid, a.partitions),
                        aid.encode(),
                        MaterializationEvent(
                            event_id=f"e{r}-{i}",
                            asset=aid,
                            materialized_at=now,
                            data_timestamp=now,
                            row_count=i,
                        )
                        .model_dump_json()
                        .encode(),
                    )
                    for i, aid in ((i, asset_id(i, a.per_contract)) for i in range(a.assets))
                ],
            )
        await producer.stop()
        print(f"published {a.rounds} × {a.assets:,} materializations in {time.perf_counter() - t:.1f} s")
        env = {
            **os.environ,
            "FLOE_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
            "FLOE_KAFKA__TOPIC_PREFIX": k.topic_prefix,
            "FLOE_KAFKA__GROUP_PREFIX": k.group_prefix,
            "FLOE_KAFKA__FETCH_MAX_WAIT_MS": "20",
            "FLOE_CONTRACTS_DIR": str(contracts),
            "FLOE_HEALTH_PORT": "-1",
            "FLOE_LOG_FORMAT": "text",
            "FLOE_CHECKS__WATCH_CONTRACTS_DIR": "false",
            "FLOE_TICK_INTERVAL_S": "3600",
        }
        group = f"{k.group_prefix}-processor"
        t0 = time.perf_counter()
        a_proc = await start(env, tmp / "a.log")
        await wait_log(tmp / "a.log", r"loaded \d+ contracts", a_proc, 900)
        base_rss, _ = rss_mb(a_proc.pid or 0)
        t_loaded = time.perf_counter() - t0
        print(f"A: contracts loaded after {t_loaded:.1f} s, RSS {base_rss:.0f} MB (no state yet)")
        deadline = time.monotonic() + 900
        while not await caught_up(k, group, mat, a.partitions):
            if time.monotonic() > deadline:
                raise TimeoutError("processor A did not catch up")
            await asyncio.sleep(1)
        await asyncio.sleep(2)  # the last commit's state write
        rss, hwm = rss_mb(a_proc.pid or 0)
        print(
            f"A: {a.rounds * a.assets:,} events consumed {time.perf_counter() - t0 - t_loaded:.1f} s after the load; "
            f"holding {a.assets:,} assets' state: RSS {rss:.0f} MB (peak {hwm:.0f} MB; "
            f"+{rss - base_rss:.0f} MB over the contracts alone)"
        )
        a_proc.send_signal(signal.SIGTERM)
        await a_proc.wait()
        await asyncio.sleep(5)  # the cleaner (backoff 1 s) compacts the rolled segments
        reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await reader.start()
        tps = [TopicPartition(state_topic, p) for p in range(a.partitions)]
        end = await reader.end_offsets(tps)
        await reader.stop()
        t0 = time.perf_counter()
        b_proc = await start(env, tmp / "b.log")
        m = await wait_log(
            tmp / "b.log",
            r"assets in state; (\d+) changelog records read in ([\d.]+) s",
            b_proc,
            900,
        )
        wall = time.perf_counter() - t0
        await asyncio.sleep(2)
        rss_b, hwm_b = rss_mb(b_proc.pid or 0)
        print(
            f"B: changelog end offsets {sum(end.values()):,} in total; restore read {int(m.group(1)):,} records "
            f"in {float(m.group(2)):.2f} s (start → restored {wall:.1f} s, contracts load included); "
            f"RSS {rss_b:.0f} MB once restored (peak {hwm_b:.0f} MB)"
        )
        b_proc.send_signal(signal.SIGTERM)
        await b_proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
