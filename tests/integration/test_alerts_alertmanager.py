"""The real Alertmanager (Debian prometheus-alertmanager): our alerts arrive grouped at its webhook
receiver, are kept firing by re-sends, and resolve when the violation resolves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from floe_stream.runtime.deployables.app import alerts_sink
from floe_stream.settings import Settings
from floe_stream.sinks.alerts.config import parse_config
from tests.conftest import wait_for
from tests.integration.helpers import Running
from tests.integration.receivers import Alertmanager, HttpReceiver, publish_violations
from tests.unit.alert_factory import resolved, violation

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.tool]


async def test_alerts_arrive_grouped_at_alertmanager_receiver_and_resolve(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        HttpReceiver() as hook,
        Alertmanager(tmp_path, f"{hook.url}/hook", group_by=["contract", "asset"]) as am,
    ):
        cfg = parse_config(
            {
                "policy": {"group_wait_s": 0.5, "resend_interval_s": 1},
                "channels": [
                    {
                        "name": "am",
                        "type": "alertmanager",
                        "url": am.url,
                        "timeout_s": 5,
                        "options": {"firing_ttl_s": 3},
                    }
                ],
                "routes": [{"channel": "am"}],
            }
        )
        sink = alerts_sink(settings, cfg)
        now = datetime.now(UTC)
        v1 = violation("orders.v1", element="amount", at=now)
        v2 = violation("orders.v1", element="id", at=now)
        other = violation("payments.v1", contract="payments", element="fee", at=now)
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await publish_violations(settings, [v1, v2, other])

            def firing_groups() -> list[dict]:  # type: ignore[type-arg]
                return [r.json() for r in hook.requests if r.json()["status"] == "firing"]

            await wait_for(lambda: len({g["groupKey"] for g in firing_groups()}) == 2, timeout=30)
            orders = next(g for g in firing_groups() if g["groupLabels"].get("asset") == "orders.v1")
            assert len(orders["alerts"]) == 2  # grouped into one notification by Alertmanager
            a = orders["alerts"][0]
            assert {"alertname", "contract", "asset", "violation_type", "severity"} <= set(a["labels"])
            assert a["generatorURL"].startswith("http")
            assert a["annotations"]["expected"] == "double"

            # kept firing by re-sends: endsAt (now + 3 s when sent) keeps moving forward while open
            async with httpx.AsyncClient() as c:

                async def ends() -> dict[str, str]:
                    listed = (await c.get(f"{am.url}/api/v2/alerts")).json()
                    return {
                        x["labels"]["incident"]: x["endsAt"]
                        for x in listed
                        if x["status"]["state"] == "active"
                    }

                first = await ends()
                assert len(first) == 3

                async def moved() -> bool:
                    later = await ends()
                    return len(later) == 3 and all(later[k] > first[k] for k in first)

                await wait_for(moved, timeout=30)

            await publish_violations(settings, [resolved(v1), resolved(v2)])
            await wait_for(
                lambda: any(
                    r.json()["status"] == "resolved" and r.json()["groupLabels"].get("asset") == "orders.v1"
                    for r in hook.requests
                ),
                timeout=30,
            )
        done = [r.json() for r in hook.requests if r.json()["status"] == "resolved"]
        assert all(x["labels"]["asset"] == "orders.v1" for g in done for x in g["alerts"])
