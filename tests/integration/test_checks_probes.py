"""The built-in PostgreSQL and Kafka probes against the real servers of this machine (and their failures),
allowed to reach loopback where those servers listen."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from floe_stream.probes.base import ProbeTarget
from floe_stream.probes.credentials import ProbeCredentials
from floe_stream.probes.guard import ProbeGuard
from floe_stream.probes.registry import load_probes
from floe_stream.probes.runner import ProbeRunner
from floe_stream.runtime.devtools.embedded import Broker, free_port
from tests.conftest import ADMIN_DSN

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
NOW = datetime.now(UTC)
LOOPBACK = ProbeGuard.from_settings(["127.0.0.0/8", "::1"])


async def test_postgres_probe_needs_no_password_and_a_refused_port_is_down() -> None:
    dsn = urlsplit(ADMIN_DSN)
    runner = ProbeRunner(load_probes(), guard=LOOPBACK)  # the test server listens on loopback
    db = dsn.path.lstrip("/") or "postgres"
    port = dsn.port or 5432
    up = await runner.ping(
        "pg", ProbeTarget(type="postgres", host=dsn.hostname, port=port, database=db), NOW, 10
    )
    assert up is not None and (up.ok, up.reason, up.target) == (True, None, f"{dsn.hostname}:{port}")
    # a database that does not exist: the running server says so, so it is up (as pg_isready judges)
    other = ProbeTarget(type="postgres", host=dsn.hostname, port=port, database="no_such_database_here")
    assert (await runner.ping("pg", other, NOW, 10)).ok  # type: ignore[union-attr]
    down = await runner.ping("pg", ProbeTarget(type="postgres", host="127.0.0.1", port=free_port()), NOW, 10)
    assert down is not None and not down.ok and down.reason


async def test_a_bound_postgres_credential_goes_only_over_verified_tls() -> None:
    """The test server's certificate is not one the system trusts: the login never happens (no password on
    the wire), the ping fails and says why."""
    dsn = urlsplit(ADMIN_DSN)
    host, port = dsn.hostname or "127.0.0.1", dsn.port or 5432
    creds = ProbeCredentials.from_settings(dsn.username or "postgres", SecretStr("x"), [f"{host}:{port}"])
    runner = ProbeRunner(load_probes(credentials=creds), guard=LOOPBACK)
    r = await runner.ping(
        "pg", ProbeTarget(type="postgres", host=host, port=port, database="postgres"), NOW, 10
    )
    assert r is not None and not r.ok
    assert "certificate" in (r.reason or "").lower() or "ssl" in (r.reason or "").lower(), r.reason


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA, and two server certificates it signs: one for ``localhost``, one for another name."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=floe test CA"
    )
    for name in ("localhost", "db.elsewhere.test"):
        (folder / f"{name}.ext").write_text(f"subjectAltName=DNS:{name}\n")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext")  # fmt: skip
    return folder / "ca.pem", folder / "localhost.pem", folder / "db.elsewhere.test.pem"


@contextlib.asynccontextmanager
async def _tls_in_front_of_postgres(cert: Path) -> AsyncIterator[tuple[int, bytearray]]:
    """A listener that answers PostgreSQL's SSLRequest with TLS under ``cert`` and relays the decrypted
    connection to the test server: a PostgreSQL with a certificate the operator's CA signed. Yields its port
    and what the client sent inside TLS."""
    dsn = urlsplit(ADMIN_DSN)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, cert.with_suffix(".key"))

    sent = bytearray()

    async def relay(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, tap: bytearray | None = None
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            while data := await src.read(65536):
                if tap is not None:
                    tap.extend(data)
                dst.write(data)
                await dst.drain()
        dst.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(8)  # SSLRequest
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(tls)
            up_r, up_w = await asyncio.open_connection(dsn.hostname, dsn.port or 5432)
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            writer.close()
            return
        await asyncio.gather(relay(reader, up_w, sent), relay(up_r, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], sent


async def test_a_bound_postgres_credential_logs_in_over_tls_the_operators_ca_verifies(tmp_path: Path) -> None:
    """checks.probe_tls_ca_file: a server whose certificate that CA signed for the name the probe dials is
    logged in to and runs SELECT 1 (up); one whose certificate names another host is not logged in to (down,
    saying why), whatever the CA."""
    ca, good, other = _certificates(tmp_path)
    user = urlsplit(ADMIN_DSN).username or "postgres"
    for cert, up in ((good, True), (other, False)):
        async with _tls_in_front_of_postgres(cert) as (port, sent):
            creds = ProbeCredentials.from_settings(user, SecretStr("x"), [f"localhost:{port}"], ca_file=ca)
            runner = ProbeRunner(load_probes(credentials=creds), guard=LOOPBACK)
            target = ProbeTarget(type="postgres", host="localhost", port=port, database="postgres")
            r = await runner.ping("pg", target, NOW, 20)
        assert r is not None and r.ok is up, r
        assert (b"SELECT 1" in sent) is up  # logged in and queried inside TLS, or nothing sent at all
        if not up:
            assert "certificate" in (r.reason or "").lower(), r.reason


async def test_kafka_probe_api_versions(broker: Broker) -> None:
    runner = ProbeRunner(load_probes(), guard=LOOPBACK)
    host, port = broker.bootstrap.rsplit(":", 1)
    up = await runner.ping("k", ProbeTarget(type="kafka", host=host, port=int(port)), NOW, 10)
    assert up is not None and up.ok, up
    down = await runner.ping("k", ProbeTarget(type="kafka", host="127.0.0.1", port=free_port()), NOW, 3)
    assert down is not None and not down.ok
