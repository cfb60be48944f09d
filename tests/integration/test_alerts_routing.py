"""The real `floe run sink alerts` process with silences added/listed/expired through the CLI, the rate
limit and the dedup window recorded (never silently lost), and a contract's own channel override."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml

from floe_stream.contracts.loader import load_directory
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.runtime.deployables.app import alerts_sink
from floe_stream.settings import Settings
from floe_stream.sinks.alerts.config import parse_config
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, floe_env, start_floe, stop_process
from tests.integration.receivers import HttpReceiver, publish_violations
from tests.unit.alert_factory import violation

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
FLOE = str(Path(sys.executable).parent / "floe")


async def floe(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        FLOE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def reasons(settings: Settings) -> dict[str, str]:
    conn = await asyncpg.connect(settings.database.dsn.get_secret_value())
    try:
        rows = await conn.fetch("SELECT event_id, reason FROM alert_decisions")
    finally:
        await conn.close()
    return {r["event_id"]: r["reason"] for r in rows}


@pytest.mark.slow
async def test_silences_rate_limit_and_dedup_in_a_real_sink_process(
    settings: Settings, tmp_path: Path
) -> None:
    async with HttpReceiver() as hook:
        config = {
            "policy": {
                "group_wait_s": 0,
                "rate_limit": {"max_alerts": 2, "per_s": 3600},
                "dedup_window_s": 1800,
            },
            "channels": [{"name": "hook", "type": "webhook", "url": hook.url, "secret_env": "T_HOOK_SECRET"}],
            "routes": [{"channel": "hook"}],
        }
        (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(config))
        env = floe_env(settings, FLOE_ALERTS__CONFIG_FILE=str(tmp_path / "alerts.yaml"), T_HOOK_SECRET="x")
        conn = await asyncpg.connect(settings.database.dsn.get_secret_value())
        try:  # `floe silence add` refuses contracts nobody registered
            await conn.executemany(
                "INSERT INTO registered_contracts (contract_id, version, name, registered_by) VALUES ($1, '1', $1, 't')",
                [("payments",), ("orders",)],
            )
        finally:
            await conn.close()
        out = await floe(
            env, "silence", "add", "--contract", "payments", "--until", "1h", "--comment", "maintenance"
        )
        silence_id = out.split()[0]
        assert silence_id in await floe(env, "silence", "list")

        proc = await start_floe(["run", "sink", "alerts"], env, tmp_path / "sink.log")
        try:
            now = datetime.now(UTC)
            a = violation("orders.v1", contract="orders", at=now)
            p1 = violation("payments.v1", contract="payments", at=now)
            await publish_violations(settings, [a, p1])
            await wait_for(lambda: len(hook.requests) == 1, timeout=45)
            later = now + timedelta(minutes=5)
            dup = violation("orders.v1", contract="orders", at=later)  # a new episode, same asset and type
            b = violation("orders.v2", contract="orders", at=later)
            c = violation("orders.v3", contract="orders", at=later)
            await publish_violations(settings, [dup])
            await publish_violations(settings, [b])
            await wait_for(lambda: len(hook.requests) == 2, timeout=30)
            await publish_violations(settings, [c])

            async def decided(n: int) -> dict[str, str]:
                got = await reasons(settings)
                return got if len(got) >= n else {}

            got = await wait_for(lambda: decided(5), timeout=30)
            assert got[p1.violation_id] == f"silenced:{silence_id}"
            assert got[dup.violation_id] == "duplicate"
            assert got[c.violation_id] == "rate_limited"

            assert f"expired {silence_id}" in await floe(env, "silence", "expire", silence_id)
            assert "no active silences" in await floe(env, "silence", "list")
            p2 = violation("payments.v1", contract="payments", element="fee", at=later)
            await publish_violations(settings, [p2])
            await wait_for(lambda: len(hook.requests) == 3, timeout=30)
            assert [r.json()["id"] for r in hook.requests] == [
                a.violation_id,
                b.violation_id,
                p2.violation_id,
            ]
            assert "read 0 dead letter(s)" in await floe(env, "alerts", "replay")
        finally:
            assert await stop_process(proc) == 0, (tmp_path / "sink.log").read_text()[-3000:]


async def test_a_bad_alerts_config_stops_start_up_with_one_message(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "alerts.yaml").write_text(
        "channels:\n  - {name: x, type: webhook, url: 'http://x', colour: red}\n"
    )
    env = floe_env(settings, FLOE_ALERTS__CONFIG_FILE=str(tmp_path / "alerts.yaml"))
    proc = await asyncio.create_subprocess_exec(
        FLOE,
        "run",
        "sink",
        "alerts",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "invalid alerts configuration" in out.decode()
    assert "colour" in out.decode()
    assert "Traceback" not in out.decode()


async def test_contract_override_sends_to_its_own_channels(settings: Settings, tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "tests" / "fixtures" / "contracts" / "pipeline.odcs.yaml").read_text())
    doc["customProperties"][0]["value"]["alerts"] = {"channels": ["team"], "min_severity": "warning"}
    (tmp_path / "c.odcs.yaml").write_text(yaml.safe_dump(doc))
    contracts, errors = load_directory(tmp_path)
    assert not errors
    async with HttpReceiver() as default, HttpReceiver() as team:
        cfg = parse_config(
            {
                "policy": {"group_wait_s": 0},
                "channels": [
                    {"name": "default", "type": "webhook", "url": default.url},
                    {"name": "team", "type": "webhook", "url": team.url},
                ],
                "routes": [{"channel": "default"}],
            }
        )
        sink = alerts_sink(settings, cfg, registry=ContractRegistry(contracts))
        own = violation("test.fast", contract="test-pipeline", at=datetime.now(UTC))
        other = violation("orders.v1", contract="orders", at=datetime.now(UTC))
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await publish_violations(settings, [own, other])
            await wait_for(
                lambda: sink.sink.alerts_seen >= 2 and len(team.requests) + len(default.requests) >= 2,
                timeout=30,
            )
        assert [r.json()["id"] for r in team.requests] == [own.violation_id]
        assert [r.json()["id"] for r in default.requests] == [other.violation_id]
