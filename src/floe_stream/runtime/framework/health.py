"""A tiny HTTP server on every process: /healthz (alive), /readyz (ready to work), /metrics (Prometheus).

The server answers from a thread of its own, so that it still answers while the service's event loop is
blocked (a handler calling ``time.sleep``, a CPU-bound loop, a synchronous call that hangs): then /healthz is
503 ``{"event_loop": false}`` instead of no answer. A small periodic task on the service's loop beats every
``BEAT_S``; /healthz is 503 when the last beat is older than ``loop_lag_s``. Otherwise the probes run on the
service's loop (they read its state), each within ``PROBE_TIMEOUT_S``; a probe that does not answer in time
is a failed probe (503). What /readyz checks is decided by the service, unchanged. /healthz also fails once a
supervised background task died (runtime/framework/supervision.py).

The port has no authentication (probes and scrapers reach it from the network), so a client gets bounded
resources: a request (line and headers, at most ``MAX_REQUEST_BYTES``) must arrive within
``REQUEST_DEADLINE_S`` in total, the whole exchange ends within ``EXCHANGE_DEADLINE_S``, and at most
``MAX_CONNECTIONS`` are open at once: a new one evicts the oldest still sending its request, so a flood of
slow clients (slowloris) neither holds sockets nor starves the orchestrator's probe, which sends its request
at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from floe_stream.runtime.framework.supervision import dead_tasks

if TYPE_CHECKING:
    from floe_stream.settings import Settings

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[dict[str, bool]]]
Details = Callable[[], dict[str, Any]]
T = TypeVar("T")

BEAT_S = 0.25
PROBE_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64
REQUEST_DEADLINE_S = 5.0
EXCHANGE_DEADLINE_S = PROBE_TIMEOUT_S + 10.0  # the request, the probe, and writing the answer
MAX_REQUEST_BYTES = 8192


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        liveness: Probe,
        readiness: Probe,
        details: Details | None = None,
        loop_lag_s: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.liveness, self.readiness = liveness, readiness
        self.details = details  # informational fields of /readyz that do not decide its status
        self.loop_lag_s = loop_lag_s
        self.last_beat = time.monotonic()  # written by the service's loop, read by the server's thread
        self._main: asyncio.AbstractEventLoop | None = None
        self._beat: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._open: dict[asyncio.StreamWriter, bool] = {}  # the server thread's connections → still reading

    # --- lifecycle (called on the service's loop) ----------------------------------------------------
    async def start(self) -> None:
        self._main = asyncio.get_running_loop()
        self.last_beat = time.monotonic()
        self._beat = asyncio.ensure_future(self._heartbeat())
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(started,), name="floe-health", daemon=True)
        self._thread.start()
        self.port = await asyncio.wrap_future(started)

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join, 5)
        self._loop = self._thread = self._server = None

    async def _heartbeat(self) -> None:
        while True:
            self.last_beat = time.monotonic()
            await asyncio.sleep(BEAT_S)

    def loop_lag(self) -> float:
        """Seconds since the service's loop last ran its heartbeat (about 0 to BEAT_S when it is healthy)."""
        return max(0.0, time.monotonic() - self.last_beat - BEAT_S)

    # --- the server's thread ---------------------------------------------------------------------------
    def _serve(self, started: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, limit=MAX_REQUEST_BYTES)
            )
            started.set_result(int(self._server.sockets[0].getsockname()[1]))
        except Exception as exc:  # e.g. the port is taken: start() raises it
            started.set_exception(exc)
            loop.close()
            return
        try:
            loop.run_forever()
        finally:
            self._server.close()
            handlers = asyncio.all_tasks(loop)  # connections still open: ended here, not by a closed loop
            for task in handlers:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(
                    asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 2)
                )
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(self._server.wait_closed(), 2))
            loop.close()

    async def _on_main(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the service's loop, within PROBE_TIMEOUT_S (TimeoutError otherwise)."""
        assert self._main is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._main)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), PROBE_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise

    async def _probe(self, path: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        lag = self.loop_lag()
        if path == "/healthz" and lag > self.loop_lag_s:
            return {"event_loop": False}, {"event_loop_lag_s": round(lag, 3)}
        probe = self.liveness if path == "/healthz" else self.readiness

        async def run() -> tuple[dict[str, Any], dict[str, Any] | None]:
            checks = dict(await probe())
            info = self.details() if path == "/readyz" and self.details is not None else None
            if path == "/healthz":
                dead = dead_tasks()  # on the service's loop: its supervised tasks
                checks["background_tasks"] = not dead
                if dead:
                    info = {"dead_tasks": dead}
            return checks, info or None

        try:
            return await self._on_main(run())
        except TimeoutError:
            return {"event_loop": False}, {"event_loop_lag_s": round(self.loop_lag(), 3)}

    async def _metrics(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest()

    def _admit(self, writer: asyncio.StreamWriter) -> bool:
        """Room for one more connection: at the cap, the oldest one still sending its request is dropped."""
        if len(self._open) >= MAX_CONNECTIONS:
            oldest = next((w for w, reading in self._open.items() if reading), None)
            if oldest is None:  # every slot is answering a request: this one waits for none
                return False
            del self._open[oldest]
            oldest.transport.abort()
        self._open[writer] = True
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._admit(writer):
            writer.transport.abort()
            return
        try:
            async with asyncio.timeout(EXCHANGE_DEADLINE_S):
                async with asyncio.timeout(REQUEST_DEADLINE_S):  # line + headers, all of them, not each
                    request = await reader.readline()
                    size = len(request)
                    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                        size += len(line)
                        if size > MAX_REQUEST_BYTES:
                            raise ValueError("request headers too large")
                if writer not in self._open:  # evicted while it was sending
                    return
                self._open[writer] = False  # answering: not evicted by newcomers
                await self._answer(request, writer)
        except Exception as exc:  # a broken or slow client must never take the process down
            log.debug("health request failed: %s", exc)
        finally:
            self._open.pop(writer, None)
            writer.close()

    async def _answer(self, request: bytes, writer: asyncio.StreamWriter) -> None:
        parts = request.decode("latin-1").split()
        path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            try:
                body = await self._on_main(self._metrics())
            except TimeoutError:
                await self._reply(writer, 503, b"event loop blocked\n", "text/plain")
            else:
                await self._reply(writer, 200, body, CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            checks, info = await self._probe(path)
            ok = all(checks.values())
            doc: dict[str, Any] = {"status": "ok" if ok else "degraded", "checks": checks}
            if info:
                doc["details"] = info
            body = json.dumps(doc).encode()
            await self._reply(writer, 200 if ok else 503, body, "application/json")
        else:
            await self._reply(writer, 404, b"not found\n", "text/plain")

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str) -> None:
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()


async def start_health(
    settings: Settings, *, liveness: Probe, readiness: Probe, details: Details | None = None
) -> HealthServer | None:
    """The process's health server on ``health_host:health_port``, started; None when ``health_port`` < 0 (off)."""
    if settings.health_port < 0:
        return None
    server = HealthServer(
        settings.health_host,
        settings.health_port,
        liveness=liveness,
        readiness=readiness,
        details=details,
        loop_lag_s=settings.health_loop_lag_s,
    )
    await server.start()
    return server
