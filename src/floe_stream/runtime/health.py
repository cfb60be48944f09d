"""A tiny HTTP server on every process: /healthz (alive), /readyz (ready to work), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[dict[str, bool]]]
Details = Callable[[], dict[str, Any]]


class HealthServer:
    def __init__(
        self, host: str, port: int, *, liveness: Probe, readiness: Probe, details: Details | None = None
    ) -> None:
        self.host, self.port = host, port
        self.liveness, self.readiness = liveness, readiness
        self.details = details  # informational fields of /readyz that do not decide its status
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
            if path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                await self._reply(writer, 200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                checks = await (self.liveness if path == "/healthz" else self.readiness)()
                ok = all(checks.values())
                doc: dict[str, Any] = {"status": "ok" if ok else "degraded", "checks": checks}
                if path == "/readyz" and self.details is not None and (info := self.details()):
                    doc["details"] = info
                body = json.dumps(doc).encode()
                await self._reply(writer, 200 if ok else 503, body, "application/json")
            else:
                await self._reply(writer, 404, b"not found\n", "text/plain")
        except Exception as exc:  # a broken client must never take the process down
            log.debug("health request failed: %s", exc)
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str) -> None:
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
