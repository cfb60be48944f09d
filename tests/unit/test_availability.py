"""Availability: rolling ratio vs SLA from ping outcomes (pure), probe targets, and the ping runner over
real loopback sockets (timeouts, refused connections, bounded concurrency, slow targets)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from floe_stream.contracts.models import AvailabilitySla, MonitoredAsset, ServerRef
from floe_stream.probes.base import ProbeTarget
from floe_stream.probes.builtin import HttpProbe, TcpProbe
from floe_stream.probes.guard import ProbeGuard
from floe_stream.probes.registry import load_probes
from floe_stream.probes.runner import ProbeRunner
from floe_stream.probes.targets import target_for
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import Outputs
from floe_stream.topics import CheckStatus, ResolvedData, Severity, ViolationData
from floe_stream.topics.probe import ProbeResult
from tests.conftest import wait_for

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def asset(target: float = 0.5, **kw: object) -> MonitoredAsset:
    base: dict[str, object] = {
        "asset_id": "api.orders", "contract_id": "c1", "contract_name": "orders-api", "contract_version": "1",
        "table": "orders", "availability": AvailabilitySla(target_ratio=target),
        "servers": (ServerRef(server="prod", type="postgres", host="db.internal", port=5432, database="sales"),),
    }  # fmt: skip
    base.update(kw)
    return MonitoredAsset.model_validate(base)


def probe(i: int, ok: bool, reason: str | None = None) -> ProbeResult:
    at = T0 + timedelta(seconds=60 * i)
    return ProbeResult(probe_id=f"p{i}", asset="api.orders", scheduled_at=at, started_at=at, duration_ms=1.0,
                       ok=ok, reason=reason, probe="tcp", target="db.internal:5432")  # fmt: skip


def judge(eng: Engine, a: MonitoredAsset, result: ProbeResult) -> Outputs:
    """The engine judges a ping when its result is published: now = the ping's own time."""
    return eng.apply_probe(a, result, result.started_at)


def test_ratio_breach_opens_and_recovery_resolves() -> None:
    eng, a = Engine(), asset(target=0.5)
    assert judge(eng, a, probe(0, True)).violations == []
    out = judge(eng, a, probe(1, False, "timeout"))  # 1/2 = 50%: budget fully used, not below
    assert [v.severity for v in out.violations] == [Severity.WARNING]
    out = judge(eng, a, probe(2, False, "connection refused"))  # 1/3 < 50%
    [res] = out.check_results
    assert (res.status, res.metric) == (CheckStatus.FAIL, pytest.approx(1 / 3, abs=1e-6))
    [v] = out.violations
    assert isinstance(v, ViolationData)
    assert v.severity == Severity.ERROR
    assert v.context["consecutive_failures"] == "2"
    assert v.context["last_failure_reason"] == "connection refused"
    st = eng.states["api.orders"].checks["availability"]
    assert st["consecutive_failures"] == 2
    for i in range(3, 6):
        out = judge(eng, a, probe(i, True))
    assert [type(v).__name__ for v in out.violations] == ["ResolvedData"]  # 4/6 ≥ 50%
    assert isinstance(out.violations[0], ResolvedData)
    assert out.violations[0].correlation_key == v.correlation_key


def test_duplicate_or_older_ping_is_not_counted_twice() -> None:
    eng, a = Engine(), asset()
    judge(eng, a, probe(1, True))
    assert judge(eng, a, probe(1, False)).check_results == []
    assert judge(eng, a, probe(0, False)).check_results == []


def test_old_failures_leave_the_24h_window() -> None:
    # judged from the first ping (by default a 90 % SLA is judged from 10 pings, see test_availability_999)
    eng, a = Engine(), asset(target=0.9, overrides={"checks": {"availability_min_samples": 1}})
    judge(eng, a, probe(0, False))
    out = judge(eng, a, probe(60 * 25, True))  # 25 h later
    assert out.check_results[0].metric == 1.0
    assert [type(v).__name__ for v in out.violations] == ["ResolvedData"]


def test_budget_severity_info_and_warning_before_breach() -> None:
    eng, a = Engine(), asset(target=0.9)  # 10 % budget
    for i in range(11):
        judge(eng, a, probe(i, True))
    out = judge(eng, a, probe(11, False))  # 1/12 failed = 8.3 % → 83 % of the budget
    assert [v.severity for v in out.violations] == [Severity.INFO]


