"""Generic webhook: every alert as a CloudEvents 1.0 HTTP request (structured JSON by default, binary
optional), the body signed with HMAC-SHA256 (``X-Floe-Signature: sha256=<hex>``) when a secret is set.
The CloudEvent ``id`` is the violation id: stable across retries and replays, the receiver's dedup key."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ConfigDict

from floe_stream.sinks.alerts.channels.base import Channel
from floe_stream.sinks.alerts.model import Alert, Notification

SIGNATURE_HEADER = "X-Floe-Signature"


class WebhookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["structured", "binary"] = "structured"
    signature_header: str = SIGNATURE_HEADER
    headers: dict[str, str] = {}


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, body), signature)


def cloud_event(alert: Alert) -> CloudEvent:
    ev = alert.event
    attrs: dict[str, object] = {
        "id": ev.id,
        "source": ev.source,
        "type": ev.type,
        "subject": ev.subject,
        "time": ev.time,
        "datacontenttype": "application/json",
        "partitionkey": ev.partitionkey,
    }
    if ev.traceparent:
        attrs["traceparent"] = ev.traceparent
    return CloudEvent(attrs, ev.data.model_dump(mode="json"))


class WebhookChannel(Channel):
    Options = WebhookOptions
    groups = False

    async def send(self, n: Notification) -> None:
        opts = self.options
        assert isinstance(opts, WebhookOptions)
        for alert in n.alerts:
            ce = cloud_event(alert)
            msg = ce_http.to_binary_event(ce) if opts.mode == "binary" else ce_http.to_structured_event(ce)
            headers = {**opts.headers, **msg.headers}
            if self.secret is not None:
                headers[opts.signature_header] = sign(self.secret.get_secret_value().encode(), msg.body)
            await self.post(self.url, msg.body, headers)
