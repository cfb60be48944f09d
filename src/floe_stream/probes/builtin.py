"""Built-in probes: PostgreSQL, HTTP(S), TCP, Kafka."""

from __future__ import annotations

import asyncio
import contextlib

from floe_stream.probes.base import ProbeError, ProbeTarget


def _host_port(target: ProbeTarget, default_port: int) -> tuple[str, int]:
    if not target.host:
        raise ProbeError("no host in the probe target")
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
    """HTTP(S) GET; the status must be one of ``expected_status`` (default 200)."""

    name = "http"

    def __init__(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(follow_redirects=False, timeout=None)

    async def ping(self, target: ProbeTarget) -> None:
        url = target.url or (f"http://{target.host}:{target.port}/" if target.host else None)
        if not url:
            raise ProbeError("no url in the probe target")
        resp = await self._client.get(url, headers={"user-agent": "floe-stream-probe"})
        if resp.status_code not in target.expected_status:
            raise ProbeError(f"status {resp.status_code}")


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
