"""timeToDetect / timeToNotify / timeToRepair over the real PostgreSQL: episodes produced by the real checks,
stored through the sink's write path, one delivered through the alert ledger, summarized against the
contract's ODCS targets; and `floe sla report --response`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml

from floe_stream.contracts.loader import load_contract_text
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate
from floe_stream.reporting import store
from floe_stream.reporting.response import fetch_response_rows, summarize_response
from floe_stream.topics.violation import decode_violation, encode_violation

pytestmark = [pytest.mark.postgres]

FLOE = str(Path(sys.executable).parent / "floe")


async def floe(dsn: str, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    full = {**os.environ, "FLOE_DATABASE__DSN": dsn, "FLOE_DATABASE__CONNECT_TIMEOUT_S": "2", **env}
    proc = await asyncio.create_subprocess_exec(
        FLOE, *args, env=full, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
CONTRACT: dict[str, object] = {
    "apiVersion": "v3.1.0", "kind": "DataContract", "id": "resp", "name": "resp", "version": "1", "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id"}]}],
    "slaProperties": [
        {"property": "latency", "value": 10, "unit": "m"},
        {"property": "timeToDetect", "value": 2, "unit": "m"},
        {"property": "timeToNotify", "value": 1, "unit": "m"},
        {"property": "timeToRepair", "value": 1, "unit": "h"},
    ],
}  # fmt: skip


async def test_response_times_against_targets(pg_dsn: str, tmp_path: Path) -> None:
    (asset,) = load_contract_text(yaml.safe_dump(CONTRACT), "resp.yaml").assets
    eng = Engine(clock_skew_s=0)
    events = []
    eng.apply_update(asset, AssetUpdate("orders", "materialization", "u0", T0), T0)
    # first episode: ticks every 5 min, breached at T0+10m, detected at the 15 min tick (5 min: above 2 min)
    for minute in (5, 15):
        events += eng.apply_tick([asset], T0 + timedelta(minutes=minute)).violations
    repaired = T0 + timedelta(minutes=45)  # open 30 min: within the 1 h target
    events += eng.apply_update(
        asset, AssetUpdate("orders", "materialization", "u1", repaired), repaired
    ).violations
    # second episode: detected 1 min after the breach, never repaired within the window (open 2 h)
    second = repaired + timedelta(minutes=11)
    events += eng.apply_tick([asset], second).violations
    ces = [decode_violation(dict(h), k, v) for k, v, h in (encode_violation(e) for e in events)]
    opened = [c for c in ces if c.type == "floe.contract.violation"]
    assert len(opened) == 2
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with conn.transaction():
            await store.write_history(conn, [], ces)
        # the first violation was delivered to Slack 30 s after detection (the alert ledger)
        await conn.execute(
            "INSERT INTO alert_deliveries (event_id, channel, status, notification_id, claimed_by, claimed_at,"
            " delivered_at) VALUES ($1, 'slack', 'delivered', 'n1', 'test', $2, $3)",
            opened[0].id, opened[0].data.detected_at, opened[0].data.detected_at + timedelta(seconds=30),
        )  # fmt: skip
        end = second + timedelta(hours=2)
        rows = await fetch_response_rows(conn, T0, end)
    finally:
        await conn.close()
    assert asset.response is not None
    stats = {s.measure: s for s in summarize_response(rows, {"orders": asset.response})}
    detect = stats["detect"]
    assert (detect.episodes, detect.within, detect.max_s) == (2, 1, 300.0)  # 5 min and 1 min vs 2 min
    notify = stats["notify"]
    assert (notify.episodes, notify.within, notify.p50_s) == (2, 1, 30.0)  # the second was never delivered
    repair = stats["repair"]
    assert (repair.episodes, repair.within, repair.compliance_pct) == (2, 1, 50.0)  # 30 min ok; open 2 h

    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "resp.odcs.yaml").write_text(yaml.safe_dump(CONTRACT))
    env = {"FLOE_CONTRACTS_DIR": str(contracts)}
    args = ["sla", "report", "--response", "--window", "24h", "--as-of", end.isoformat()]
    code, out, err = await floe(pg_dsn, *args, "--format", "json", env=env)
    assert code == 0, err
    got = {(r["measure"], r["compliance_pct"]) for r in json.loads(out)}
    assert got == {("detect", 50.0), ("notify", 50.0), ("repair", 50.0)}
    code, out, err = await floe(pg_dsn, *args, env=env)
    assert "orders | repair | 1.0h | 2 | 50.0 % |" in out
