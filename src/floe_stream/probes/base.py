"""The probe protocol and its target (where to ping; never holds a secret in a form that is logged)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit


class ProbeError(Exception):
    """A ping failed; ``str(exc)`` is the short reason put on the probe result."""


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    type: str
    host: str | None = None
    port: int | None = None
    url: str | None = None
    database: str | None = None
    expected_status: tuple[int, ...] = (200,)
    options: dict[str, str] = field(default_factory=dict)

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
