"""Support for the checks integration tests: real loopback targets and contracts written on the fly."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path


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

    async def start(self) -> HttpTarget:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
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

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
