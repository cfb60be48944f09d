"""Incident management in the PagerDuty Events API v2 wire format: ``trigger`` and ``resolve`` with the
incident's stable ``dedup_key`` (the violation correlation key), so a repeat or an escalation of an open
incident updates it instead of opening a duplicate, and the resolve closes exactly that incident.
Severity maps to a priority (critical→P1, error→P2, warning→P3, info→P4) in ``custom_details``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from floe_stream.sinks.alerts.channels.base import Channel
from floe_stream.sinks.alerts.model import Alert, Notification
from floe_stream.topics.enums import Severity

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
PRIORITY = {Severity.CRITICAL: "P1", Severity.ERROR: "P2", Severity.WARNING: "P3", Severity.INFO: "P4"}


class PagerDutyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client: str = "floe-stream"


def dedup_key(alert: Alert) -> str:
    key = f"floe:{alert.correlation_key}"
    return key if len(key) <= 255 else "floe:" + hashlib.sha256(alert.correlation_key.encode()).hexdigest()


def event(alert: Alert, routing_key: str, link: str, opts: PagerDutyOptions) -> dict[str, Any]:
    if alert.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(alert)}
    details: dict[str, Any] = {
        "priority": PRIORITY[alert.severity],
        "contract": f"{alert.contract_name} {alert.contract_version}",
        "contract_id": alert.contract_id,
        "violation_id": alert.violation_id,
        "expected": alert.expected_value,
        "actual": alert.actual_value,
        "element": alert.element,
        "consumers": list(alert.consumers),
        "owner": alert.owner,
        "team": alert.team,
    }
    if alert.replaces_severity is not None:
        details["escalated_from"] = alert.replaces_severity.value
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(alert),
        "payload": {
            "summary": f"[{alert.severity.value}] {alert.contract_name} {alert.asset}: {alert.message}"[
                :1024
            ],
            "source": alert.asset,
            "severity": alert.severity.value,
            "timestamp": alert.occurred_at.isoformat(),
            "component": alert.asset,
            "group": alert.contract_name,
            "class": alert.violation_type.value,
            "custom_details": {k: v for k, v in details.items() if v not in (None, [])},
        },
        "links": [{"href": link, "text": "floe-stream violation"}],
        "client": opts.client,
        "client_url": link,
    }


class PagerDutyChannel(Channel):
    Options = PagerDutyOptions
    groups = False
    needs_secret = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = self.url or DEFAULT_URL

    async def send(self, n: Notification) -> None:
        assert isinstance(self.options, PagerDutyOptions)
        assert self.secret is not None
        for a in n.alerts:
            body = json.dumps(
                event(a, self.secret.get_secret_value(), self.ctx.link(a), self.options)
            ).encode()
            await self.post(self.url, body, {"Content-Type": "application/json"})
