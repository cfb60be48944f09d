"""Idempotent producers where the broker has them: on Apache Kafka the test settings turn
``kafka.enable_idempotence`` on and every floe producer gets a producer id (no duplicate on a producer retry);
on Tansu, which has no InitProducerId, asking for it stops start-up with one clear line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import Settings
from floe_stream.topics import MaterializationEvent, TopicKey
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, floe_env, publish, read_all, start_floe

pytestmark = [pytest.mark.kafka]


async def test_the_processors_producers_are_idempotent_on_apache_kafka(kafka_settings: Settings) -> None:
    s = kafka_settings.model_copy(update={"contracts_dir": REPO / "tests" / "fixtures" / "contracts"})
    assert s.kafka.enable_idempotence
    processor = processor_service(s, load_registry(s))
    async with Running(processor, Ticker(s, ticker_id="t")):
        await wait_for(lambda: processor.ever_assigned, timeout=30)
        ev = MaterializationEvent(event_id="i1", asset="test.fast", materialized_at=datetime.now(UTC))
        await publish(s, TopicKey.MATERIALIZATIONS, [("test.fast", ev)])
        results = await wait_for(lambda: _results(s), timeout=20)
        # the broker granted each of the processor's producers (outputs, changelog, violations) a producer id; every floe
        # producer (sinks, ticker, client) is built by the same runtime/framework/kafka.make_producer from the same setting
        strategy = processor.strategy
        for producer in (processor.producer, strategy.state_producer, strategy.violation_producer):  # type: ignore[attr-defined]
            assert producer is not None and producer._txn_manager is not None
            assert producer._txn_manager.producer_id >= 0
    assert len(results) == 1


async def _results(s: Settings) -> list | None:  # type: ignore[type-arg]
    return await read_all(s, TopicKey.CHECK_RESULTS) or None


async def test_idempotence_on_tansu_stops_start_up_with_one_line(settings: Settings, tmp_path: Path) -> None:
    env = floe_env(settings, FLOE_KAFKA__ENABLE_IDEMPOTENCE="true")
    proc = await start_floe(["run", "processor"], env, tmp_path / "p.log")
    rc = await asyncio.wait_for(proc.wait(), 60)
    out = (tmp_path / "p.log").read_text()
    assert rc == 1, out
    last = [ln for ln in out.splitlines() if ln.strip()][-1]
    assert last.startswith("Error: kafka.enable_idempotence is on but the broker at "), out
    assert last.endswith("set FLOE_KAFKA__ENABLE_IDEMPOTENCE=false")
    assert "Traceback" not in out  # (aiokafka logs its own InitProducerId error line before)
