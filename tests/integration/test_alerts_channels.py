"""Violations → alerts sink → real loopback receivers: CloudEvents webhook (parsed back with the cloudevents
SDK, HMAC verified), Slack Block Kit (validated with slack_sdk), PagerDuty-style incidents (one incident per
dedup_key, updated on escalation, closed on resolve). Every violation reaches each channel once."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from cloudevents.core.bindings import http as ce_http
from slack_sdk.models.blocks import Block

from floe_stream.runtime.deployables.app import alerts_sink
from floe_stream.settings import Settings
from floe_stream.sinks.alerts.channels.pagerduty import dedup_key
from floe_stream.sinks.alerts.channels.webhook import verify
from floe_stream.sinks.alerts.config import parse_config
from floe_stream.sinks.alerts.model import Alert
from floe_stream.topics.enums import Severity
from floe_stream.topics.violation import RESOLVED_TYPE, VIOLATION_TYPE
from tests.conftest import wait_for
from tests.integration.helpers import Running
from tests.integration.receivers import HttpReceiver, IncidentReceiver, publish_violations
from tests.unit.alert_factory import cloud_event, resolved, violation

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_each_violation_reaches_webhook_slack_and_incident_once(settings: Settings) -> None:
    incidents = IncidentReceiver()
    async with HttpReceiver() as hook, HttpReceiver() as slack, HttpReceiver(handler=incidents) as pd:
        cfg = parse_config(
            {
                "policy": {"group_wait_s": 1.0},
                "channels": [
                    {"name": "hook", "type": "webhook", "url": f"{hook.url}/events", "secret": "s3cret"},
                    {"name": "slack", "type": "slack", "url": f"{slack.url}/services/T/B/X"},
                    {"name": "oncall", "type": "pagerduty", "url": f"{pd.url}/v2/enqueue", "secret": "rk-1"},
                ],
                "routes": [
                    {"channel": "oncall", "match": {"contract": "payments"}, "continue": True},
                    {"channels": ["hook", "slack"]},
                ],
            }
        )
        sink = alerts_sink(settings, cfg)
        now = datetime.now(UTC)
        a1 = violation("orders.v1", element="amount", at=now)
        a2 = violation(
            "orders.v1", element="id", severity=Severity.WARNING, at=now, message="column id removed"
        )
        c1 = violation("payments.v1", contract="payments", element="fee", at=now)
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await publish_violations(settings, [a1, a2, c1])
            await wait_for(
                lambda: len(hook.requests) >= 3 and len(slack.requests) >= 2 and pd.requests, timeout=30
            )

            # webhook: one CloudEvent per violation, id = violation id, signature over the body
            ids = set()
            for req in hook.requests:
                ev = ce_http.from_http_event(ce_http.HTTPMessage(headers=req.headers, body=req.body))
                assert ev.get_type() == VIOLATION_TYPE
                assert verify(b"s3cret", req.body, req.headers["x-floe-signature"])
                ids.add(ev.get_id())
            assert ids == {a1.violation_id, a2.violation_id, c1.violation_id}

            # slack: the two violations of orders.v1 arrive as one grouped message
            msgs = [r.json() for r in slack.requests]
            grouped = [m for m in msgs if "orders.v1" in m["blocks"][0]["text"]["text"]]
            assert len(grouped) == 1
            assert "2 violations" in grouped[0]["blocks"][0]["text"]["text"]
            for m in msgs:
                assert all(Block.parse(b) is not None for b in m["blocks"])
                assert [Block.parse(b).to_dict() for b in m["blocks"]] == m["blocks"]  # type: ignore[union-attr]
                assert m["text"]

            # incident opened; an escalation of the open incident updates it, never opens a second one
            key = dedup_key(Alert.from_event(cloud_event(c1)))
            assert incidents.incidents[key]["opened"] == 1
            c2 = violation("payments.v1", contract="payments", element="fee", severity=Severity.CRITICAL,
                           at=datetime.now(UTC), opened=now)  # fmt: skip
            await publish_violations(settings, [c2])
            await wait_for(lambda: len(incidents.incidents[key]["events"]) == 2, timeout=30)
            assert incidents.incidents[key]["opened"] == 1
            assert incidents.incidents[key]["events"][-1]["payload"]["custom_details"]["priority"] == "P1"

            # resolves follow on every channel the firing went to
            await publish_violations(settings, [resolved(c2), resolved(a1)])
            await wait_for(lambda: incidents.incidents[key]["status"] == "resolved", timeout=30)
            await wait_for(
                lambda: (
                    sum(RESOLVED_TYPE in r.body.decode() for r in hook.requests) == 2
                    and any("RESOLVED" in r.json()["blocks"][0]["text"]["text"] for r in slack.requests)
                ),
                timeout=30,
            )
        assert len(incidents.incidents) == 1
        hook_ids = [r.json()["id"] for r in hook.requests]
        assert len(hook_ids) == len(set(hook_ids)) == 6  # 4 violations (c1, c2 distinct) + 2 resolves
        conn = await asyncpg.connect(settings.database.dsn.get_secret_value())
        try:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM alert_deliveries GROUP BY status")
        finally:
            await conn.close()
        # ledger rows per (event, channel): 6 webhook + 6 slack (in 5 messages) + 3 incident events
    assert {r["status"]: r["n"] for r in rows} == {"delivered": 6 + 6 + 3}
    assert len(slack.requests) == 5
