"""Real receivers on loopback for the alert tests: a tiny asyncio HTTP/1.1 server with scripted answers,
an SMTP server (aiosmtpd) with STARTTLS + AUTH, and the Debian ``prometheus-alertmanager`` binary."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (the client must time out)


Handler = Callable[[Request], Reply]


class HttpReceiver:
    """Records every request; answers from ``script`` (consumed in order), then from ``handler`` or 200."""

    def __init__(self, handler: Handler | None = None, script: list[Reply] | None = None) -> None:
        self.handler = handler
        self.script = list(script or [])
        self.requests: list[Request] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self._hung: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> HttpReceiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self._hung:
            w.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if not line:
                return
            method, path, _ = line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            req = Request(method, path, headers, body)
            self.requests.append(req)
            reply = self.script.pop(0) if self.script else (self.handler(req) if self.handler else Reply())
            if reply.hang:
                self._hung.append(writer)
                await asyncio.sleep(3600)
                return
            head = [f"HTTP/1.1 {reply.status} X", f"Content-Length: {len(reply.body)}", "Connection: close"]
            head += [f"{k}: {v}" for k, v in reply.headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + reply.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class IncidentReceiver:
    """Behaves like PagerDuty Events v2: one incident per dedup_key; trigger opens or updates, resolve closes."""

    def __init__(self) -> None:
        self.incidents: dict[str, dict[str, Any]] = {}

    def __call__(self, req: Request) -> Reply:
        ev = req.json()
        if ev.get("routing_key") is None or ev.get("event_action") not in (
            "trigger",
            "resolve",
            "acknowledge",
        ):
            return Reply(400, b'{"status":"invalid event"}')
        key = ev["dedup_key"]
        inc = self.incidents.setdefault(key, {"status": "triggered", "events": [], "opened": 0})
        if ev["event_action"] == "trigger":
            if inc["status"] != "triggered" or not inc["events"]:
                inc["opened"] += 1
            inc["status"] = "triggered"
        elif ev["event_action"] == "resolve":
            inc["status"] = "resolved"
        inc["events"].append(ev)
        return Reply(202, json.dumps({"status": "success", "dedup_key": key}).encode())


# --- SMTP ------------------------------------------------------------------------------------------------
def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class SmtpReceiver:
    """aiosmtpd with STARTTLS required and AUTH (login ``alerts`` / ``password``)."""

    def __init__(self, folder: Path, password: str = "s3cret", *, implicit_tls: bool = False) -> None:
        self.folder, self.password, self.implicit_tls = folder, password, implicit_tls
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self.controller: Any = None
        self.cert: Path | None = None

    def __enter__(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        cert, key = self_signed_cert(self.folder)
        self.cert = cert
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
                outer.messages.append(msg)  # type: ignore[arg-type]
                return "250 OK"

        def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = (
                isinstance(data, LoginPassword)
                and data.login == b"alerts"
                and data.password == self.password.encode()
            )
            return AuthResult(success=ok, handled=False)  # handled=False: otherwise no reply on failure

        # implicit TLS: the whole session is encrypted (aiosmtpd cannot tell, so AUTH is not gated on STARTTLS)
        tls: dict[str, Any] = (
            {"ssl_context": ctx, "auth_require_tls": False}
            if self.implicit_tls
            else {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True}
        )
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, authenticator=auth, auth_required=True, **tls,
        )  # fmt: skip
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


# --- Alertmanager ------------------------------------------------------------------------------------------
class Alertmanager:
    """The Debian prometheus-alertmanager binary on a free port, routing to a webhook receiver."""

    def __init__(self, folder: Path, webhook_url: str, group_by: list[str]) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_url = webhook_url
        self.group_by = group_by
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> Alertmanager:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        assert binary, "prometheus-alertmanager is not installed: run scripts/install-tools.sh"
        cfg = {
            "route": {"receiver": "hook", "group_by": self.group_by, "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": self.webhook_url, "send_resolved": True}]}],
        }  # fmt: skip
        (self.folder / "am.yml").write_text(json.dumps(cfg))
        log = open(self.folder / "am.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(  # noqa: ASYNC220
            [binary, f"--config.file={self.folder / 'am.yml'}", f"--storage.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             f"--web.external-url={self.url}"],
            stdout=log, stderr=log,
        )  # fmt: skip
        async with httpx.AsyncClient() as c:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get(f"{self.url}/-/ready")).status_code == 200:
                        return self
                await asyncio.sleep(0.1)
        raise AssertionError(f"alertmanager did not start: {(self.folder / 'am.log').read_text()[-2000:]}")

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --- publishing violation CloudEvents ----------------------------------------------------------------------
async def publish_violations(settings: Any, items: list[Any]) -> None:
    """Publish ViolationData / ResolvedData as the processor does (structured CloudEvents, keyed by asset)."""
    from aiokafka import AIOKafkaProducer

    from floe_stream.topics.catalog import TopicKey, topic_name
    from floe_stream.topics.violation import encode_violation

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        topic = topic_name(settings.kafka.topic_prefix, TopicKey.VIOLATIONS)
        for data in items:
            key, value, headers = encode_violation(data)
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()
