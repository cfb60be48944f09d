"""Recipe: any OpenLineage emitter, its Kafka transport pointed at floe's materializations topic.

openlineage-python's own KafkaTransport (confluent-kafka), configured the way dbt-ol, the Airflow provider and
other Python emitters are configured (an ``openlineage.yml`` named by ``OPENLINEAGE_CONFIG``), emits START and
COMPLETE run events to the embedded broker; the processor turns the COMPLETE one into freshness and schema
checks of the output dataset — the transport's own key (``run:<namespace>/<job>``) is not the asset id, so
the processor re-routes the event to the asset's partition first.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import output_statistics_output_dataset, schema_dataset
from openlineage.client.uuid import generate_new_uuid

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.topics import CheckResult, DriftKind, TopicKey, ViolationData
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, read_all, use_openlineage_yml, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def emit_run(run_id: str) -> None:
    client = OpenLineageClient()  # configured by the file OPENLINEAGE_CONFIG names, like any emitter
    job = Job(namespace="dagster://shop", name="orders_asset")
    fields = [
        schema_dataset.SchemaDatasetFacetFields(name="id", type="bigint"),
        schema_dataset.SchemaDatasetFacetFields(name="amount", type="double"),
        schema_dataset.SchemaDatasetFacetFields(name="updated_at", type="timestamp with time zone"),
        schema_dataset.SchemaDatasetFacetFields(name="coupon", type="varchar"),
    ]
    output = OutputDataset(
        namespace="postgres://warehouse:5432",
        name="test.fast",
        facets={"schema": schema_dataset.SchemaDatasetFacet(fields=fields)},
        outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=42
            )
        },
    )
    now = datetime.now(UTC).isoformat()
    for state in (RunState.START, RunState.COMPLETE):
        client.emit(
            RunEvent(
                eventType=state,
                eventTime=now,
                run=Run(runId=run_id),
                job=job,
                outputs=[output],
                producer="https://example.test/emitter",
            )
        )
    client.close()


async def test_openlineage_kafka_transport_end_to_end(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings.model_copy(update={"contracts_dir": REPO / "tests" / "fixtures" / "contracts"})
    topic = f"{s.kafka.topic_prefix}materializations"
    use_openlineage_yml(
        monkeypatch,
        tmp_path,
        "transport:\n"
        "  type: kafka\n"
        f"  topic: {topic}\n"
        "  flush: true\n"
        "  config:\n"
        f"    bootstrap.servers: {s.kafka.bootstrap_servers}\n"
        "    acks: all\n",
    )
    processor = processor_service(s, load_registry(s))
    run_id = str(generate_new_uuid())
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned, timeout=30)
        await asyncio.to_thread(emit_run, run_id)
        results = await wait_for(lambda: _results(s, 2), timeout=30)
        evs = await wait_for(lambda: _drift(s), timeout=30)
    raw = await read_all(s, TopicKey.MATERIALIZATIONS)
    assert {r.key for r in raw} >= {b"run:dagster://shop/orders_asset"}  # the transport's own key …
    by = {(r.asset, r.check_type.value): r for r in results}
    fresh = by[("test.fast", "freshness")]  # … yet the asset's processor evaluated it
    assert fresh.status.value == "pass"
    assert fresh.source_event_id == f"ol:{run_id}:postgres://warehouse:5432/test.fast"
    assert by[("test.fast", "schema_drift")].status.value == "fail"
    assert [(e.data.drift_kind, e.data.element) for e in evs] == [(DriftKind.COLUMN_ADDED, "coupon")]
    assert len([r for r in results if r.check_type.value == "freshness"]) == 1  # START counted for nothing


async def _results(s: Settings, n: int) -> list[CheckResult] | None:
    got = [CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)]
    return got if len(got) >= n else None


async def _drift(s: Settings) -> list | None:  # type: ignore[type-arg]
    evs = [
        e
        for e in await violations(s)
        if isinstance(e.data, ViolationData) and e.data.violation_type.value == "schema_drift"
    ]
    return evs or None
