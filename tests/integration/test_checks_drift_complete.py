"""Complete schema drift over the real broker: an Iceberg commit that drops a required column (CRITICAL),
widens one safely (INFO) and changes a nested struct field (compared field by field)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.topics import (
    CatalogCommitEvent,
    IcebergField,
    IcebergSchema,
    Severity,
    TopicKey,
    ViolationData,
)
from tests.conftest import wait_for
from tests.integration.checks_support import write
from tests.integration.helpers import Running, publish, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONTRACT = {
    "apiVersion": "v3.1.0", "kind": "DataContract", "id": "drift", "name": "drift", "version": "1", "status": "active",
    "schema": [{"name": "orders", "physicalName": "db.orders", "properties": [
        {"name": "id", "physicalType": "int", "required": True},
        {"name": "code", "physicalType": "string", "required": True},
        {"name": "address", "logicalType": "object", "physicalType": "struct", "properties": [
            {"name": "zip", "physicalType": "int"},
        ]},
    ]}],
}  # fmt: skip


async def test_drift_severities_over_the_broker(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(
        update={"contracts_dir": write(tmp_path / "c", "d.odcs.yaml", yaml.safe_dump(CONTRACT)).parent}
    )
    processor = processor_service(s, load_registry(s))
    fields = [
        IcebergField(id=1, name="id", required=True, type="long"),
        IcebergField(id=3, name="address", type={"type": "struct", "fields": [
            {"id": 4, "name": "zip", "required": False, "type": "string"}]}),
    ]  # fmt: skip
    commit = CatalogCommitEvent(
        table="db.orders", snapshot_id=1, sequence_number=1, timestamp_ms=int(datetime.now(UTC).timestamp() * 1000),
        operation="append", table_schema=IcebergSchema(fields=fields),
    )  # fmt: skip
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned)
        await publish(s, TopicKey.CATALOG_COMMITS, [("db.orders", commit)])

        async def drift() -> dict[str, Severity] | None:
            got = {
                e.data.element: e.data.severity
                for e in await violations(s)
                if isinstance(e.data, ViolationData)
            }
            return got if len(got) >= 3 else None

        got = await wait_for(drift, timeout=15)
    assert got == {"code": Severity.CRITICAL, "id": Severity.INFO, "address.zip": Severity.ERROR}
