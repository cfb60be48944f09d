"""The built-in PostgreSQL and Kafka probes against the real servers of this machine (and their failures)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from floe_stream.probes.base import ProbeTarget
from floe_stream.probes.registry import load_probes
from floe_stream.probes.runner import ProbeRunner
from floe_stream.runtime.embedded import EmbeddedKafka, free_port
from tests.conftest import ADMIN_DSN

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
NOW = datetime.now(UTC)


async def test_postgres_probe_select_1_and_a_refused_port() -> None:
    dsn = urlsplit(ADMIN_DSN)
    runner = ProbeRunner(load_probes(user=dsn.username, password=dsn.password))
    db = dsn.path.lstrip("/") or "postgres"
    up = await runner.ping(
        "pg", ProbeTarget(type="postgres", host=dsn.hostname, port=dsn.port or 5432, database=db), NOW, 10
    )
    assert (up.ok, up.reason, up.target) == (True, None, f"{dsn.hostname}:{dsn.port or 5432}")
    down = await runner.ping(
        "pg", ProbeTarget(type="postgres", host="127.0.0.1", port=free_port(), database=db), NOW, 10
    )
    assert not down.ok
    assert down.reason


async def test_kafka_probe_metadata_request(kafka: EmbeddedKafka) -> None:
    runner = ProbeRunner(load_probes())
    host, port = kafka.bootstrap.rsplit(":", 1)
    up = await runner.ping("k", ProbeTarget(type="kafka", host=host, port=int(port)), NOW, 10)
    assert up.ok, up.reason
    down = await runner.ping("k", ProbeTarget(type="kafka", host="127.0.0.1", port=free_port()), NOW, 3)
    assert not down.ok
