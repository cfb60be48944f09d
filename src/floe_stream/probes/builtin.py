"""Built-in probes: PostgreSQL, HTTP(S), TCP, Kafka. Each connects to the address the runner's guard
checked (``ProbeTarget.endpoints``), never to a name resolved again."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from urllib.parse import urlsplit

from floe_stream.probes.base import Endpoint, ProbeError, ProbeTarget
from floe_stream.probes.credentials import ProbeCredentials
from floe_stream.probes.guard import hosts_of


def _host_port(target: ProbeTarget, default_port: int) -> tuple[str, int]:
    if not target.host:
        raise ProbeError("no host in the probe target")
    host, sep, port = target.host.rpartition(":")
    if sep and port.isdigit() and "]" not in port:  # ODCS kafka servers write "host:port" in `host`
        return host, target.port or int(port)
    return target.host, target.port or default_port


def _endpoint(target: ProbeTarget, default_port: int) -> tuple[str, str, int]:
    """(host as named, address to connect to, port) of the target's first host."""
    if target.endpoints:
        ep = target.endpoints[0]
        return ep.host, ep.address, ep.port or default_port
    host, port = _host_port(target, default_port)
    return host, host, port


class TcpProbe:
    """TCP connect to host:port."""

    name = "tcp"

    async def ping(self, target: ProbeTarget) -> None:
        _, address, port = _endpoint(target, 0)
        if not port:
            raise ProbeError("no port in the probe target")
        _, writer = await asyncio.open_connection(address, port)
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
        # the address the guard checked; TLS verifies the certificate against the URL's host name
        address = target.endpoints[0].address if target.endpoints else parts.hostname
        reader, writer = await asyncio.open_connection(
            address,
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
    """PostgreSQL availability the way ``pg_isready`` judges it, without a password: a startup message, and
    any answer but "not accepting connections" (57P03: starting up, shutting down) means the server is up.
    An authentication request is such an answer; no password is ever sent in reply, so a contract pointing
    its ``servers`` at a listener that asks for one obtains nothing.

    Where the operator binds a credential to a target (``checks.probe_credential_hosts``), the probe logs in
    over verified TLS only and runs ``SELECT 1``."""

    name = "postgres"

    def __init__(self, credentials: ProbeCredentials | None = None) -> None:
        self.credentials = credentials

    async def ping(self, target: ProbeTarget) -> None:
        host, address, port = _endpoint(target, 5432)
        bound = self.credentials.for_target(host, port) if self.credentials is not None else None
        if bound is not None:
            await _select_1(host, port, target.database, bound)
            return
        user = (
            self.credentials.user if self.credentials is not None and self.credentials.user else "floe-probe"
        )
        await _startup_ping(address, port, user, target.database)


_PG_NOT_ACCEPTING = "57P03"


async def _startup_ping(address: str, port: int, user: str, database: str | None) -> None:
    params = {"user": user, "application_name": "floe-probe", **({"database": database} if database else {})}
    body = struct.pack("!i", 196608) + b"".join(f"{k}\0{v}\0".encode() for k, v in params.items()) + b"\0"
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(struct.pack("!i", len(body) + 4) + body)
        await writer.drain()
        try:
            head = await reader.readexactly(5)
        except asyncio.IncompleteReadError:
            raise ProbeError("connection closed without a PostgreSQL answer") from None
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        if kind == b"R":  # an authentication request (or AuthenticationOk): the server is up
            return
        if kind != b"E" or not 4 < length <= 65_536:
            raise ProbeError("not a PostgreSQL server")
        fields = {
            f[:1]: f[1:].decode("utf-8", "replace")
            for f in (await reader.readexactly(length - 4)).split(b"\0")
            if f
        }
        if fields.get(b"C") == _PG_NOT_ACCEPTING:
            raise ProbeError(f"not accepting connections: {fields.get(b'M', '')}"[:200])
        # any other error (no such database, no pg_hba entry, too many connections) came from a running server
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _select_1(
    host: str, port: int, database: str | None, login: tuple[str, str, ssl.SSLContext]
) -> None:
    import asyncpg

    user, password, tls = login
    conn = await asyncpg.connect(
        host=host, port=port, database=database, user=user, password=password, ssl=tls
    )  # an SSLContext: TLS is required and verified (certificate and host name), never a plaintext fallback
    try:
        if await conn.fetchval("SELECT 1") != 1:
            raise ProbeError("SELECT 1 returned something else")
    finally:
        await conn.close(timeout=2)


class KafkaProbe:
    """An ApiVersions request to the bootstrap broker(s), in order, until one answers as a Kafka broker does.

    Only the addresses the contract names (and the guard checked) are contacted: no metadata-driven
    connection to the brokers a cluster advertises."""

    name = "kafka"

    async def ping(self, target: ProbeTarget) -> None:
        endpoints = list(target.endpoints) or [Endpoint(h, h, p) for h, p in hosts_of(target)]
        problem = "no bootstrap server in the probe target"
        for ep in endpoints:
            try:
                await _api_versions(ep.address, ep.port or 9092)
                return
            except (OSError, ProbeError, asyncio.IncompleteReadError) as exc:
                problem = str(exc) or type(exc).__name__
        raise ProbeError(problem[:200])


async def _api_versions(address: str, port: int) -> None:
    client = b"floe-probe"
    request = struct.pack("!hhih", 18, 0, 1, len(client)) + client  # ApiVersions v0, correlation id 1
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(struct.pack("!i", len(request)) + request)
        await writer.drain()
        size = struct.unpack("!i", await reader.readexactly(4))[0]
        if not 6 <= size <= 1_048_576:
            raise ProbeError("not a Kafka broker")
        correlation, _error = struct.unpack("!ih", (await reader.readexactly(size))[:6])
        if correlation != 1:
            raise ProbeError("not a Kafka broker")
        # any error code is still a broker answering (UNSUPPORTED_VERSION on brokers that dropped v0)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
