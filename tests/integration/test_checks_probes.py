"""The built-in PostgreSQL and Kafka probes against the real servers of this machine (and their failures),
allowed to reach loopback where those servers listen."""

from __future__ import annotations

from datetime import UTC, datetime
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


async def test_kafka_probe_api_versions(broker: Broker) -> None:
    runner = ProbeRunner(load_probes(), guard=LOOPBACK)
    host, port = broker.bootstrap.rsplit(":", 1)
    up = await runner.ping("k", ProbeTarget(type="kafka", host=host, port=int(port)), NOW, 10)
    assert up is not None and up.ok, up
    down = await runner.ping("k", ProbeTarget(type="kafka", host="127.0.0.1", port=free_port()), NOW, 3)
    assert down is not None and not down.ok
