"""Quality over the real broker and PostgreSQL: an OpenLineage COMPLETE event with dataQualityAssertions
produces one violation per failed expectation (judged by the contract's ODCS rules) plus the score
violation; a materialization without results is a skipped check, never a violation; row counts feed the
contract's rowCount rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from floe_stream.runtime.deployables.app import load_registry, postgres_sink, processor_service
from floe_stream.settings import Settings
from floe_stream.topics import MaterializationEvent, TopicKey
from tests.conftest import wait_for
from tests.integration.checks_support import write
from tests.integration.helpers import Running, publish

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: dq-orders
name: dq-orders
version: 2.0.0
status: active
schema:
  - name: orders
    physicalName: orders
    customProperties:
      - property: floe
        value:
          asset: test.quality
    quality:
      - name: volume
        metric: rowCount
        mustBeGreaterThan: 100
    properties:
      - name: id
        logicalType: integer
        quality:
          - name: no_null_ids
            metric: nullValues
            mustBe: 0
          - name: unique_ids
            metric: duplicateValues
            mustBe: 0
      - name: amount
        logicalType: number
"""

RUN = "0192e5a0-0000-7000-8000-0000000000aa"


def ol_event() -> bytes:
    return json.dumps({
        "eventType": "COMPLETE", "eventTime": datetime.now(UTC).isoformat(),
        "run": {"runId": RUN}, "job": {"namespace": "dq", "name": "orders.validate"},
        "producer": "https://example.test/gx", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "inputs": [{"namespace": "postgres://db:5432", "name": "test.quality", "inputFacets": {"dataQualityAssertions": {
            "_producer": "https://example.test/gx",
            "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json",
            "assertions": [
                {"assertion": "not_null", "success": False, "column": "id", "failures": 12, "severity": "error"},
                {"assertion": "unique", "success": True, "column": "id"},
                {"assertion": "custom_sql", "success": False, "name": "amount_positive", "severity": "warn",
                 "expected": "0", "actual": "3"},
            ]}}}],
        "outputs": [],
    }).encode()  # fmt: skip


async def test_openlineage_assertions_become_per_expectation_violations(
    settings: Settings, tmp_path: Path
) -> None:
    write(tmp_path / "c", "dq.odcs.yaml", CONTRACT)
    s = settings.model_copy(update={"contracts_dir": tmp_path / "c"})
    processor = processor_service(s, load_registry(s))
    sink = postgres_sink(s)
    now = datetime.now(UTC)
    async with Running(processor, sink):
        await wait_for(lambda: processor.ever_assigned and sink.ever_assigned, timeout=30)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.quality", ol_event()),
            ("test.quality", MaterializationEvent(event_id="m-none", asset="test.quality", materialized_at=now)),
            ("test.quality", MaterializationEvent(event_id="m-small", asset="test.quality", materialized_at=now, row_count=7)),
        ])  # fmt: skip
        conn = await asyncpg.connect(s.database.dsn.get_secret_value())
        try:
            rows = await wait_for(lambda: _violations(conn, 4), timeout=30)
            skipped = await wait_for(
                lambda: conn.fetch(
                    "SELECT * FROM check_results WHERE status = 'skipped' AND check_type = 'quality'"
                ),
                timeout=20,
            )
        finally:
            await conn.close()
    by_key = {r["correlation_key"]: r for r in rows}
    assert set(by_key) == {
        "test.quality/quality/no_null_ids",
        "test.quality/quality/amount_positive",
        "test.quality/quality",
        "test.quality/quality/volume",
    }
    ids = by_key["test.quality/quality/no_null_ids"]
    assert (ids["severity"], ids["element"], ids["expected_value"], ids["actual_value"]) == (
        "error", "id", "nullValues mustBe 0 rows", "12"
    )  # fmt: skip
    assert by_key["test.quality/quality/amount_positive"]["severity"] == "warning"
    score = by_key["test.quality/quality"]
    assert score["actual_value"] == "0.3333"  # 1 of 3 weighted expectations passed
    assert json.loads(score["payload"])["data"]["context"]["failed"] == "no_null_ids,amount_positive"
    vol = by_key["test.quality/quality/volume"]
    assert (vol["expected_value"], vol["actual_value"]) == ("rowCount mustBeGreaterThan 100", "7")
    assert [r["source_event_id"] for r in skipped] == ["m-none"]
    assert all(r["contract_version"] == "2.0.0" for r in rows)


async def _violations(conn: asyncpg.Connection, n: int) -> list[asyncpg.Record] | None:
    rows = await conn.fetch("SELECT * FROM violation_events WHERE violation_type = 'quality'")
    return rows if len(rows) >= n else None
