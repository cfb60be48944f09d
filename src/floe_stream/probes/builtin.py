"""Built-in probes: PostgreSQL, HTTP(S), TCP, Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

from floe_stream.probes.base import ProbeError, ProbeTarget


def _host_port(target: ProbeTarget, default_port: int) -> tuple[str, int]:
    if not target.host:
        raise ProbeError("no host in the probe target")
    host, sep, port = target.host.rpartition(":")
    if sep and port.isdigit() and "]" not in port:  # ODCS kafka servers write "host:port" in `host`
        return host, target.port or int(port)
    return target.host, target.port or default_port


class TcpProbe:
    """TCP connect to host:port."""

    name = "tcp"

    async def ping(self, target: ProbeTarget) -> None:
        host, port = _host_port(target, 0)
        if not port:
            raise ProbeError("no port in the probe target")
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class HttpProbe:
    """HTTP(S) GET; the status must be one of ``expected_status`` (default 200).

    A minimal HTTP/1.1 client on asyncio streams: a probe needs only the status line, and a full client
    (httpx: ~2-3 ms of CPU per request) would let a thousand concurrent pings saturate the event loop, so
    that fast targets time out behind slow ones. TLS certificates are verified."""

    name = "http"

    def __init__(self) -> None:
        self._tls: ssl.SSLContext | None = None

    async def ping(self, target: ProbeTarget) -> None:
        url = target.url or (f"http://{target.host}:{target.port}/" if target.host else None)
        if not url:
            raise ProbeError("no url in the probe target")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeError(f"not an http(s) url: {target.display()}")
        tls = parts.scheme == "https"
        if tls and self._tls is None:
            self._tls = ssl.create_default_context()
        port = parts.port or (443 if tls else 80)
        reader, writer = await asyncio.open_connection(
            parts.hostname,
            port,
            ssl=self._tls if tls else None,
            server_hostname=parts.hostname if tls else None,
        )
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.hostname if not parts.port else f"{parts.hostname}:{parts.port}"
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: floe-stream-probe\r\n"
                f"Accept: */*\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            line = await reader.readline()
            fields = line.decode("latin-1").split(" ", 2)
            if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
                raise ProbeError("not an HTTP response" if line else "connection closed without a response")
            status = int(fields[1])
            if status not in target.expected_status:
                raise ProbeError(f"status {status}")
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


class PostgresProbe:
    """Connect and ``SELECT 1`` (user/password from settings ``checks.probe_user`` / ``probe_password``)."""

    name = "postgres"

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.user = user
        self.password = password

    async def ping(self, target: ProbeTarget) -> None:
        import asyncpg

        host, port = _host_port(target, 5432)
        conn = await asyncpg.connect(
            host=host,
            port=port,
            database=target.database,
            user=self.user,
            password=self.password,
        )
        try:
            if await conn.fetchval("SELECT 1") != 1:
                raise ProbeError("SELECT 1 returned something else")
        finally:
            await conn.close(timeout=2)


class KafkaProbe:
    """A metadata request to the bootstrap broker(s)."""

    name = "kafka"

    async def ping(self, target: ProbeTarget) -> None:
        from aiokafka.client import AIOKafkaClient

        servers = target.url or ":".join(str(x) for x in _host_port(target, 9092))
        client = AIOKafkaClient(bootstrap_servers=servers.removeprefix("kafka://"), request_timeout_ms=60_000)
        try:
            await client.bootstrap()
            meta = await client.fetch_all_metadata()
            if not meta.brokers():
                raise ProbeError("no brokers in metadata")
        finally:
            await client.close()
