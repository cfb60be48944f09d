"""Hostile or unlucky input never stops a deployable, never silences another asset (issue 20).

One test per finding, each against the public interfaces: the record is published to the real broker, the
deployable is the one ``floe run <kind>`` builds (``runtime.app.build``), and the test observes what an operator
would: the deployable still running, the record dead-lettered (or refused) with its reason, and the other assets
still monitored. Findings that depend on a broker's limits run on Apache Kafka.

Shared helpers first; each section below is one slice of the issue (input records: bounds at decode, bounded
findings and state, time and sequence; contracts and probes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from click.testing import CliRunner
from pydantic import SecretStr

from floe_stream.cli.main import main as cli
from floe_stream.runtime.app import Runnable, build
from floe_stream.runtime.checks_runtime import retire_contracts
from floe_stream.runtime.embedded import Broker, EmbeddedKafka
from floe_stream.runtime.kafka import ensure_topics
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.materialization import MaterializationEvent
from tests.conftest import REPO, make_settings, wait_for
from tests.integration.checks_support import CleartextPostgres, HttpTarget, Tarpit, TcpTarget
from tests.integration.helpers import publish, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONTRACTS = (
    REPO / "tests" / "fixtures" / "contracts"
)  # test.fast (SLA 2 s, columns id/amount/updated_at), test.slow


async def hostile_settings(
    broker: Broker, pg_dsn: str, contracts: Path = CONTRACTS, **update: Any
) -> Settings:
    """Settings for one test on ``broker``: its own topics (created), a fresh database, ``contracts``."""
    s = make_settings(broker, pg_dsn).model_copy(update={"contracts_dir": contracts, **update})
    await ensure_topics(s.kafka)
    return s


@dataclass
class Deployed:
    """A deployable built as ``floe run <kind>`` builds it, running as a task."""

    kind: str
    service: Any
    task: asyncio.Task[None]

    @property
    def running(self) -> bool:
        """Still running (a deployable that met an exception it did not contain has returned or raised)."""
        return not self.task.done()

    def failure(self) -> BaseException | None:
        return self.task.exception() if self.task.done() and not self.task.cancelled() else None


@contextlib.asynccontextmanager
async def deployed(kind: str, settings: Settings) -> AsyncIterator[Deployed]:
    """Run ``build(kind, settings)`` until the block ends; it is assigned its partitions before the block runs.
    A deployable that stopped on its own is reported by the test's own assertions, not hidden here."""
    service: Runnable = build(kind, settings)
    task = asyncio.create_task(service.run(), name=kind)
    d = Deployed(kind, service, task)
    try:
        await wait_for(lambda: getattr(service, "ever_assigned", True) or task.done(), timeout=60)
        yield d
    finally:
        service.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), 30)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    topic: str
    value: bytes


async def dead_letters(settings: Settings) -> list[DeadLetter]:
    """Every record of the ``dlq`` topic, with its reason and origin topic."""
    out = []
    for rec in await read_all(settings, TopicKey.DLQ):
        h = dict(rec.headers)
        out.append(
            DeadLetter(h["floe-dlq-reason"].decode(), h.get("floe-dlq-topic", b"").decode(), rec.value or b"")
        )
    return out


