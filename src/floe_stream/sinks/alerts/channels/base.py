"""The channel contract: a new channel is one :class:`Channel` subclass in its own module plus one entry
point in the ``floe.alert_channels`` group (``pyproject.toml``); its config ``type`` is the entry-point name.

A channel sends one :class:`~floe_stream.sinks.alerts.model.Notification` per call and raises
:class:`DeliveryError` on failure; retries, timeouts, the ledger and the dead-letter topic are the
dispatcher's job (:mod:`floe_stream.sinks.alerts.delivery`), not the channel's.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from floe_stream.sinks.alerts.config import ChannelConfig
from floe_stream.sinks.alerts.model import Alert, Notification


class DeliveryError(Exception):
    """A failed send. ``retryable`` failures are retried with backoff; ``retry_after`` comes from the receiver."""

    def __init__(self, reason: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class MessageError(DeliveryError):
    """This notification cannot be turned into a message for the channel (a value the format cannot carry):
    its dead letter, never a failure of the channel — it does not count towards the channel's circuit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False)


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ChannelContext:
    http: httpx.AsyncClient
    public_url: str

    def link(self, alert: Alert) -> str:
        return f"{self.public_url.rstrip('/')}/violations/{alert.violation_id}"


class Channel:
    """Base class. Subclasses set ``Options`` (a pydantic model with ``extra='forbid'``) and implement send."""

    Options: ClassVar[type[BaseModel]] = NoOptions
    supports_resolve: ClassVar[bool] = True
    groups: ClassVar[bool] = True  # one notification may carry several alerts of a group
    resend_while_firing: ClassVar[bool] = False
    needs_url: ClassVar[bool] = True
    needs_secret: ClassVar[bool] = False

    def __init__(self, config: ChannelConfig, options: BaseModel, ctx: ChannelContext) -> None:
        self.config = config
        self.name = config.name
        self.options = options
        self.ctx = ctx
        self.url: str = config.resolved_url() or ""
        self.secret: SecretStr | None = config.resolved_secret()

    def check(self) -> str | None:
        """A start-up problem (missing URL or secret), or None."""
        if self.needs_url and not self.url:
            src = f"env var {self.config.url_env} is not set" if self.config.url_env else "no 'url'"
            return f"channel {self.name!r} ({self.config.type}): {src}"
        if self.needs_secret and self.secret is None:
            src = (
                f"env var {self.config.secret_env} is not set"
                if self.config.secret_env
                else "no 'secret'/'secret_env'"
            )
            return f"channel {self.name!r} ({self.config.type}): {src}"
        return None

    async def send(self, n: Notification) -> None:
        raise NotImplementedError

    async def resend(self, alerts: list[Alert]) -> None:
        """Re-assert firing alerts (only channels with ``resend_while_firing``)."""

    async def aclose(self) -> None:
        pass

    # --- helpers for HTTP channels -------------------------------------------------------------------------
    async def post(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            resp = await self.ctx.http.post(
                url, content=content, headers=headers, timeout=self.config.timeout_s
            )
        except httpx.TimeoutException:
            raise DeliveryError(f"timed out after {self.config.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        raise_for_status(resp)
        return resp


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def raise_for_status(resp: httpx.Response) -> None:
    code = resp.status_code
    if 200 <= code < 300:
        return
    snippet = resp.text[:200].replace("\n", " ") if resp.content else ""
    reason = f"HTTP {code}" + (f": {snippet}" if snippet else "")
    if code == 429 or code == 408 or code >= 500:
        raise DeliveryError(
            reason, retryable=True, retry_after=retry_after_s(resp.headers.get("retry-after"))
        )
    if code in REFUSED_CONTENT:
        raise MessageError(reason)  # this message's content: never held against the channel's circuit
    raise DeliveryError(reason, retryable=False)


REFUSED_CONTENT = frozenset({400, 413, 422})
"""Answers about one message's content (bad request, too large, unprocessable), not the channel: a producer who
shapes an alert's text must not open the circuit of a channel every other asset's alerts go through. A wrong
URL or credential (401, 403, 404, 410) still counts towards it."""
