"""The probe protocol and its target (where to ping; never holds a secret in a form that is logged)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit, urlunsplit


class ProbeError(Exception):
    """A ping failed; ``str(exc)`` is the short reason put on the probe result."""


class Endpoint(NamedTuple):
    """A host a probe connects to, as the contract names it, and the address the guard checked for it."""

    host: str
    address: str
    port: int  # 0: the probe's default


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    type: str
    host: str | None = None
    port: int | None = None
    url: str | None = None
    database: str | None = None
    expected_status: tuple[int, ...] = (200,)
    options: dict[str, str] = field(default_factory=dict)
    endpoints: tuple[Endpoint, ...] = ()
    """Set by the runner (:mod:`floe_stream.probes.guard`): connect to these checked addresses, never to a
    name resolved again. Empty when nothing was checked (a target built by hand in a test)."""

    def display(self) -> str:
        """host:port or the URL without user info, query or fragment: safe for events and logs."""
        if self.url:
            parts = urlsplit(self.url)
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        return f"{self.host}:{self.port}" if self.port else str(self.host)


class Probe(Protocol):
    name: str

    async def ping(self, target: ProbeTarget) -> None:
        """Return when the target answered as expected; raise :class:`ProbeError` (or any error) if not.
        The runner applies the timeout (cancellation) — a probe need not."""
        ...
