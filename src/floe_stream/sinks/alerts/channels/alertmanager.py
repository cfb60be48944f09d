"""Prometheus Alertmanager: ``POST {url}/api/v2/alerts``. Labels identify the alert (alertname, contract,
asset, violation_type, severity, incident); annotations carry the text. Firing alerts get ``endsAt`` a few
re-send intervals ahead and are re-sent while open (Alertmanager forgets alerts on restart and resolves
silent ones after ``resolve_timeout``); a resolve sets ``endsAt`` to the resolution time. An escalation
also ends the alert of the previous severity. Alertmanager groups, so one POST carries a whole group."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from floe_stream.sinks.alerts.channels.base import Channel
from floe_stream.sinks.alerts.model import Alert, Notification
from floe_stream.topics.enums import Severity


class AlertmanagerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alertname: str = "FloeContractViolation"
    extra_labels: dict[str, str] = {}
    firing_ttl_s: float = Field(default=300.0, gt=0, description="endsAt of a firing alert = now + this")


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def labels(alert: Alert, opts: AlertmanagerOptions, severity: Severity | None = None) -> dict[str, str]:
    out = {
        **opts.extra_labels,
        "alertname": opts.alertname,
        "contract": alert.contract_name,
        "asset": alert.asset,
        "violation_type": alert.violation_type.value,
        "severity": (severity or alert.severity).value,
        "incident": alert.correlation_key,
    }
    return out


def am_alert(alert: Alert, opts: AlertmanagerOptions, link: str, now: datetime) -> dict[str, Any]:
    ann = {
        "summary": alert.message,
        "description": f"{alert.contract_name} {alert.contract_version}: {alert.message}",
    }
    if alert.expected_value is not None:
        ann["expected"] = alert.expected_value
    if alert.actual_value is not None:
        ann["actual"] = alert.actual_value
    if alert.consumers:
        ann["consumers"] = ", ".join(alert.consumers)
    if alert.owner:
        ann["owner"] = alert.owner
    for label, value in alert.context:  # impact and root-cause context, e.g. "Upstream violating"
        ann[label.lower().replace(" ", "_")] = value
    # a resolve ends the alert at its resolution time, never in the future
    ends = (
        min(alert.occurred_at, now)
        if alert.status == "resolved"
        else now + timedelta(seconds=opts.firing_ttl_s)
    )
    return {
        "labels": labels(alert, opts),
        "annotations": ann,
        "startsAt": _ts(alert.opened_at),
        "endsAt": _ts(ends),
        "generatorURL": link,
    }


class AlertmanagerChannel(Channel):
    Options = AlertmanagerOptions
    resend_while_firing = True

    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/api/v2/alerts") else base + "/api/v2/alerts"

    def payload(self, alerts: list[Alert] | tuple[Alert, ...], now: datetime) -> list[dict[str, Any]]:
        opts = self.options
        assert isinstance(opts, AlertmanagerOptions)
        out = []
        for a in alerts:
            out.append(am_alert(a, opts, self.ctx.link(a), now))
            if a.status == "firing" and a.replaces_severity is not None:
                old = am_alert(a, opts, self.ctx.link(a), now)
                old["labels"] = labels(a, opts, a.replaces_severity)
                old["endsAt"] = _ts(now)
                out.append(old)
        return out

    async def send(self, n: Notification) -> None:
        body = json.dumps(self.payload(n.alerts, datetime.now(UTC))).encode()
        await self.post(self.endpoint(), body, {"Content-Type": "application/json"})

    async def resend(self, alerts: list[Alert]) -> None:
        if alerts:
            body = json.dumps(self.payload(alerts, datetime.now(UTC))).encode()
            await self.post(self.endpoint(), body, {"Content-Type": "application/json"})
