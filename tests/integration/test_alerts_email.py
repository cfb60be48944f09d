"""Email through a real SMTP server (aiosmtpd) that requires STARTTLS and AUTH: a multipart message with
a plain-text and an HTML part arrives; a wrong password is a permanent failure that goes to the DLQ."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from floe_stream.runtime.deployables.app import alerts_sink
from floe_stream.settings import Settings
from floe_stream.sinks.alerts.config import parse_config
from floe_stream.topics.catalog import TopicKey
from tests.conftest import wait_for
from tests.integration.helpers import Running, read_all
from tests.integration.receivers import SmtpReceiver, publish_violations
from tests.unit.alert_factory import violation

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def email_channel(name: str, smtp: SmtpReceiver, secret_env: str, tls: str = "starttls") -> dict:  # type: ignore[type-arg]
    return {
        "name": name, "type": "email", "secret_env": secret_env, "timeout_s": 5, "max_attempts": 2,
        "backoff_initial_s": 0.1,
        "options": {"host": "127.0.0.1", "port": smtp.port, "tls": tls, "username": "alerts",
                    "from": "floe@example.test", "to": ["oncall@example.test"], "ca_file": str(smtp.cert)},
    }  # fmt: skip


async def test_email_over_starttls_with_auth(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_SMTP_GOOD", "s3cret")
    monkeypatch.setenv("T_SMTP_BAD", "wrong")
    with SmtpReceiver(tmp_path) as smtp:
        cfg = parse_config(
            {
                "policy": {"group_wait_s": 0.3},
                "channels": [
                    email_channel("mail", smtp, "T_SMTP_GOOD"),
                    email_channel("badmail", smtp, "T_SMTP_BAD"),
                ],
                "routes": [{"channels": ["mail", "badmail"]}],
            }
        )
        sink = alerts_sink(settings, cfg)
        v = violation("orders.v1", at=datetime.now(UTC), message="amount <is> & 'odd'")
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await publish_violations(settings, [v])
            await wait_for(lambda: smtp.messages and sink.sink.dead_lettered >= 1, timeout=30)
        assert len(smtp.messages) == 1
        msg = smtp.messages[0]
        assert msg.get_content_type() == "multipart/alternative"
        plain = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "amount <is> & 'odd'" in plain
        assert "amount &lt;is&gt; &amp; &#x27;odd&#x27;" in html
        assert "finance-dashboard" in plain
        assert "ERROR" in msg["Subject"]
        dead = [json.loads(r.value) for r in await read_all(settings, TopicKey.ALERTS_DLQ)]
        assert [d["channel"] for d in dead] == ["badmail"]
        assert "535" in dead[0]["reason"]
        assert dead[0]["attempts"] == 1  # authentication failure is permanent: not retried


async def test_email_over_implicit_tls(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_SMTP_GOOD", "s3cret")
    with SmtpReceiver(tmp_path, implicit_tls=True) as smtp:
        cfg = parse_config(
            {
                "policy": {"group_wait_s": 0},
                "channels": [email_channel("mail", smtp, "T_SMTP_GOOD", tls="implicit")],
                "routes": [{"channel": "mail"}],
            }
        )
        sink = alerts_sink(settings, cfg)
        v = violation("orders.v1", at=datetime.now(UTC))
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await publish_violations(settings, [v])
            await wait_for(lambda: smtp.messages, timeout=30)
        assert v.violation_id in smtp.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
