"""The publisher kit over the real broker: FloeClient (sync and async) and `floe publish …` as a real process."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from floe_stream.client import FloeClient
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.topics import CatalogCommitEvent, CheckResult, MaterializationEvent, TopicKey
from floe_stream.topics.partitioning import partition_for
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, floe_env, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def s(broker_settings: Settings) -> Settings:
    """On each broker (ids tansu/kafka)."""
    return broker_settings.model_copy(update={"contracts_dir": FIXTURES / "contracts"})


async def test_sync_and_async_client_events_reach_the_processor(s: Settings) -> None:
    processor = processor_service(s, load_registry(s))
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned, timeout=30)
        client = FloeClient(s.kafka.bootstrap_servers, s.kafka.topic_prefix)
        try:  # the sync API from a worker thread, as a Dagster op or an Airflow callback would call it
            sent = await asyncio.to_thread(
                client.publish_materialization, "test.fast", row_count=10, run_id="r1", job="daily"
            )
            again = await asyncio.to_thread(client.publish_materialization, "test.slow", row_count=3)
        finally:
            await asyncio.to_thread(client.close)
        # Kafka orders nothing across topics: were the commit (a newer update of test.fast) evaluated before
        # this materialization, the materialization would be late data and yield no freshness result
        await wait_for(lambda: _results(s, 2), timeout=30)
        async with FloeClient(kafka=s.kafka) as aclient:
            commit = await aclient.apublish_commit(
                table="test.fast", snapshot_id=7, sequence_number=1,
                schema={"type": "struct", "fields": [{"id": 1, "name": "id", "required": True, "type": "long"}]},
            )  # fmt: skip
        results = await wait_for(lambda: _results(s, 4), timeout=30)
    by = {(r.asset, r.check_type.value, r.source_event_id) for r in results}
    assert ("test.fast", "freshness", "test.fast:r1") in by
    assert ("test.slow", "freshness", again.event_id) in by
    assert ("test.fast", "schema_drift", "test.fast:7") in by  # amount and updated_at missing → drift
    recs = await read_all(s, TopicKey.MATERIALIZATIONS)
    assert [(r.key, r.partition) for r in recs if r.key == b"test.fast"] == [
        (b"test.fast", partition_for("test.fast", 3))
    ]
    assert (
        MaterializationEvent.model_validate_json(next(r.value for r in recs if r.key == b"test.fast")) == sent
    )
    (crec,) = await read_all(s, TopicKey.CATALOG_COMMITS)
    assert crec.key == b"test.fast"
    assert CatalogCommitEvent.model_validate_json(crec.value) == commit


async def _results(s: Settings, n: int) -> list[CheckResult] | None:
    got = [CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)]
    return got if len(got) >= n else None


async def floe(s: Settings, *args: str) -> tuple[int, str, str]:
    exe = Path(sys.executable).parent / "floe"
    proc = await asyncio.create_subprocess_exec(
        str(exe), *args, env=floe_env(s), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_floe_publish_commands_for_shell_scripts_and_ci(s: Settings, tmp_path: Path) -> None:
    commit = {
        "table": "shop.orders", "snapshot_id": 99, "sequence_number": 4, "timestamp_ms": 1_790_000_000_000,
        "operation": "overwrite", "summary": {"added-records": "12"},
        "schema": {"type": "struct", "schema-id": 2, "fields": [{"id": 1, "name": "id", "required": True, "type": "long"}]},
    }  # fmt: skip
    (tmp_path / "commit.json").write_text(json.dumps(commit))
    (a, a_out, a_err), (b, b_out, b_err), (c, _, c_err) = await asyncio.gather(
        floe(s, "publish", "materialization", "--asset", "sales.orders", "--row-count", "1200", "--run-id", "dbt-5",
             "--label", "team=shop", "--dbt-run-results", str(FIXTURES / "dbt" / "run_results.json"),
             "--dbt-manifest", str(FIXTURES / "dbt" / "manifest.json")),
        floe(s, "publish", "commit", "--file", str(tmp_path / "commit.json")),
        floe(s, "publish", "materialization", "--asset", "x", "--materialized-at", "2026-01-01T00:00:00"),
    )  # fmt: skip
    assert a == 0, a_err
    assert b == 0, b_err
    assert c == 1
    assert "no time zone" in c_err  # a clear message, nothing sent
    printed = MaterializationEvent.model_validate_json(a_out)
    (mrec,) = await read_all(s, TopicKey.MATERIALIZATIONS)
    ev = MaterializationEvent.model_validate_json(mrec.value)
    assert ev == printed
    assert mrec.key == b"sales.orders"
    assert (ev.event_id, ev.row_count, ev.labels, ev.producer) == (
        "sales.orders:dbt-5",
        1200,
        {"team": "shop"},
        "floe-cli",
    )
    assert ev.quality is not None
    assert {(q.name, q.passed) for q in ev.quality} >= {
        ("not_null_orders_order_id", True),
        ("unique_orders_order_ref", False),
    }
    (crec,) = await read_all(s, TopicKey.CATALOG_COMMITS)
    got = CatalogCommitEvent.model_validate_json(crec.value)
    assert crec.key == b"shop.orders"
    assert (got.snapshot_id, got.operation, got.table_schema.schema_id, got.event_id) == (
        99,
        "overwrite",
        2,
        "shop.orders:99",
    )
    assert CatalogCommitEvent.model_validate_json(b_out) == got
