"""The alerts sink with no routing at all (the chart's and compose's defaults before anyone configures
channels): it starts, consumes, says in one log line and in /readyz that nothing will be delivered, and
stays ready (200) — an empty routing is a valid, if useless, configuration, not a crash loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from floe_stream.settings import Settings
from tests.conftest import wait_for
from tests.integration.helpers import floe_env, start_floe, stop_process
from tests.integration.receivers import free_port, publish_violations
from tests.unit.alert_factory import violation

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_alerts_sink_without_routes_starts_and_says_nothing_will_be_delivered(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    empty = tmp_path / "floe.yaml"
    empty.write_text("{}\n")  # what the chart (config.floe: {}) mounts
    env = floe_env(settings, FLOE_CONFIG_FILE=str(empty), FLOE_HEALTH_PORT=str(port))
    env.pop("FLOE_ALERTS__CONFIG_FILE", None)
    log = tmp_path / "sink.log"
    proc = await start_floe(["run", "sink", "alerts"], env, log)
    try:

        async def ready() -> dict | None:  # type: ignore[type-arg]
            assert proc.returncode is None, log.read_text()[-2000:]
            try:
                async with httpx.AsyncClient() as http:
                    r = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.TransportError:
                return None
            return r.json() if r.status_code == 200 else None

        doc = await wait_for(ready, timeout=40, interval=0.2)
        alerts = doc["details"]["alerts"]
        assert alerts["delivering"] is False and alerts["routes"] == 0 and alerts["channels"] == []
        assert "nothing will be delivered" in alerts["reason"]
        lines = [ln for ln in log.read_text().splitlines() if "nothing will be delivered" in ln]
        assert len(lines) == 1, log.read_text()[-2000:]

        # a violation arriving changes nothing: still up and ready, nothing to deliver it to
        await publish_violations(settings, [violation("orders.v1", element="amount", at=datetime.now(UTC))])
        await asyncio.sleep(2)
        assert proc.returncode is None
        assert await ready() is not None
    finally:
        assert await stop_process(proc) == 0, log.read_text()[-2000:]
