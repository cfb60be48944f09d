"""Channel payloads: Slack Block Kit (validated by slack_sdk), PagerDuty Events v2, Alertmanager v2,
email escaping, webhook CloudEvents + HMAC, Retry-After parsing, backoff, channel config errors."""

from __future__ import annotations

import email
import email.policy
import json
import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from slack_sdk.models.blocks import Block

from floe_stream.settings import ConfigError
from floe_stream.sinks.alerts.channels.alertmanager import AlertmanagerOptions, am_alert
from floe_stream.sinks.alerts.channels.base import retry_after_s
from floe_stream.sinks.alerts.channels.mail import EmailOptions, build_message
from floe_stream.sinks.alerts.channels.pagerduty import PagerDutyOptions, dedup_key, event
from floe_stream.sinks.alerts.channels.slack import build_payload
from floe_stream.sinks.alerts.channels.webhook import cloud_event, sign, verify
from floe_stream.sinks.alerts.config import ChannelConfig, parse_config
from floe_stream.sinks.alerts.delivery import channel_backoff
from floe_stream.sinks.alerts.model import Notification
from floe_stream.sinks.alerts.sink import build_channels
from floe_stream.topics.enums import Severity
from tests.unit.alert_factory import alert, resolved, violation


def link(a):  # type: ignore[no-untyped-def]
    return f"https://floe.example/violations/{a.violation_id}"


def note(*alerts, status="firing"):  # type: ignore[no-untyped-def]
    return Notification(channel="c", status=status, group_key="g", alerts=tuple(alerts))


def test_slack_blocks_validate_and_carry_the_facts() -> None:
    v = violation(severity=Severity.CRITICAL, message="amount <b>changed</b> & more")
    payload = build_payload(note(alert(v), alert(violation(element="id"))), link)
    blocks = [Block.parse(b) for b in payload["blocks"]]
    assert all(b is not None for b in blocks)
    assert [b.to_dict() for b in blocks] == payload["blocks"]  # round-trips: slack_sdk validates limits
    assert payload["blocks"][0]["type"] == "header"
    assert payload["blocks"][0]["text"]["type"] == "plain_text"
    assert len(payload["blocks"]) <= 50
    assert "CRITICAL (2 violations)" in payload["blocks"][0]["text"]["text"]
    text = json.dumps(payload)
    for fact in ("orders.v1", "double", "string", "finance-dashboard", "critical", link(alert(v))):
        assert fact in text
    assert "&lt;b&gt;" in text  # mrkdwn control characters escaped
    assert "finance-dashboard" in payload["text"]  # the text fallback


def test_slack_resolved_and_many_alerts_stay_within_limits() -> None:
    many = [alert(violation(element=f"c{i}", message="x" * 400)) for i in range(30)]
    payload = build_payload(note(*many), link)
    assert len(payload["blocks"]) <= 50
    for b in payload["blocks"]:
        assert Block.parse(b) is not None
        Block.parse(b).to_dict()  # type: ignore[union-attr]
    r = build_payload(note(alert(resolved(violation())), status="resolved"), link)
    assert r["blocks"][0]["text"]["text"].startswith("✅ RESOLVED")
    assert "Open for" in json.dumps(r)


def test_pagerduty_trigger_and_resolve_share_a_dedup_key() -> None:
    v = violation(severity=Severity.CRITICAL)
    trig = event(alert(v), "rk", "https://x/1", PagerDutyOptions())
    res = event(alert(resolved(v)), "rk", "https://x/1", PagerDutyOptions())
    assert trig["event_action"] == "trigger"
    assert res["event_action"] == "resolve"
    assert trig["dedup_key"] == res["dedup_key"] == dedup_key(alert(v))
    assert trig["payload"]["severity"] == "critical"
    assert trig["payload"]["custom_details"]["priority"] == "P1"
    assert (
        event(alert(violation(severity=Severity.WARNING)), "rk", "u", PagerDutyOptions())["payload"][
            "custom_details"
        ]["priority"]
        == "P3"
    )
    long = alert(violation(asset="a" * 300))
    assert len(dedup_key(long)) <= 255