async def records_of(
    settings: Settings, key: TopicKey, where: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The JSON values of a topic's records that satisfy ``where`` (check results, violations …)."""
    out = []
    for rec in await read_all(settings, key):
        if rec.value:
            obj = orjson.loads(rec.value)
            if where(obj):
                out.append(obj)
    return out


def largest(recs: list[ConsumerRecord[bytes, bytes]]) -> int:
    return max((len(r.value or b"") for r in recs), default=0)


# --- contracts: a contract cannot stop floe or take what another contract owns ---------------------------------


def hostile_contract(cid: str, table: str, asset: str) -> str:
    """One table with a 1 h freshness SLA, its asset id set by the floe customProperty."""
    return f"""apiVersion: v3.1.0
kind: DataContract
id: {cid}
name: {cid}
version: 1.0.0
status: active
schema:
  - name: {table}
    customProperties:
      - property: floe
        value:
          asset: {asset}
slaProperties:
  - property: latency
    value: 1
    unit: h
"""


async def publish_contract(settings: Settings, cid: str, text: str | None) -> None:
    """One record on the contracts topic (one publication: ownership goes by publication order); None
    retires the contract (a tombstone, as `floe contracts retire` writes it)."""
    if text is None:
        await retire_contracts(settings, [cid])
    else:
        await publish(settings, TopicKey.CONTRACTS, [(cid, text.encode())])


async def materialize(settings: Settings, asset: str, event_id: str) -> None:
    ev = MaterializationEvent(event_id=event_id, asset=asset, materialized_at=datetime.now(UTC), row_count=1)
    await publish(settings, TopicKey.MATERIALIZATIONS, [(asset, ev)])


async def evaluated_for(settings: Settings, asset: str, event_id: str) -> set[str]:
    """The contracts that the check results of one materialization of ``asset`` were evaluated for."""
    found = await records_of(
        settings, TopicKey.CHECK_RESULTS, lambda r: r["asset"] == asset and r["source_event_id"] == event_id
    )
    return {r["contract_id"] for r in found}


@pytest.fixture
def contracts_dir(tmp_path: Path) -> Path:
    (tmp_path / "contracts").mkdir()
    return tmp_path / "contracts"


async def test_poison_contract_record_never_stops_the_processor_or_the_postgres_sink(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    # `floe: {consumers: null}` at the contract level: the loader raised a TypeError nobody caught
    poison = hostile_contract("poison", "p", "hostile.poison")
    poison += "customProperties:\n  - property: floe\n    value: {consumers: null}\n"
    await publish_contract(s, "poison", poison)
    await publish_contract(s, "first", hostile_contract("first", "f", "hostile.first"))
    async with deployed("processor", s) as processor, deployed("sink-postgres", s) as sink:
        assert processor.running and sink.running, processor.failure() or sink.failure()
        # live: a second bad record, then a good one — the contracts tail goes on
        await publish_contract(s, "poison2", poison.replace("id: poison", "id: poison2"))
        await publish_contract(s, "later", hostile_contract("later", "l", "hostile.later"))
        await wait_for(lambda: processor.service.registry.get("hostile.later"), timeout=30)
        await materialize(s, "hostile.later", "m-later")
        assert await wait_for(lambda: evaluated_for(s, "hostile.later", "m-later"), timeout=30) == {"later"}
        # a newer valid version of the bad record's contract replaces it
        await publish_contract(s, "poison", hostile_contract("poison", "p", "hostile.poison"))
        await wait_for(lambda: processor.service.registry.get("hostile.poison"), timeout=30)
        await materialize(s, "hostile.poison", "m-poison")
        assert await wait_for(lambda: evaluated_for(s, "hostile.poison", "m-poison"), timeout=30) == {
            "poison"
        }
        await materialize(s, "hostile.first", "m-first")
        assert await wait_for(lambda: evaluated_for(s, "hostile.first", "m-first"), timeout=30) == {"first"}
        assert processor.running and sink.running


async def test_contract_claiming_another_contracts_asset_on_the_topic_is_refused_and_retiring_it_changes_nothing(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    await publish_contract(s, "sales", hostile_contract("sales", "orders", "hostile.orders"))
    await publish_contract(s, "intruder", hostile_contract("intruder", "x", "hostile.orders"))
    with caplog.at_level(logging.ERROR):
        async with deployed("processor", s) as processor:
            await materialize(s, "hostile.orders", "m1")
            assert await wait_for(lambda: evaluated_for(s, "hostile.orders", "m1"), timeout=30) == {"sales"}
            # an intruder while running (the id in other letters), then the first intruder is retired
            await publish_contract(s, "intruder2", hostile_contract("intruder2", "y", "HOSTILE.ORDERS"))
            await wait_for(lambda: "contract 'intruder2' refused" in caplog.text, timeout=30)
            await publish_contract(s, "intruder", None)
            await wait_for(lambda: "intruder" not in processor.service.checks_rt.live.from_topic or
                           processor.service.checks_rt.live.from_topic["intruder"] is None, timeout=30)  # fmt: skip
            await materialize(s, "hostile.orders", "m2")
            assert await wait_for(lambda: evaluated_for(s, "hostile.orders", "m2"), timeout=30) == {"sales"}
            assert processor.running
    assert (
        "contract 'intruder' refused: asset id 'hostile.orders' is owned by contract 'sales'" in caplog.text
    )


async def test_contract_file_claiming_another_files_asset_is_refused_at_start_and_live(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (contracts_dir / "a-sales.yaml").write_text(hostile_contract("sales", "orders", "hostile.orders"))
    (contracts_dir / "b-intruder.yaml").write_text(hostile_contract("intruder", "x", "hostile.orders"))
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    s = s.model_copy(update={"checks": s.checks.model_copy(update={"contracts_poll_s": 0.2})})
    with caplog.at_level(logging.ERROR):
        async with deployed("processor", s) as processor:
            (contracts_dir / "c-late.yaml").write_text(hostile_contract("late", "y", "hostile.orders"))
            await wait_for(lambda: "contract 'late' refused" in caplog.text, timeout=30)
            await materialize(s, "hostile.orders", "m1")
            assert await wait_for(lambda: evaluated_for(s, "hostile.orders", "m1"), timeout=30) == {"sales"}
            assert processor.running
    assert (
        "contract 'intruder' refused: asset id 'hostile.orders' is owned by contract 'sales'" in caplog.text
    )


# --- probes: a contract cannot make floe connect where the operator did not allow, nor log in anywhere --------


def availability_contract_yaml(cid: str, assets: list[str], probe: str, *, checks: str = "") -> str:
    """One table per asset id, availability 50 %, the contract-level ``floe.probe`` given (flow YAML)."""
    tables = "".join(
        f"  - name: t{i}\n    customProperties:\n      - property: floe\n        value: {{asset: {a}}}\n"
        for i, a in enumerate(assets)
    )
    return f"""apiVersion: v3.1.0
kind: DataContract
id: {cid}
name: {cid}
version: 1.0.0
status: active
customProperties:
  - property: floe
    value:
      checks: {{ping_interval_s: 0.3{", " + checks if checks else ""}}}
      probe: {probe}
schema:
{tables}slaProperties:
  - property: availability
    value: "50%"
"""


async def probe_results(settings: Settings, asset: str) -> list[dict[str, Any]]:
    return await records_of(settings, TopicKey.PROBE_RESULTS, lambda r: r["asset"] == asset)


async def test_probes_reach_only_what_the_operator_allows_no_ssrf_no_port_scan(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await HttpTarget(status=200).start()  # an internal admin endpoint on loopback
    scanned = TcpTarget()
    await scanned.start()
    allowed = await HttpTarget(status=200).start("127.0.0.2")  # what the operator lists: 127.0.0.2 only
    url = f"http://127.0.0.1:{admin.port}/internal/admin/delete?all=1"
    (contracts_dir / "ssrf.yaml").write_text(
        availability_contract_yaml("ssrf", ["h.ssrf"], f"{{type: http, url: '{url}'}}")
    )
    (contracts_dir / "scan.yaml").write_text(
        availability_contract_yaml(
            "scan", ["h.scan"], f"{{type: tcp, host: localhost, port: {scanned.port}}}"
        )
    )
    (contracts_dir / "ok.yaml").write_text(
        availability_contract_yaml("ok", ["h.ok"], f"{{type: http, url: 'http://127.0.0.2:{allowed.port}/'}}")
    )
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    s = s.model_copy(update={"checks": s.checks.model_copy(update={"probe_allow": ["127.0.0.2/32"]})})
    try:
        with caplog.at_level(logging.WARNING):
            async with deployed("processor", s) as processor, deployed("ticker", s):
                ok = await wait_for(lambda: probe_results(s, "h.ok"), timeout=30)
                assert ok[0]["ok"], ok
                await wait_for(
                    lambda: len(caplog.records) and "h.scan" in caplog.text and "h.ssrf" in caplog.text
                )
                n_ok = len(await probe_results(s, "h.ok"))
                await wait_for(lambda: at_least(s, "h.ok", n_ok + 3), timeout=30)
                assert processor.running
        assert admin.requests == 0 and scanned.accepted == 0  # never connected
        assert await probe_results(s, "h.ssrf") == [] and await probe_results(s, "h.scan") == []
        assert (
            "asset h.ssrf: availability not evaluated: probe target not allowed: 127.0.0.1 is a loopback"
            in caplog.text
        )
        assert (
            "asset h.scan: availability not evaluated: probe target not allowed: localhost (127.0.0.1)"
            in caplog.text
        )
    finally:
        await admin.stop()
        await scanned.stop()
        await allowed.stop()
    # lint and explain say so before anything runs, with the same allow-list
    env = {"FLOE_CHECKS__PROBE_ALLOW": '["127.0.0.2/32"]'}
    lint = CliRunner().invoke(cli, ["contracts", "lint", str(contracts_dir)], env=env)
    assert (
        "h.ssrf: availability not evaluated: probe target not allowed: 127.0.0.1 is a loopback" in lint.output
    )
    explain = CliRunner().invoke(cli, ["contracts", "explain", str(contracts_dir)], env=env)
    assert explain.output.count("measured: not evaluated: probe target not allowed") == 2, explain.output


async def at_least(settings: Settings, asset: str, n: int) -> list[dict[str, Any]] | None:
    """The probe results of ``asset`` once there are ``n`` of them."""
    found = await probe_results(settings, asset)
    return found if len(found) >= n else None


PASSWORD = "platform-probe-secret-5f2c"


async def test_no_probe_sends_the_platform_password_to_a_host_a_contract_names(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    """floe dev's settings (probes may reach loopback) with FLOE_CHECKS__PROBE_PASSWORD set: a contract's
    postgres server that asks for a cleartext password gets none, and is judged up from that very request."""
    async with CleartextPostgres() as listener:
        server = f"servers:\n  - server: db\n    type: postgres\n    host: 127.0.0.1\n    port: {listener.port}\n    database: x\n"
        text = availability_contract_yaml("thief", ["h.thief"], "{server: db}").replace(
            "schema:\n", server + "schema:\n", 1
        )
        (contracts_dir / "thief.yaml").write_text(text)
        s = await hostile_settings(kafka, pg_dsn, contracts_dir)
        checks = s.checks.model_copy(
            update={
                "probe_allow": ["127.0.0.0/8"],
                "probe_user": "floe",
                "probe_password": SecretStr(PASSWORD),
            }
        )
        s = s.model_copy(update={"checks": checks})
        async with deployed("processor", s) as processor, deployed("ticker", s):
            results = await wait_for(lambda: at_least(s, "h.thief", 3), timeout=30)
            assert processor.running
        assert listener.startups >= 3
        assert listener.passwords == [] and PASSWORD.encode() not in listener.received
        assert all(r["ok"] for r in results), results  # an authentication request: the server is up


async def test_one_contracts_tarpit_never_holds_every_ping_slot_and_timeouts_are_capped(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    tarpit = await Tarpit().start()
    healthy = await HttpTarget(status=200).start()
    tables = [f"h.pit{i}" for i in range(12)]
    (contracts_dir / "pit.yaml").write_text(
        availability_contract_yaml(
            "pit",
            tables,
            f"{{type: http, url: 'http://127.0.0.1:{tarpit.port}/'}}",
            checks="ping_timeout_s: 1e9",
        )
    )
    (contracts_dir / "ok.yaml").write_text(
        availability_contract_yaml("ok", ["h.ok"], f"{{type: http, url: 'http://127.0.0.1:{healthy.port}/'}}")
    )
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    checks = s.checks.model_copy(
        update={"probe_allow": ["127.0.0.0/8"], "ping_concurrency": 8, "ping_timeout_max_s": 1.0}
    )
    s = s.model_copy(update={"checks": checks})
    try:
        async with deployed("processor", s) as processor, deployed("ticker", s):
            # the healthy contract keeps being pinged while every tarpit ping hangs
            await wait_for(lambda: at_least(s, "h.ok", 5), timeout=40)
            assert all(r["ok"] for r in await probe_results(s, "h.ok"))
            # a contract's 1e9 s timeout is capped: its pings fail with "timeout" after ping_timeout_max_s
            timed_out = await wait_for(lambda: probe_results(s, "h.pit0"), timeout=40)
            assert timed_out[0]["reason"] == "timeout" and timed_out[0]["duration_ms"] < 5_000
            assert tarpit.peak <= 8 // 4 * 2  # one contract: a quarter of each lane at most
            assert processor.running
    finally:
        await tarpit.stop()
        await healthy.stop()
