"""100,000 tables on one processor: spawn → ready, restart → ready, resident memory, a contract change.

    .venv/bin/python -m bench.state [--broker kafka|tansu] [--assets 100000] [--per-contract 1000]
                                    [--style user|minimal] [--contracts dir|topic] [--rounds 2]

1. Generated contracts, ``--per-contract`` tables each. ``--style user`` (default) writes them the way users do:
   a postgres server, a team, 4 typed columns per table, a qualified physical name (the asset id), a latency
   SLA on a column; ``--style minimal`` is one column and an explicit ``floe.asset`` per table.
   ``--contracts dir`` (default): in FLOE_CONTRACTS_DIR, compiled first with ``floe contracts compile`` when
   this floe has it (timed apart: done once per contract version, at deploy); ``topic``: published with
   ``floe contracts publish`` and read from the contracts topic (an empty directory).
2. The processor-state topic is created with aggressive compaction (``segment.ms=2000``,
   ``min.cleanable.dirty.ratio=0.01``), so the broker compacts it while the run goes on (Apache Kafka; Tansu
   ignores topic configs). ``--rounds`` materializations per asset are published.
3. Process A (`floe run processor`): spawn → ``/readyz`` 200 (contracts loaded, partitions assigned), its RSS
   then; the time to consume every materialization (its group's committed offsets reach the end) and its RSS
   holding every asset's state (VmRSS, peak VmHWM from /proc).
4. A contract change while A runs: ``floe contracts publish`` (the CLI, start included) of the first contract
   with its latency SLA tightened from 1 h to 1 s, ticks every second from then on (what ``floe run ticker``
   sends) → the first violation of one of its tables on the violations topic.
5. SIGTERM; process B on the same group: spawn → ``/readyz`` 200 (state restored from the changelog; its log
   line gives the records read and the restore's own time), its RSS then.

Runs against whichever floe is installed in the interpreter's venv (the old main's too: it uses only what both
have), so two venvs give the before/after of one run on one box.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.common import fill
from floe_stream.runtime.devtools.embedded import BROKER_KINDS, free_port, make_broker
from floe_stream.runtime.framework.kafka import ensure_topics, make_producer
from floe_stream.settings import KafkaSettings
from floe_stream.topics import MaterializationEvent, TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.tick import Tick

FLOE = Path(sys.executable).parent / "floe"


def asset_id(i: int, per: int, style: str) -> str:
    c, t = divmod(i, per)
    return f"db{c:04d}.public.t{t:04d}" if style == "user" else f"bench.c{c:04d}.t{t:04d}"


def user_contract(c: int, tables: int, latency: str = "value: 1\n    unit: h") -> str:
    """A contract as users write them: a server, a team, 4 typed columns per table (its qualified physical name:
    the asset id, in this floe and the older ones alike), a latency SLA."""
    body = "".join(
        f"  - name: t{i:04d}\n    physicalName: db{c:04d}.public.t{i:04d}\n    physicalType: table\n"
        "    logicalType: object\n"
        f"    description: Table {i} of domain {c}, loaded hourly.\n"
        "    properties:\n"
        "      - {name: id, logicalType: integer, physicalType: bigint, required: true, primaryKey: true}\n"
        "      - {name: customer, logicalType: string, physicalType: varchar(200)}\n"
        "      - {name: amount, logicalType: number, physicalType: 'numeric(12,2)'}\n"
        "      - {name: updated_at, logicalType: timestamp, physicalType: timestamptz, required: true}\n"
        for i in range(tables)
    )
    return (
        f"apiVersion: v3.1.0\nkind: DataContract\nid: c{c:04d}\nname: c{c:04d}\nversion: 1.0.0\nstatus: active\n"
        f"domain: d{c % 10}\n"
        f"servers:\n  - server: prod\n    type: postgres\n    host: db{c:04d}.internal\n    port: 5432\n"
        f"    database: db{c:04d}\n    schema: public\n"
        f"team:\n  name: team-{c % 20}\n  members:\n    - {{username: owner{c}@example.com, role: owner}}\n"
        f"schema:\n{body}"
        f"slaProperties:\n  - property: latency\n    {latency}\n    element: updated_at\n"
    )


def minimal_contract(c: int, tables: int, per: int, latency: str = "value: 3600\n    unit: s") -> str:
    body = "\n".join(
        f"  - name: t{i:04d}\n    customProperties: [{{property: floe, value: {{asset: {asset_id(c * per + i, per, 'minimal')}}}}}]\n"
        f"    properties: [{{name: id, logicalType: integer, required: true}}]"
        for i in range(tables)
    )
    return (
        f"apiVersion: v3.1.0\nkind: DataContract\nid: c{c:04d}\nname: c{c:04d}\nversion: 1.0.0\n"
        f"status: active\nschema:\n{body}\n"
        f"slaProperties:\n  - property: latency\n    {latency}\n"
    )


def contract_text(c: int, n: int, per: int, style: str, tight: bool = False) -> str:
    tables = min(per, n - c * per)
    if style == "user":
        return user_contract(c, tables, "value: 1\n    unit: s" if tight else "value: 1\n    unit: h")
    return minimal_contract(c, tables, per, "value: 1\n    unit: s" if tight else "value: 3600\n    unit: s")


def write_contracts(root: Path, n: int, per: int, style: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for c in range((n + per - 1) // per):
        (root / f"c{c:04d}.odcs.yaml").write_text(contract_text(c, n, per, style))
    return root


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def ready(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        return b" 200 " in line
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def wait_ready(port: int, proc: asyncio.subprocess.Process, log: Path, timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.returncode is not None:
            raise RuntimeError(f"processor exited ({proc.returncode}): {log.read_text()[-2000:]}")  # noqa: ASYNC240
        if await ready(port):
            return time.perf_counter() - t0
        await asyncio.sleep(0.05)
    raise TimeoutError(f"/readyz not 200 after {timeout}s: {log}")


async def caught_up(k: KafkaSettings, group: str, topic: str, partitions: int) -> bool:
    c = AIOKafkaConsumer(bootstrap_servers=k.bootstrap_servers, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        end = await c.end_offsets(tps)
        return all([(await c.committed(tp) or 0) >= end[tp] for tp in tps])
    finally:
        await c.stop()


async def spawn(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    fh = open(log, "ab")  # noqa: SIM115
    return await asyncio.create_subprocess_exec(str(FLOE), *args, env=env, stdout=fh, stderr=fh)


def has_command(*words: str) -> bool:
    return subprocess.run([str(FLOE), *words, "--help"], capture_output=True).returncode == 0


async def contract_change(
    env: dict[str, str], tmp: Path, k: KafkaSettings, a: argparse.Namespace, style: str
) -> float:
    """Publish contract c0000 with a 1 s latency SLA (the CLI), ticks every second → seconds until the first
    violation of one of its tables is on the violations topic."""
    changed = tmp / "changed" / "c0000.odcs.yaml"
    changed.parent.mkdir(exist_ok=True)
    changed.write_text(contract_text(0, a.assets, a.per_contract, style, tight=True))
    prefix = asset_id(0, a.per_contract, style).rsplit(".", 1)[0].encode() + b"."
    viol = topic_name(k.topic_prefix, TopicKey.VIOLATIONS)
    reader = AIOKafkaConsumer(bootstrap_servers=k.bootstrap_servers)
    await reader.start()
    tps = [TopicPartition(viol, p) for p in range(a.partitions)]
    reader.assign(tps)
    await reader.seek_to_end(*tps)
    for tp in tps:
        await reader.position(tp)
    ticks = make_producer(k, linger_ms=0)
    await ticks.start()
    tick_topic = topic_name(k.topic_prefix, TopicKey.TICKS)

    async def tick_every_second() -> None:
        # what `floe run ticker` sends, started with the publish: no backlog of earlier sweeps in the way
        while True:
            body = (
                Tick(tick_time=datetime.now(UTC), interval_s=1, ticker_id="bench").model_dump_json().encode()
            )
            await asyncio.gather(
                *[await ticks.send(tick_topic, body, partition=p) for p in range(a.partitions)]
            )
            await asyncio.sleep(1)

    ticker: asyncio.Task[None] | None = None
    try:
        t0 = time.perf_counter()
        pub = await asyncio.create_subprocess_exec(
            str(FLOE), "contracts", "publish", str(changed), env=env, stdout=subprocess.DEVNULL
        )
        ticker = asyncio.create_task(tick_every_second())
        await pub.wait()
        deadline = t0 + 300
        while time.perf_counter() < deadline:
            batch = await reader.getmany(timeout_ms=100)
            if any(r.key and r.key.startswith(prefix) for recs in batch.values() for r in recs):
                return time.perf_counter() - t0
        raise TimeoutError("no violation of the changed contract within 300 s")
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        await ticks.stop()
        await reader.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", choices=BROKER_KINDS, default="kafka")
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--per-contract", type=int, default=1000)
    ap.add_argument("--style", choices=("user", "minimal"), default="user")
    ap.add_argument("--contracts", choices=("dir", "topic"), default="dir")
    ap.add_argument("--rounds", type=int, default=2, help="materializations per asset")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--no-change", action="store_true", help="skip the contract change")
    ap.add_argument(
        "--contracts-dir", type=Path, default=None, help="contracts written before (--style user), not again"
    )
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="compiled contracts kept here across runs (new floe only)",
    )
    a = ap.parse_args()
    style = a.style
    tmp = Path(tempfile.mkdtemp(prefix="floe-bench-state-"))
    t = time.perf_counter()
    contracts = a.contracts_dir or write_contracts(tmp / "contracts", a.assets, a.per_contract, style)
    n_contracts = len(list(contracts.glob("*.yaml")))
    print(
        f"floe: {FLOE}; load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}"
    )
    print(
        f"{a.assets:,} assets in {n_contracts} contracts, style {style} (written in {time.perf_counter() - t:.1f} s)"
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
                    for i, aid in ((i, asset_id(i, a.per_contract, style)) for i in range(a.assets))
                ],
            )
        await producer.stop()
        print(f"published {a.rounds} × {a.assets:,} materializations in {time.perf_counter() - t:.1f} s")
        port = free_port()
        env = {
            **os.environ,
            "FLOE_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
            "FLOE_KAFKA__TOPIC_PREFIX": k.topic_prefix,
            "FLOE_KAFKA__GROUP_PREFIX": k.group_prefix,
            "FLOE_KAFKA__FETCH_MAX_WAIT_MS": "20",
            "FLOE_CONTRACTS_DIR": str(contracts),
            "FLOE_HEALTH_PORT": str(port),
            "FLOE_HEALTH_HOST": "127.0.0.1",
            "FLOE_LOG_FORMAT": "text",
            "FLOE_CHECKS__WATCH_CONTRACTS_DIR": "false",
            "FLOE_TICK_INTERVAL_S": "3600",
            "FLOE_CLOCK_SKEW_S": "0",
        }
        if a.cache_dir is not None:
            env["FLOE_CHECKS__CONTRACTS_CACHE_DIR"] = str(a.cache_dir)
        if a.contracts == "topic":
            t = time.perf_counter()
            cmd = [str(FLOE), "contracts", "publish", str(contracts)]
            subprocess.run(cmd, env=env, check=True, capture_output=True)  # noqa: ASYNC221
            print(f"floe contracts publish: {time.perf_counter() - t:.1f} s (once per contract version)")
            empty = tmp / "empty"
            empty.mkdir()
            env["FLOE_CONTRACTS_DIR"] = str(empty)
        elif has_command("contracts", "compile"):
            t = time.perf_counter()
            subprocess.run([str(FLOE), "contracts", "compile"], env=env, check=True, capture_output=True)  # noqa: ASYNC221
            print(f"floe contracts compile: {time.perf_counter() - t:.1f} s (once per contract version)")
        else:
            print("floe contracts compile: not in this floe (every start parses the YAML)")
        group = f"{k.group_prefix}-processor"
        t0 = time.perf_counter()
        a_proc = await spawn(["run", "processor"], env, tmp / "a.log")
        t_ready = await wait_ready(port, a_proc, tmp / "a.log", 900)
        base_rss, _ = rss_mb(a_proc.pid or 0)
        print(f"A: spawn → /readyz 200 in {t_ready:.1f} s; RSS {base_rss:.0f} MB (no state yet)")
        deadline = time.monotonic() + 900
        while not await caught_up(k, group, mat, a.partitions):
            if time.monotonic() > deadline:
                raise TimeoutError("processor A did not catch up")
            await asyncio.sleep(0.5)
        t_consumed = time.perf_counter() - t0 - t_ready
        await asyncio.sleep(2)  # the last commit's state write
        rss, hwm = rss_mb(a_proc.pid or 0)
        print(
            f"A: {a.rounds * a.assets:,} materializations consumed in {t_consumed:.1f} s after ready "
            f"({a.rounds * a.assets / t_consumed:,.0f}/s); holding {a.assets:,} assets' state: RSS {rss:.0f} MB "
            f"(peak {hwm:.0f} MB; +{rss - base_rss:.0f} MB over ready)"
        )
        if not a.no_change:
            took = await contract_change(env, tmp, k, a, style)
            rss_c, _ = rss_mb(a_proc.pid or 0)
            print(
                f"A: contract c0000 republished with a 1 s latency SLA → its first violation in {took:.2f} s "
                f"(CLI start and a 1 s tick included); RSS {rss_c:.0f} MB"
            )
        a_proc.send_signal(signal.SIGTERM)
        await a_proc.wait()
        await asyncio.sleep(5)  # the cleaner (backoff 1 s) compacts the rolled segments
        reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await reader.start()
        tps = [TopicPartition(state_topic, p) for p in range(a.partitions)]
        end = await reader.end_offsets(tps)
        await reader.stop()
        b_proc = await spawn(["run", "processor"], env, tmp / "b.log")
        t_b = await wait_ready(port, b_proc, tmp / "b.log", 900)
        rss_b, hwm_b = rss_mb(b_proc.pid or 0)
        m = re.search(
            r"assets in state; (\d+) changelog records read in ([\d.]+) s",
            (tmp / "b.log").read_text(errors="replace"),
        )
        restore = f"restore read {int(m.group(1)):,} records in {float(m.group(2)):.2f} s; " if m else ""
        print(
            f"B: restart (SIGTERM, a new processor on the group) → /readyz 200 in {t_b:.1f} s "
            f"(changelog end offsets {sum(end.values()):,}; {restore}RSS {rss_b:.0f} MB, peak {hwm_b:.0f} MB)"
        )
        b_proc.send_signal(signal.SIGTERM)
        await b_proc.wait()
        print(
            f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}; logs in {tmp}"
        )


if __name__ == "__main__":
    asyncio.run(main())