def test_asset_without_availability_sla_is_not_judged() -> None:
    assert judge(Engine(), asset(availability=None), probe(0, False)).check_results == []


def test_targets_from_servers_and_overrides() -> None:
    t = target_for(asset())
    assert t is not None
    assert (t.type, t.host, t.port, t.database) == ("postgres", "db.internal", 5432, "sales")
    t = target_for(
        asset(
            overrides={
                "probe": {
                    "type": "http",
                    "url": "https://u:secret@api.example/health?x=1",
                    "expected_status": [200, 204],
                }
            }
        )
    )
    assert t is not None
    assert (t.type, t.expected_status) == ("http", (200, 204))
    assert t.display() == "https://api.example/health"  # never the credentials
    t = target_for(asset(overrides={"probe": {"port": 6543}}))
    assert t is not None
    assert (t.type, t.host, t.port) == ("postgres", "db.internal", 6543)  # merged field by field
    assert target_for(asset(servers=())) is None
    with pytest.raises(ValueError, match="server"):
        target_for(asset(overrides={"probe": {"server": "nope"}}))


def test_builtin_probes_are_registered_as_entry_points() -> None:
    assert {"postgres", "http", "tcp", "kafka"} <= set(load_probes())


LOOPBACK = ProbeGuard.from_settings(["127.0.0.0/8"])  # these tests' targets listen on loopback


async def _server(handler):  # type: ignore[no-untyped-def]
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def test_tcp_refused_and_timeout_reasons() -> None:
    srv, port = await _server(lambda r, w: w.close())
    srv.close()
    await srv.wait_closed()  # nothing listens on the port any more
    runner = ProbeRunner({"tcp": TcpProbe(), "http": HttpProbe()}, guard=LOOPBACK)
    r = await runner.ping("a", ProbeTarget(type="tcp", host="127.0.0.1", port=port), T0, 5)
    assert (r.ok, r.reason) == (False, "connection refused")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)  # accepts, never answers HTTP

    srv, port = await _server(silent)
    async with srv:
        r = await runner.ping("a", ProbeTarget(type="http", url=f"http://127.0.0.1:{port}/"), T0, 0.3)
    assert (r.ok, r.reason) == (False, "timeout")
    r = await runner.ping("a", ProbeTarget(type="nope"), T0, 1)
    assert (r.ok, r.reason) == (False, "no probe for type 'nope'")


async def test_http_expected_status() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    srv, port = await _server(handler)
    async with srv:
        runner = ProbeRunner({"http": HttpProbe()}, guard=LOOPBACK)
        bad = await runner.ping("a", ProbeTarget(type="http", url=f"http://127.0.0.1:{port}/"), T0, 5)
        ok = await runner.ping(
            "a", ProbeTarget(type="http", url=f"http://127.0.0.1:{port}/", expected_status=(503,)), T0, 5
        )
    assert (bad.ok, bad.reason) == (False, "status 503")
    assert ok.ok


async def test_slow_targets_never_delay_fast_ones_and_concurrency_is_bounded() -> None:
    class Slow:
        name = "slow"
        running = 0
        peak = 0

        async def ping(self, target: ProbeTarget) -> None:
            Slow.running += 1
            Slow.peak = max(Slow.peak, Slow.running)
            try:
                await asyncio.sleep(10 if target.host == "slow" else 0)
            finally:
                Slow.running -= 1

    runner = ProbeRunner({"slow": Slow()}, concurrency=20, guard=ProbeGuard.everything())
    for i in range(10):
        runner.submit(f"slow{i}", ProbeTarget(type="slow", host="slow"), T0, 0.5)
    for i in range(30):
        runner.submit(f"fast{i}", ProbeTarget(type="slow", host="fast"), T0, 0.5)
    assert not runner.submit("slow0", ProbeTarget(type="slow", host="slow"), T0, 0.5)  # still in flight
    await wait_for(lambda: len(runner.results) >= 30, timeout=5)
    assert all(r.ok for r in runner.results)  # the 30 fast ones finished before any slow one timed out
    await wait_for(lambda: not runner.inflight, timeout=10)
    results = runner.take()
    assert Slow.peak <= 20
    assert sorted(r.reason for r in results if not r.ok) == ["timeout"] * 10
