"""Where OpenLineage events go: HTTP (Marquez ``/api/v1/lineage``), a Kafka topic, a JSON-lines file, stdout, or
openlineage-python's own transports (``transport: openlineage``, configured through ``openlineage.yml`` /
``OPENLINEAGE_*`` like any OpenLineage client).

Every transport raises :class:`TransportError` with ``permanent=True`` for a rejection that a retry cannot fix
(HTTP 4xx other than 408/429) and ``permanent=False`` for an outage (connection refused, 5xx, timeouts).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from floe_stream.settings import OpenLineageSettings

Event = dict[str, Any]


class TransportError(Exception):
    """``delivered``: how many of the events passed to ``emit`` went out before the failure (in order)."""

    def __init__(self, message: str, *, permanent: bool, delivered: int = 0) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.delivered = delivered


class Transport(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def emit(self, events: Sequence[Event]) -> None:
        """Deliver every event, in order; raise TransportError otherwise."""
        ...


def encode(event: Event) -> bytes:
    return orjson.dumps(event)


class HttpTransport:
    name = "http"

    def __init__(self, cfg: OpenLineageSettings) -> None:
        self.url = cfg.url.rstrip("/") + "/" + cfg.endpoint.lstrip("/")
        headers = {"Content-Type": "application/json"}
        if cfg.api_key is not None:
            headers["Authorization"] = f"Bearer {cfg.api_key.get_secret_value()}"
        self.headers = headers
        self.timeout = cfg.timeout_s
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.client = httpx.AsyncClient(timeout=self.timeout, headers=self.headers)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def emit(self, events: Sequence[Event]) -> None:
        assert self.client is not None
        for i, ev in enumerate(events):  # Marquez takes one event per POST; order within a run matters
            try:
                resp = await self.client.post(self.url, content=encode(ev))
            except httpx.HTTPError as exc:
                raise TransportError(
                    f"POST {self.url}: {type(exc).__name__}: {exc}", permanent=False, delivered=i
                ) from None
            if resp.status_code >= 400:
                permanent = resp.status_code < 500 and resp.status_code not in (408, 429)
                raise TransportError(
                    f"POST {self.url}: HTTP {resp.status_code} {resp.text[:200]}",
                    permanent=permanent,
                    delivered=i,
                )


class KafkaTransport:
    """Produce to a topic (key ``run:<job namespace>/<job name>`` like openlineage-python's transport)."""

    name = "kafka"

    def __init__(self, cfg: OpenLineageSettings, producer: AIOKafkaProducer) -> None:
        self.topic = cfg.topic
        self.producer = producer

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def emit(self, events: Sequence[Event]) -> None:
        try:
            futures = [
                await self.producer.send(
                    self.topic, encode(ev), key=f"run:{ev['job']['namespace']}/{ev['job']['name']}".encode()
                )
                for ev in events
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise TransportError(f"produce to {self.topic}: {exc}", permanent=False) from None


class FileTransport:
    """Append JSON lines (flushed and fsync'ed per batch)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def start(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        pass

    def _write(self, data: bytes) -> None:
        import os

        with open(self.path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    async def emit(self, events: Sequence[Event]) -> None:
        if not events:
            return
        data = b"".join(encode(ev) + b"\n" for ev in events)
        try:
            await asyncio.to_thread(self._write, data)
        except OSError as exc:
            raise TransportError(f"write {self.path}: {exc}", permanent=False) from None


class ConsoleTransport:
    name = "console"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def emit(self, events: Sequence[Event]) -> None:
        for ev in events:
            sys.stdout.write(encode(ev).decode() + "\n")
        sys.stdout.flush()


class OpenLineageClientTransport:
    """openlineage-python's transports, configured the way every OpenLineage user configures a client:
    ``openlineage.yml`` (``OPENLINEAGE_CONFIG``, the working directory, ``~/.openlineage``), ``OPENLINEAGE_URL`` /
    ``OPENLINEAGE_API_KEY``, or ``OPENLINEAGE__TRANSPORT__TYPE=http|async_http|kafka|file|console|composite|…``.

    The client is synchronous: a batch is emitted on a worker thread, event by event in order. floe's retries,
    dead-lettering and delivery accounting stay around it (the sink): an HTTP 4xx other than 408/429 is permanent,
    every other failure transient."""

    name = "openlineage"

    def __init__(self, client: Any = None) -> None:
        self.client = client

    async def start(self) -> None:
        if self.client is None:
            from openlineage.client import OpenLineageClient

            self.client = await asyncio.to_thread(OpenLineageClient)

    async def close(self) -> None:
        if self.client is not None:
            await asyncio.to_thread(self.client.close, 5.0)

    def _emit_all(self, events: Sequence[Event], sent: list[int]) -> None:
        assert self.client is not None
        for ev in events:
            self.client.transport.emit(ev)  # the client's own Serde, headers, auth, compression
            sent[0] += 1

    async def emit(self, events: Sequence[Event]) -> None:
        sent = [0]
        try:
            await asyncio.to_thread(self._emit_all, events, sent)
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            permanent = isinstance(status, int) and 400 <= status < 500 and status not in (408, 429)
            raise TransportError(
                f"openlineage-python {type(self.client.transport).__name__}: {type(exc).__name__}: {exc}",
                permanent=permanent,
                delivered=sent[0],
            ) from None


def make_transport(cfg: OpenLineageSettings, producer: AIOKafkaProducer | None) -> Transport:
    if cfg.transport == "http":
        return HttpTransport(cfg)
    if cfg.transport == "kafka":
        assert producer is not None
        return KafkaTransport(cfg, producer)
    if cfg.transport == "file":
        return FileTransport(cfg.file)
    if cfg.transport == "openlineage":
        return OpenLineageClientTransport()
    return ConsoleTransport()
