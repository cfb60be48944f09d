"""Availability over the real broker: real HTTP and TCP targets on loopback are pinged on ticks; outages
become violations and recoveries resolved events; contracts are registered and retired while running."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.checks_runtime import publish_contracts, retire_contracts
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import Settings
from floe_stream.topics import CheckResult, ResolvedData, Severity, TopicKey, ViolationData
from tests.conftest import wait_for
from tests.integration.checks_support import (
    HttpTarget,
    TcpTarget,
    availability_contract,
    probing_loopback,
    write,
)
from tests.integration.helpers import Running, read_all, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _results(s: Settings, asset: str) -> list[CheckResult]:
    recs = await read_all(s, TopicKey.CHECK_RESULTS)
    out = [CheckResult.model_validate_json(r.value) for r in recs]
    return [r for r in out if r.asset == asset and r.check_type.value == "availability"]


async def _events(s: Settings, asset: str, kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in await violations(s) if e.data.asset == asset and isinstance(e.data, kind)]


@pytest.mark.slow
async def test_failing_http_and_stopped_tcp_targets_violate_then_resolve(
    settings: Settings, tmp_path: Path
) -> None:
    http = await HttpTarget(status=503).start()
    tcp = TcpTarget()  # stopped: nothing listens on its port yet
    contracts = tmp_path / "contracts"
    server = f"  - server: api\n    type: api\n    location: http://127.0.0.1:{http.port}/health"
    write(contracts, "http.odcs.yaml", availability_contract("avail-http", "test.http", server))
    s = probing_loopback(settings, contracts_dir=contracts)
    processor = processor_service(s, load_registry(s))
    try:
        async with Running(processor, Ticker(s, ticker_id="t1")):
            await wait_for(lambda: processor.ever_assigned, timeout=30)
            # the TCP asset's contract arrives through the contracts topic while running (no restart)
            sock = f"  - server: sock\n    type: custom\n    host: 127.0.0.1\n    port: {tcp.port}"
            tcp_file = write(
                tmp_path / "pub", "tcp.odcs.yaml", availability_contract("avail-tcp", "test.tcp", sock)
            )
            await publish_contracts(s, [tcp_file])

            async def opened(asset: str) -> list:  # type: ignore[type-arg]
                return [
                    e for e in await _events(s, asset, ViolationData) if e.data.severity == Severity.ERROR
                ]

            http_v = (await wait_for(lambda: opened("test.http"), timeout=30))[0].data
            tcp_v = (await wait_for(lambda: opened("test.tcp"), timeout=30))[0].data
            assert http_v.violation_type.value == "availability"
            assert http_v.context["last_failure_reason"] == "status 503"
            assert http_v.context["target"] == f"http://127.0.0.1:{http.port}/health"
            assert tcp_v.context["last_failure_reason"] == "connection refused"
            assert http_v.owner == "bob"
            assert "below the 50% SLA" in http_v.message

            # both targets come back: the ratio climbs over the SLA and each episode resolves
            http.status = 200
            await tcp.start()
            for v in (http_v, tcp_v):
                resolved = await wait_for(lambda v=v: _resolved(s, v.correlation_key), timeout=30)
                assert resolved.open_duration_s > 0
                assert resolved.violation_type.value == "availability"
            assert http.requests >= 3

            # retire the TCP contract: its pings and checks stop, the HTTP asset goes on
            await retire_contracts(s, ["avail-tcp"])
            await wait_for(lambda: processor.registry.get("test.tcp") is None, timeout=20)
            before = len(await _results(s, "test.tcp"))
            n_http = len(await _results(s, "test.http"))
            await wait_for(lambda: _more(s, "test.http", n_http + 4), timeout=30)
            assert len(await _results(s, "test.tcp")) <= before + 1  # at most one ping was already in flight
            assert "test.tcp" not in processor.pipeline.asset_ids()
    finally:
        await http.stop()
        await tcp.stop()


async def _resolved(s: Settings, corr: str) -> ResolvedData | None:
    evs = [
        e.data
        for e in await violations(s)
        if isinstance(e.data, ResolvedData) and e.data.correlation_key == corr
    ]
    return evs[0] if evs else None


async def _more(s: Settings, asset: str, n: int) -> bool:
    return len(await _results(s, asset)) >= n
