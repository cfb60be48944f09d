"""Slack incoming webhook: a Block Kit message with a plain-text fallback; resolved alerts post an update.

Incoming webhooks cannot edit a message, so the recovery is a new message marked RESOLVED that names the
incident and how long it was open. Limits respected (Slack answers 400 ``invalid_blocks`` beyond them): header
≤ 150 chars (plain_text), every other text object ≤ 3000 (section, context), ≤ 10 fields of ≤ 2000, ≤ 50
blocks (alerts beyond ``max_alerts`` are summarised)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from floe_stream.durations import format_duration
from floe_stream.sinks.alerts.channels.base import Channel
from floe_stream.sinks.alerts.model import Alert, Notification
from floe_stream.topics.enums import Severity

ICON = {Severity.CRITICAL: "🔴", Severity.ERROR: "🟠", Severity.WARNING: "🟡", Severity.INFO: "🔵"}


class SlackOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_alerts: int = Field(default=10, ge=1, le=20)
    username: str | None = None


def esc(text: str) -> str:
    """Slack mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def open_for(seconds: float | None) -> str:
    """How long the episode was open, as the alert shows it; ``?`` when unknown."""
    return "?" if seconds is None else format_duration(seconds)


def headline(n: Notification) -> str:
    first = n.alerts[0]
    what = (
        f"{first.contract_name} · {first.asset}"
        if len({a.asset for a in n.alerts}) == 1
        else first.contract_name
    )
    if n.status == "resolved":
        word = "RESOLVED" if len(n.alerts) == 1 else f"RESOLVED ({len(n.alerts)})"
        return f"✅ {word}: {what}"
    sev = n.max_severity
    count = "" if len(n.alerts) == 1 else f" ({len(n.alerts)} violations)"
    return f"{ICON[sev]} {sev.value.upper()}{count}: {what}"


def alert_fields(a: Alert) -> list[dict[str, str]]:
    fields = [
        ("Severity", a.severity.value),
        ("Contract", f"{a.contract_name} {a.contract_version}"),
        ("Asset", a.asset),
        ("Type", a.violation_type.value + (f" ({a.drift_kind})" if a.drift_kind else "")),
    ]
    if a.status == "firing":
        if a.expected_value is not None:
            fields.append(("Expected", a.expected_value))
        if a.actual_value is not None:
            fields.append(("Actual", a.actual_value))
        if a.consumers:
            fields.append(("Consumers affected", ", ".join(a.consumers)))
        if a.owner:
            fields.append(("Owner", a.owner))
        fields.extend(a.context)
    else:
        fields.append(("Open for", open_for(a.open_duration_s)))
    return [{"type": "mrkdwn", "text": _cut(f"*{k}*\n{esc(v)}", 2000)} for k, v in fields[:10]]


def fallback_text(n: Notification, link: str) -> str:
    """The message's ``text`` (notifications, clients without blocks): Slack parses it as mrkdwn too, so input
    text is escaped like the blocks' (no ``<!channel>`` mention, no ``<url|label>`` link from an asset id)."""
    lines = [esc(headline(n))]
    for a in n.alerts:
        parts = [a.severity.value, a.contract_name, a.asset, a.message]
        if a.status == "firing" and (a.expected_value is not None or a.actual_value is not None):
            parts.append(f"expected {a.expected_value} / actual {a.actual_value}")
        if a.consumers:
            parts.append("consumers: " + ", ".join(a.consumers))
        lines.append(esc(" · ".join(p for p in parts if p)))
    lines.append(link)  # floe's own link (public_url + the violation's id)
    return _cut("\n".join(lines), 3000)


def build_payload(n: Notification, link_for: Any, opts: SlackOptions | None = None) -> dict[str, Any]:
    opts = opts or SlackOptions()
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(headline(n), 150), "emoji": True}}
    ]
    shown = n.alerts[: opts.max_alerts]
    for a in shown:
        title = ("Resolved: " if a.status == "resolved" else "") + a.message
        if a.replaces_severity is not None:
            title += f" (escalated from {a.replaces_severity.value})"
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _cut(f"*{esc(title)}*\n<{link_for(a)}|View violation>", 3000),
                },
                "fields": alert_fields(a),
            }
        )
        blocks.append({"type": "divider"})
    if len(n.alerts) > len(shown):
        more = len(n.alerts) - len(shown)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"… and {more} more"}]})
    first = n.alerts[0]
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _cut(
                        esc(
                            f"floe-stream · {first.occurred_at.isoformat()} · incident {first.correlation_key}"
                        ),
                        3000,  # a text object's limit: the incident key is input (1,000 '&' escape to 5,000)
                    ),
                }
            ],
        }
    )
    payload: dict[str, Any] = {"text": fallback_text(n, link_for(first)), "blocks": blocks[:50]}
    if opts.username:
        payload["username"] = opts.username
    return payload


class SlackChannel(Channel):
    Options = SlackOptions

    async def send(self, n: Notification) -> None:
        assert isinstance(self.options, SlackOptions)
        body = json.dumps(build_payload(n, self.ctx.link, self.options)).encode()
        await self.post(self.url, body, {"Content-Type": "application/json"})
