"""The state behind availability ratios, failure counters, breach counters and open episodes survives
SIGKILL of a processor and the rebalance to another: no reset, no duplicate violation, one resolve."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from floe_stream.processors.model import AssetState
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import Settings
from floe_stream.topics import ResolvedData, Severity, TopicKey, ViolationData
from tests.conftest import wait_for
from tests.integration.checks_support import TcpTarget, availability_contract, probing_loopback, write
from tests.integration.helpers import Running, floe_env, read_all, start_floe, stop_process, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

ASSET = "test.db"


async def _changelog_state(s: Settings) -> AssetState | None:
    last = None
    for r in await read_all(s, TopicKey.PROCESSOR_STATE):
        if r.key == ASSET.encode():
            last = AssetState.model_validate_json(r.value) if r.value else None
    return last


async def test_state_survives_kill_and_rebalance(settings: Settings, tmp_path: Path) -> None:
    tcp = TcpTarget()  # down
    sock = f"  - server: db\n    type: custom\n    host: 127.0.0.1\n    port: {tcp.port}"
    write(tmp_path / "c", "db.odcs.yaml", availability_contract("avail-db", ASSET, sock, sla="50%"))
    s = probing_loopback(settings, contracts_dir=tmp_path / "c")
    proc = await start_floe(["run", "processor"], floe_env(s), tmp_path / "processor-a.log")
    try:
        async with Running(Ticker(s, ticker_id="t1")):

            async def opened() -> list[ViolationData]:
                return [
                    e.data
                    for e in await violations(s)
                    if isinstance(e.data, ViolationData) and e.data.asset == ASSET
                ]

            first = (await wait_for(opened, timeout=40))[0]
            assert first.severity == Severity.ERROR

            async def failed_a_few() -> AssetState | None:
                st = await _changelog_state(s)
                return (
                    st
                    if st and st.checks.get("availability", {}).get("consecutive_failures", 0) >= 3
                    else None
                )

            before = await wait_for(failed_a_few, timeout=30)
            proc.kill()  # SIGKILL: no clean shutdown, no final commit
            await proc.wait()
            fails_before = before.checks["availability"]["consecutive_failures"]
            pings_before = sum(v[1] for v in before.checks["availability"]["buckets"].values())

            b = processor_service(s, load_registry(s))
            async with Running(b):
                # B rebuilds the state from the changelog and goes on counting from there
                def counted_on() -> AssetState | None:
                    st = b.pipeline.engine.state_of(ASSET)
                    av = st.checks.get("availability", {}) if st else {}
                    return st if av.get("consecutive_failures", 0) > fails_before else None

                st = await wait_for(counted_on, timeout=40)
                assert sum(v[1] for v in st.checks["availability"]["buckets"].values()) > pings_before
                assert st.open["availability"].violation_id == first.violation_id  # the same episode
                assert st.breaches == before.breaches  # CRITICAL counters kept
                await tcp.start()
                resolved = await wait_for(lambda: _resolved(s, first.correlation_key), timeout=40)
        assert resolved.opened_at == first.episode_started_at
        opens = {v.violation_id for v in await opened()}
        assert opens == {first.violation_id}  # never re-opened or duplicated across the failover
    finally:
        with contextlib.suppress(Exception):
            await stop_process(proc)
        await tcp.stop()


async def _resolved(s: Settings, corr: str) -> ResolvedData | None:
    evs = [
        e.data
        for e in await violations(s)
        if isinstance(e.data, ResolvedData) and e.data.correlation_key == corr
    ]
    return evs[0] if evs else None
