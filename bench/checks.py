"""Checks benchmark: tick sweep over many assets (pure engine) and availability ping fan-out.

    .venv/bin/python -m bench.checks [--assets 100000] [--slow 1000] [--fast 100] [--timeout 1.0]

(a) Tick sweep: one Engine owning N assets (freshness SLA on all, availability SLA on half, 3 quality
    rules on a third), every asset materialized once. Times `apply_tick` over all N for a quiet tick
    (nothing due: the common case) and for a tick where every asset breaches at once (N violations and
    check results built), then the ping scheduling pass (`schedule_pings`) over the same N assets with a
    no-op probe.
(b) Ping fan-out: S slow targets (a real loopback HTTP server that accepts and never answers) and F fast
    ones (a loopback HTTP server answering 200), all submitted at once through the ProbeRunner with the
    per-ping timeout; for several concurrency bounds prints the wall time until every ping finished and
    the latency of the fast pings.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from datetime import UTC, datetime, timedelta

from bench.common import summary
from floe_stream.contracts.models import AvailabilitySla, FreshnessSla, MonitoredAsset, QualityRule, ServerRef
from floe_stream.probes.base import ProbeTarget
from floe_stream.probes.builtin import HttpProbe
from floe_stream.probes.guard import ProbeGuard
from floe_stream.probes.runner import ProbeRunner
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate
from floe_stream.telemetry.metrics import instruments

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)  # the ping pass runs at ~now
RULES = (
    QualityRule(name="ids", column="id", metric="nullValues", operator="mustBe", threshold=0),
    QualityRule(name="dupes", column="id", metric="duplicateValues", operator="mustBe", threshold=0),
    QualityRule(name="volume", metric="rowCount", operator="mustBeGreaterThan", threshold=0),
)


def make_assets(n: int) -> list[MonitoredAsset]:
    out = []
    for i in range(n):
        out.append(
            MonitoredAsset(
                asset_id=f"bench.t{i:06d}",
                contract_id=f"c{i // 100}",
                contract_name=f"contract-{i // 100}",
                contract_version="1.0.0",
                table=f"t{i:06d}",
                freshness=FreshnessSla(threshold_s=3600),
                availability=AvailabilitySla(target_ratio=0.999) if i % 2 == 0 else None,
                quality_rules=RULES if i % 3 == 0 else (),
                servers=(ServerRef(server="db", type="custom", host="127.0.0.1", port=9),),
                owner="team",
            )
        )
    return out


class NoopProbe:
    name = "custom"

    async def ping(self, target: ProbeTarget) -> None:
        return None


async def sweep(n: int) -> None:
    t = time.perf_counter()
    assets = make_assets(n)
    print(f"(a) tick sweep, {n:,} assets in one process (built in {time.perf_counter() - t:.1f}s)")
    eng = Engine(clock_skew_s=0)
    for a in assets:
        eng.apply_update(
            a, AssetUpdate(asset_id=a.asset_id, source="materialization", event_id="e", updated_at=T0), T0
        )
    eng.take_dirty()
    gc.collect()
    gc.freeze()  # as the processor does after rebuilding its state
    for label, at in (
        ("quiet tick (nothing due)", T0 + timedelta(minutes=5)),
        ("quiet tick again", T0 + timedelta(minutes=6)),
    ):
        t = time.perf_counter()
        out = eng.apply_tick(assets, at)
        dt = time.perf_counter() - t
        print(
            f"    {label:<34} {dt * 1000:8.1f} ms  {n / dt:12,.0f} assets/s  violations={len(out.violations)}"
        )
    t = time.perf_counter()
    out = eng.apply_tick(assets, T0 + timedelta(hours=2))
    dt = time.perf_counter() - t
    print(
        f"    {'every asset breaches at once':<34} {dt * 1000:8.1f} ms  {n / dt:12,.0f} assets/s  violations={len(out.violations)}"
    )
    dirty = eng.take_dirty()
    t = time.perf_counter()
    blobs = [st.model_dump_json() for st in dirty]
    dt = time.perf_counter() - t
    print(
        f"    {'serialize changed state':<34} {dt * 1000:8.1f} ms  ({len(blobs):,} states, {sum(map(len, blobs)) / len(blobs):.0f} B avg)"
    )

    from floe_stream.contracts.registry import ContractRegistry
    from floe_stream.runtime.deployables.checks_runtime import ChecksRuntime
    from floe_stream.settings import Settings

    rt = ChecksRuntime(Settings(health_port=-1), ContractRegistry(), eng, instruments())
    rt.runner = (
        ProbeRunner(  # the assets' server is 127.0.0.1:9, never connected to: the guard would refuse it
            {"tcp": NoopProbe()},  # type: ignore[dict-item]
            concurrency=1000,
            guard=ProbeGuard.everything(),
        )
    )
    t = time.perf_counter()
    started = rt.schedule_pings(assets, T0 + timedelta(hours=3))
    dt = time.perf_counter() - t
    print(f"    {'schedule pings (background tasks)':<34} {dt * 1000:8.1f} ms  {started:,} pings started")
    t = time.perf_counter()
    while rt.runner.inflight:
        await asyncio.sleep(0.01)
    print(
        f"    {'run them (no-op probe)':<34} {(time.perf_counter() - t) * 1000:8.1f} ms  results={len(rt.runner.take()):,}"
    )


LOOPBACK = ProbeGuard.from_settings(["127.0.0.0/8"])  # the targets below listen on loopback

TARGETS = r"""
import asyncio, contextlib, sys
async def silent(r, w):
    with contextlib.suppress(Exception):
        await r.read()  # never answers; returns when the client gives up
    w.close()
