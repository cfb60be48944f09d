"""Email over SMTP (aiosmtplib): explicit TLS mode (STARTTLS or implicit TLS; ``none`` only for local relays),
AUTH with the channel secret as the password, a multipart/alternative message with a plain-text and an HTML
part. Every value in the HTML part is HTML-escaped. Firing and resolved mails of one incident share a
``References`` id so mail clients thread them."""

from __future__ import annotations

import html
import re
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field

from floe_stream.processors.ids import stable_id
from floe_stream.sinks.alerts.channels.base import Channel, DeliveryError, MessageError
from floe_stream.sinks.alerts.channels.slack import headline, open_for
from floe_stream.sinks.alerts.model import Alert, Notification


class EmailOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    from_addr: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    validate_certs: bool = True
    ca_file: Path | None = None
    subject_prefix: str = "[floe]"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _rows(a: Alert) -> list[tuple[str, str]]:
    rows = [
        ("Severity", a.severity.value),
        ("Contract", f"{a.contract_name} {a.contract_version} ({a.contract_id})"),
        ("Asset", a.asset),
        ("Violation", a.violation_type.value + (f" ({a.drift_kind})" if a.drift_kind else "")),
        ("Message", a.message),
    ]
    if a.status == "firing":
        if a.element:
            rows.append(("Element", a.element))
        rows += [("Expected", a.expected_value or "—"), ("Actual", a.actual_value or "—")]
        if a.consumers:
            rows.append(("Consumers affected", ", ".join(a.consumers)))
        if a.owner:
            rows.append(("Owner", a.owner))
        rows.extend(a.context)
        rows.append(("Detected at", a.occurred_at.isoformat()))
    else:
        rows += [("Resolved at", a.occurred_at.isoformat()), ("Open for", open_for(a.open_duration_s))]
    return rows


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_text(value: str) -> str:
    """A header value from input text: control characters (CR/LF above all: header injection, and a header
    the email library refuses) become one space."""
    return _CONTROL.sub(" ", value).strip()


def build_message(n: Notification, opts: EmailOptions, link_for: object) -> EmailMessage:
    assert callable(link_for)
    msg = EmailMessage()
    msg["Subject"] = header_text(f"{opts.subject_prefix} {headline(n)}")
    msg["From"] = opts.from_addr
    msg["To"] = ", ".join(opts.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{n.notification_id}@floe-stream>"
    refs = " ".join(f"<incident-{stable_id(a.correlation_key)}@floe-stream>" for a in n.alerts)
    msg["References"] = refs
    if n.status == "resolved":
        msg["In-Reply-To"] = refs.split(" ")[0]
    text_parts, html_parts = [headline(n), ""], [f"<h2>{html.escape(headline(n))}</h2>"]
    for a in n.alerts:
        link = str(link_for(a))
        text_parts += [f"{k}: {v}" for k, v in _rows(a)] + [f"Link: {link}", ""]
        cells = "".join(
            f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _rows(a)
        )
        html_parts.append(
            f'<table>{cells}</table><p><a href="{html.escape(link, quote=True)}">View violation</a></p><hr>'
        )
    msg.set_content("\n".join(text_parts))
    msg.add_alternative("<html><body>" + "".join(html_parts) + "</body></html>", subtype="html")
    return msg


class EmailChannel(Channel):
    Options = EmailOptions
    needs_url = False

    def _tls_context(self) -> ssl.SSLContext:
        opts = self.options
        assert isinstance(opts, EmailOptions)
        ctx = ssl.create_default_context(cafile=str(opts.ca_file) if opts.ca_file else None)
        if not opts.validate_certs:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def send(self, n: Notification) -> None:
        opts = self.options
        assert isinstance(opts, EmailOptions)
        try:
            msg = build_message(n, opts, self.ctx.link)
        except (ValueError, TypeError, UnicodeError) as exc:  # this notification only, never the channel
            raise MessageError(f"message cannot be built: {type(exc).__name__}: {exc}") from None
        tls = opts.tls
        try:
            await aiosmtplib.send(
                msg,
                hostname=opts.host,
                port=opts.port,
                use_tls=tls == "implicit",
                start_tls=tls == "starttls",
                tls_context=self._tls_context() if tls != "none" else None,
                username=opts.username,
                password=self.secret.get_secret_value() if self.secret and opts.username else None,
                timeout=self.config.timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx: transient (greylisting, busy); 5xx: permanent (bad auth, rejected recipient)
            raise DeliveryError(f"SMTP {exc.code}: {exc.message}", retryable=400 <= exc.code < 500) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipients refused: {exc}", retryable=False) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
