"""Shared fixtures: the real brokers (embedded Tansu, and Apache Kafka) and the machine's real PostgreSQL.

* one Tansu broker per test session (``kafka``), on a free loopback port; each test gets its own topic prefix
  and consumer-group prefix, so tests never see each other's data;
* one Apache Kafka broker per test session (``apache_kafka``, KRaft, installed by ``make tools``), started the
  first time a test asks for it and reused by every test after it;
* ``broker`` is parametrized over both (ids ``tansu`` / ``kafka``), and ``broker_settings`` is ``settings`` on it;
* one fresh PostgreSQL database per test on the server at FLOE_TEST_PG_DSN
  (default postgresql://postgres@127.0.0.1:5432/postgres), migrated, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from floe_stream.runtime.devtools.embedded import (
    KAFKA_NOT_INSTALLED,
    ApacheKafka,
    Broker,
    EmbeddedKafka,
    kafka_installed,
)
from floe_stream.runtime.framework.database import migrate
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.settings import DatabaseSettings, KafkaSettings, Settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
# Copies of the ODCS examples and the official OpenLineage / ODCS JSON Schemas (source, version, licence:
# tests/fixtures/README.md). Nothing outside the repository is read (tests/unit/test_self_contained.py).
ODCS_EXAMPLES = FIXTURES / "odcs-examples"
SCHEMAS = FIXTURES / "schemas"
OPENLINEAGE_SCHEMAS = SCHEMAS / "openlineage"
pytest_plugins = ["tests.integration.tools"]  # .tools/ servers: iceberg_rest

ADMIN_DSN = os.environ.get("FLOE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


_ON_APACHE_KAFKA = frozenset({"apache_kafka", "kafka_settings"})


def _uses_tool_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(d.func.__module__ == "tests.integration.tools" for fds in defs for d in fds)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs on Apache Kafka ``apache_kafka`` (the ``[kafka]`` side of ``broker``, or a
    fixture on it) and every test of a ``make tools`` tool ``tool`` (the deployment tests: helm; a fixture of
    tests/integration/tools.py: the Iceberg REST server, the emitters), so the fast lane (``make check``,
    docs/DEVELOPMENT.md) can leave them out."""
    for item in items:
        if REPO / "tests" / "deploy" in item.path.parents or _uses_tool_fixture(item):
            item.add_marker(pytest.mark.tool)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if _ON_APACHE_KAFKA & set(getattr(item, "fixturenames", ())) or params.get("broker") == "kafka":
            item.add_marker(pytest.mark.apache_kafka)


@pytest.fixture(scope="session", autouse=True)
def _contracts_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The compiled-contracts cache (default: the user's ``~/.cache``) in a folder of this session, for every
    process the tests start too: no test reads what an earlier run compiled."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    broker = EmbeddedKafka(log_file=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """The real Apache Kafka broker (auto.create.topics.enable at its default, true), one per session."""
    if not kafka_installed():
        pytest.fail(KAFKA_NOT_INSTALLED, pytrace=False)
    root = tmp_path_factory.mktemp("apache-kafka")
    broker = ApacheKafka(log_file=root / "kafka.log", data_dir=root / "data").start()
    yield broker
    broker.stop()


@pytest.fixture(params=["tansu", "kafka"])
def broker(request: pytest.FixtureRequest) -> Broker:
    """Each broker in turn (test ids ``[tansu]`` / ``[kafka]``); both are session-scoped and reused."""
    fixture = "kafka" if request.param == "tansu" else "apache_kafka"
    b: Broker = request.getfixturevalue(fixture)
    return b


def fast_kafka(
    bootstrap: str, prefix: str, partitions: int = 3, broker: Broker | None = None
) -> KafkaSettings:
    """Test settings: short sessions, 20 ms fetch waits; idempotent producers where ``broker`` supports them."""
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        group_prefix=prefix.rstrip("."),
        partitions=partitions,
        fetch_max_wait_ms=20,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        linger_ms=0,
        enable_idempotence=broker is not None and broker.supports_idempotence,
    )


@contextlib.asynccontextmanager
async def empty_database(prefix: str = "floe_test") -> AsyncIterator[str]:
    """A new, empty database on the test PostgreSQL (not migrated), dropped afterwards; yields its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with empty_database() as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield dsn


def make_settings(broker: Broker, pg_dsn: str) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    return Settings(
        kafka=fast_kafka(broker.bootstrap, prefix, broker=broker),
        database=DatabaseSettings(dsn=pg_dsn),  # type: ignore[arg-type]
        contracts_dir=REPO / "examples" / "contracts",
        tick_interval_s=0.5,
        clock_skew_s=0.0,
        health_port=-1,
    )


@pytest.fixture
async def settings(kafka: EmbeddedKafka, pg_dsn: str) -> Settings:
    """Settings for one test on Tansu: unique topics (created, 3 partitions), a fresh database, example contracts."""
    s = make_settings(kafka, pg_dsn)
    await ensure_topics(s.kafka)
    return s


@pytest.fixture
async def kafka_settings(apache_kafka: ApacheKafka, pg_dsn: str) -> Settings:
    """``settings`` on the Apache Kafka broker."""
    s = make_settings(apache_kafka, pg_dsn)
    await ensure_topics(s.kafka)
    return s


@pytest.fixture
async def broker_settings(broker: Broker, pg_dsn: str) -> Settings:
    """``settings`` on each broker in turn (with ``broker``: ids ``[tansu]`` / ``[kafka]``)."""
    s = make_settings(broker, pg_dsn)
    await ensure_topics(s.kafka)
    return s


def rdkafka_threads() -> int:
    """librdkafka's threads in this process (it names them rdk:main, rdk:broker…): they live as long as the
    producer they serve, reconnecting and logging while its broker is down."""
    count = 0
    for t in Path("/proc/self/task").iterdir():
        try:
            name = (t / "comm").read_text(errors="replace")
        except (FileNotFoundError, ProcessLookupError):  # the thread ended after the listing
            continue
        count += name.startswith("rdk:")
    return count


async def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` (sync or async) until truthy; return its value or fail the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
