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

from floe_stream.runtime.app import Runnable, build
from floe_stream.runtime.checks_runtime import retire_contracts
from floe_stream.runtime.embedded import Broker, EmbeddedKafka
from floe_stream.runtime.kafka import ensure_topics
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.materialization import MaterializationEvent
from tests.conftest import REPO, make_settings, wait_for
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