def test_alertmanager_labels_and_resolve_sets_ends_at() -> None:
    now = datetime.now(UTC)
    v = violation()
    fire = am_alert(alert(v), AlertmanagerOptions(), "https://x", now)
    assert {"alertname", "contract", "asset", "violation_type", "severity"} <= set(fire["labels"])
    assert fire["generatorURL"] == "https://x"
    assert datetime.fromisoformat(fire["endsAt"].replace("Z", "+00:00")) > now
    res = am_alert(alert(resolved(v, after_s=30)), AlertmanagerOptions(), "https://x", now)
    assert res["labels"] == fire["labels"]
    assert res["endsAt"] == (v.detected_at + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")


def test_email_is_multipart_with_escaped_html() -> None:
    opts = EmailOptions.model_validate({"host": "h", "from": "floe@x", "to": ["a@x"]})
    msg = build_message(note(alert(violation(message="<script>alert(1)</script>"))), opts, link)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    plain = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<script>alert(1)</script>" in plain


def test_webhook_event_keeps_the_violation_id_and_signature_verifies() -> None:
    from cloudevents.core.bindings import http as ce_http

    a = alert(violation())
    msg = ce_http.to_structured_event(cloud_event(a))
    back = ce_http.from_http_event(ce_http.HTTPMessage(headers=msg.headers, body=msg.body))
    assert back.get_id() == a.violation_id
    sig = sign(b"s3cret", msg.body)
    assert verify(b"s3cret", msg.body, sig)
    assert not verify(b"other", msg.body, sig)


def test_retry_after_and_backoff() -> None:
    assert retry_after_s("3") == 3.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_s("Thu, 01 Jan 2026 00:00:05 GMT", now) == 5.0
    assert retry_after_s("soon") is None
    cfg = ChannelConfig(name="c", type="webhook", backoff_initial_s=1, backoff_max_s=8, max_retry_after_s=10)
    rng = random.Random(1)
    backoff = channel_backoff(cfg, rng)
    delays = [backoff.next() for _ in (1, 2, 3, 4, 5)]
    assert 0.5 <= delays[0] <= 1
    assert 4 <= delays[4] <= 8  # capped
    assert channel_backoff(cfg, rng).next(30.0) == 10  # Retry-After honoured up to the cap


async def test_channel_config_problems_stop_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    cfg = parse_config(
        {
            "channels": [
                {"name": "pd", "type": "pagerduty", "secret_env": "NO_SUCH_SECRET"},
                {"name": "x", "type": "carrier-pigeon"},
                {"name": "m", "type": "email", "options": {"host": "h"}},
            ]
        }
    )
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError) as info:
            build_channels(cfg, http, "http://x")
    msg = str(info.value)
    assert "NO_SUCH_SECRET" in msg
    assert "carrier-pigeon" in msg
    assert "to" in msg


def test_impact_and_root_cause_context_is_shown_by_slack_email_and_alertmanager() -> None:
    v = violation().model_copy(
        update={
            "context": {
                "upstream.violating": "sales.payments (freshness)",
                "impact.downstream_jobs": "finance/revenue_daily",
                "recent.materializations": "12:00:00 run-7 (1200 rows)",
                "internal.key": "not shown",
            }
        }
    )
    a = alert(v)
    assert ("Upstream violating", "sales.payments (freshness)") in a.context
    assert all(label != "internal.key" for label, _ in a.context)
    slack = json.dumps(build_payload(note(a), link))
    assert "Upstream violating" in slack and "sales.payments (freshness)" in slack
    mail = build_message(
        note(a), EmailOptions.model_validate({"host": "h", "from": "floe@x", "to": ["a@x"]}), link
    )
    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None and "finance/revenue_daily" in html_part.get_content()
    ann = am_alert(a, AlertmanagerOptions(), link(a), datetime.now(UTC))["annotations"]
    assert ann["upstream_violating"] == "sales.payments (freshness)"
    assert ann["recent_materializations"] == "12:00:00 run-7 (1200 rows)"
