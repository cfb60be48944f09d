"""What is not monitored is visible: events about assets no contract covers are counted
(``floe_events_unmonitored_total``, labelled by topic only) and listed by ``floe contracts coverage --seen``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from floe_stream.cli.seen import identifiers_of
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.telemetry.metrics import setup_metrics
from floe_stream.topics import MaterializationEvent, TopicKey
from floe_stream.topics.catalog import topic_name
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, floe_env, publish
from tests.integration.test_observability import ol_event, scrape, total

pytestmark = [pytest.mark.kafka]

FLOE = str(Path(sys.executable).parent / "floe")


def test_identifiers_of_each_input_kind() -> None:
    mat = MaterializationEvent(asset="x.y", materialized_at=datetime.now(UTC)).model_dump_json().encode()
    assert identifiers_of(TopicKey.MATERIALIZATIONS, mat) == ["x.y"]
    ol = ol_event("j", [("pg", "raw.a")], [("pg", "mart.b")])
    assert identifiers_of(TopicKey.MATERIALIZATIONS, ol) == [("pg", "mart.b", ()), ("pg", "raw.a", ())]
    assert identifiers_of(TopicKey.MATERIALIZATIONS, b"{broken") == []


async def test_unmonitored_events_are_counted_and_listed(settings: Settings) -> None:
    setup_metrics("floe-test")
    s = settings.model_copy(
        update={
            "contracts_dir": REPO / "tests" / "fixtures" / "contracts",
            "health_port": 0,
            "health_host": "127.0.0.1",
        }
    )
    processor = processor_service(s, load_registry(s))
    t_mat = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned and processor.health is not None, timeout=30)
        now = datetime.now(UTC)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.fast", MaterializationEvent(event_id="m1", asset="test.fast", materialized_at=now)),
            ("shadow.orders", MaterializationEvent(event_id="m2", asset="shadow.orders", materialized_at=now)),
            ("shadow.orders", MaterializationEvent(event_id="m3", asset="shadow.orders", materialized_at=now)),
            (None, ol_event("job", [("test", "fast")], [("warehouse", "shadow.customers")])),
        ])  # fmt: skip
        port = processor.health.port  # type: ignore[union-attr]

        async def counted() -> float:
            return total(await scrape(port), "floe_events_unmonitored_total", topic=t_mat)

        assert await wait_for(lambda: _at_least(counted, 2), timeout=20)

    env = {**os.environ, **floe_env(s), "FLOE_CONTRACTS_DIR": str(s.contracts_dir)}
    proc = await asyncio.create_subprocess_exec(
        FLOE, "contracts", "coverage", "--seen", "1h", "--format", "json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    gap = {r["asset"]: r["events"] for r in json.loads(out)}
    assert gap == {"shadow.orders": 2, "warehouse/shadow.customers": 1}  # test.fast is covered


async def _at_least(fn, n: float) -> bool:  # type: ignore[no-untyped-def]
    return await fn() >= n
