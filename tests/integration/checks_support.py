"""Support for the checks integration tests: real loopback targets and contracts written on the fly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from pathlib import Path
from typing import Any

from floe_stream.settings import Settings


class HttpTarget:
    """A real HTTP/1.1 server on loopback answering every request with ``status``."""

    def __init__(self, status: int = 503) -> None:
        self.status = status
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.write(
                f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, host: str = "127.0.0.1") -> HttpTarget:
        self.server = await asyncio.start_server(self._handle, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class TcpTarget:
    """A TCP listener on a fixed loopback port that can be stopped and started again."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server: asyncio.Server | None = None
        self.accepted = 0

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


def availability_contract(
    contract_id: str, asset: str, server: str, *, sla: str = "50%", interval_s: float = 0.5
) -> str:
    """An ODCS contract with one table, an availability SLA and one server (YAML lines under ``servers:``)."""
    return f"""apiVersion: v3.1.0
kind: DataContract
id: {contract_id}
name: {contract_id}
version: 1.0.0
status: active
team:
  name: platform
  members:
    - username: bob
      role: owner
servers:
{server}
customProperties:
  - property: floe
    value:
      checks: {{ping_interval_s: {interval_s}, ping_timeout_s: 2}}
schema:
  - name: t
    physicalName: t
    customProperties:
      - property: floe
        value:
          asset: {asset}
    properties:
      - name: id
        logicalType: integer
slaProperties:
  - property: availability
    value: "{sla}"
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def probing_loopback(settings: Settings, **update: Any) -> Settings:
    """``settings`` (with ``update``) whose probes may reach loopback, where these tests' targets listen:
    the default allow-list refuses loopback targets (``checks.probe_allow``)."""
    checks = settings.checks.model_copy(update={"probe_allow": ["127.0.0.0/8"]})
    return settings.model_copy(update={"checks": checks, **update})


class Tarpit:
    """Accepts connections on loopback and never answers; counts how many it holds at once."""

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        self.held += 1
        self.peak = max(self.peak, self.held)
        try:
            with contextlib.suppress(ConnectionError):
                await reader.read()  # until the client gives up
        finally:
            self.held -= 1
            self.writers.discard(writer)
            writer.close()

    async def start(self) -> Tarpit:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for w in list(self.writers):
                w.close()
            await self.server.wait_closed()


class CleartextPostgres:
    """A listener speaking PostgreSQL's first step: to every startup message it answers
    AuthenticationCleartextPassword and records any password message a client sends back."""

    def __init__(self) -> None:
        self.startups = 0
        self.passwords: list[bytes] = []
        self.received = b""
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            n = struct.unpack("!i", await reader.readexactly(4))[0]
            self.received += await reader.readexactly(n - 4)
            self.startups += 1
            writer.write(b"R" + struct.pack("!ii", 8, 3))
            await writer.drain()
            while head := await reader.read(5):
                self.received += head
                if head[:1] == b"p":
                    self.passwords.append(await reader.read(4096))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> CleartextPostgres:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()