async def ok(r, w):
    with contextlib.suppress(Exception):
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await w.drain()
    w.close()
async def main():
    s = await asyncio.start_server(silent, "127.0.0.1", 0, backlog=4096)
    f = await asyncio.start_server(ok, "127.0.0.1", 0, backlog=4096)
    print(s.sockets[0].getsockname()[1], f.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


async def fanout(slow: int, fast: int, timeout: float, bounds: list[int]) -> None:
    # the targets live in their own process: the numbers are the prober's cost only
    targets = await asyncio.create_subprocess_exec(
        sys.executable, "-c", TARGETS, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert targets.stdout is not None and targets.stdin is not None
    slow_port, fast_port = (int(x) for x in (await targets.stdout.readline()).split())
    urls = {"s": f"http://127.0.0.1:{slow_port}/", "f": f"http://127.0.0.1:{fast_port}/"}
    print(
        f"(b) ping fan-out: {slow:,} slow targets (never answer) + {fast} fast ones, submitted at once, timeout {timeout}s"
    )
    order = [("s", i) for i in range(slow)]
    for j in range(fast):  # fast targets spread among the slow ones
        order.insert(min(len(order), j * max(1, slow // max(1, fast))), ("f", j))
    for bound in bounds:
        runner = ProbeRunner({"http": HttpProbe()}, concurrency=bound, guard=LOOPBACK)  # type: ignore[dict-item]
        for rnd in ("first round", "next round (slow ones known)"):
            t = time.perf_counter()
            for kind, i in order:
                runner.submit(f"{kind}{i}", ProbeTarget(type="http", url=urls[kind]), T0, timeout)
            while runner.inflight:
                await asyncio.sleep(0.005)
            wall = time.perf_counter() - t
            res = runner.take()
            start = min(r.started_at.timestamp() for r in res)
            fast_res = [r for r in res if r.asset.startswith("f")]
            fast_ok = sum(1 for r in fast_res if r.ok)
            slow_to = sum(1 for r in res if r.asset.startswith("s") and r.reason == "timeout")
            last_fast = max(r.started_at.timestamp() + r.duration_ms / 1000 for r in fast_res) - start
            print(
                f"    bound {bound:>5}, {rnd:<29}: all {len(res):,} done in {wall:5.2f}s, {slow_to:,} slow timed out; "
                f"fast ok {fast_ok}/{fast}, last fast answer after {last_fast:.2f}s, "
                f"fast ping ms {summary([r.duration_ms for r in fast_res])}"
            )
    targets.stdin.close()
    await targets.wait()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--slow", type=int, default=1000)
    ap.add_argument("--fast", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--bounds", default="200,1000,2000")
    args = ap.parse_args()
    await sweep(args.assets)
    await fanout(args.slow, args.fast, args.timeout, [int(b) for b in args.bounds.split(",")])


if __name__ == "__main__":
    asyncio.run(main())
