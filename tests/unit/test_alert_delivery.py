"""The dispatcher without PostgreSQL: retries and their limits, non-retryable answers, the circuit breaker,
firing-before-resolved ordering, and the webhook's binary CloudEvents mode over an in-memory transport."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
from cloudevents.core.bindings import http as ce_http

from floe_stream.runtime.framework.sink_runtime import SinkContext
from floe_stream.sinks.alerts.channels.base import Channel, ChannelContext, DeliveryError, NoOptions
from floe_stream.sinks.alerts.channels.webhook import WebhookChannel, WebhookOptions, verify
from floe_stream.sinks.alerts.config import ChannelConfig, Policy
from floe_stream.sinks.alerts.delivery import Dispatcher
from floe_stream.sinks.alerts.model import DeadLetter, Notification
from floe_stream.sinks.alerts.store import Claim
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics.catalog import TopicKey
from tests.unit.alert_factory import alert, resolved, violation


class FakeStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], str] = {}

    async def claim(self, event_ids: Sequence[str], channel: str, nids: Any, **kw: Any) -> Claim:
        c = Claim()
        for e in event_ids:
            if (e, channel) not in self.rows:
                self.rows[(e, channel)] = "sending"
                c.claimed.add(e)
            else:
                c.done.add(e)
        return c

    async def claim_waiting(self, event_ids: Sequence[str], channel: str, nid: str, **kw: Any) -> list[str]:
        return sorted((await self.claim(event_ids, channel, nid)).claimed)

    async def mark(self, event_ids: Sequence[str], channel: str, *, delivered: bool, **kw: Any) -> None:
        for e in event_ids:
            self.rows[(e, channel)] = "delivered" if delivered else "failed"

    async def release(self, event_ids: Sequence[str], channel: str) -> None:
        for e in event_ids:
            self.rows.pop((e, channel), None)


def dead_letters(dead: list[tuple[str, str, int]]) -> SinkContext:
    """A runtime context whose dead letters land in ``dead`` as (channel, reason, attempts)."""

    async def publish(
        topic: TopicKey, key: bytes, value: bytes, headers: list[tuple[str, bytes]], *, source: object = None
    ) -> None:
        assert topic == TopicKey.ALERTS_DLQ
        dl = DeadLetter.model_validate_json(value)
        dead.append((dl.channel, dl.reason, dl.attempts))

    return SinkContext(
        stopping=asyncio.Event(), still_working=lambda: None, publish=publish, metrics=instruments()
    )


class Scripted(Channel):
    def __init__(self, name: str, errors: list[DeliveryError | None], log: list[str]) -> None:
        cfg = ChannelConfig(
            name=name, type="x", url="http://x", max_attempts=3, backoff_initial_s=0, backoff_max_s=0
        )
        super().__init__(cfg, NoOptions(), ChannelContext(http=None, public_url="http://x"))  # type: ignore[arg-type]
        self.errors, self.log = errors, log

    async def send(self, n: Notification) -> None:
        self.log.append(f"{self.name}:{n.status}")
        err = self.errors.pop(0) if self.errors else None
        if err is not None:
            raise err


def note(channel: str, data: Any, status: str = "firing") -> Notification:
    return Notification(channel=channel, status=status, group_key="g", alerts=(alert(data),))  # type: ignore[arg-type]


async def test_retries_then_success_and_permanent_failure_is_not_retried() -> None:
    log: list[str] = []
    dead: list[tuple[str, str, int]] = []
    dl = dead_letters(dead)
    flaky = Scripted("flaky", [DeliveryError("HTTP 500"), DeliveryError("HTTP 429", retry_after=0)], log)
    broken = Scripted("broken", [DeliveryError("HTTP 404", retryable=False)], log)
    store = FakeStore()
    d = Dispatcher({"flaky": flaky, "broken": broken}, store, Policy(), dl)  # type: ignore[arg-type]
    v = violation()
    out = await d.deliver_all([note("flaky", v), note("broken", v)])
    assert sorted((o.channel, o.result, o.attempts) for o in out) == [
        ("broken", "dead_lettered", 1),
        ("flaky", "delivered", 3),
    ]
    assert dead == [("broken", "HTTP 404", 1)]
    again = await d.deliver_all([note("flaky", v)])  # the ledger: delivered once, never twice
    assert again[0].result == "skipped"


async def test_circuit_opens_after_consecutive_failures_and_resolves_wait_for_firing() -> None:
    log: list[str] = []
    dead: list[tuple[str, str, int]] = []
    dl = dead_letters(dead)
    down = Scripted("down", [DeliveryError("HTTP 503")] * 100, log)
    d = Dispatcher({"down": down}, FakeStore(), Policy(circuit_failures=2, circuit_cooldown_s=60), dl)  # type: ignore[arg-type]
    for i in range(3):
        await d.deliver_all([note("down", violation(element=f"e{i}"))])
    assert [a for _, _, a in dead] == [3, 3, 0]  # the third is not attempted: the circuit is open
    assert "circuit open" in dead[2][1]

    log.clear()
    ok = Scripted("ok", [], log)
    d2 = Dispatcher({"ok": ok}, FakeStore(), Policy(), dl)  # type: ignore[arg-type]
    v = violation(element="z")
    await d2.deliver_all([note("ok", resolved(v), "resolved"), note("ok", v)])
    assert log == ["ok:firing", "ok:resolved"]


async def test_webhook_binary_mode_carries_ce_headers_and_signature() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        cfg = ChannelConfig(name="hook", type="webhook", url="http://hook.test/e", secret="k")  # type: ignore[arg-type]
        ch = WebhookChannel(
            cfg, WebhookOptions(mode="binary"), ChannelContext(http=http, public_url="http://x")
        )
        v = violation()
        await ch.send(note("hook", v))
    req = seen[0]
    assert req.headers["ce-id"] == v.violation_id
    assert req.headers["ce-type"] == "floe.contract.violation"
    ev = ce_http.from_http_event(ce_http.HTTPMessage(headers=dict(req.headers), body=req.content))
    assert ev.get_data()["asset"] == "orders.v1"
    assert verify(b"k", req.content, req.headers["x-floe-signature"])
