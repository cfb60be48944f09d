"""Retention over the real broker: a producer reports the oldest row of its table on each materialization;
when rows younger than the contract's retention disappear, a retention violation opens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.topics import MaterializationEvent, Severity, TopicKey, ViolationData
from floe_stream.topics.enums import CheckType
from tests.conftest import wait_for
from tests.integration.checks_support import write
from tests.integration.helpers import Running, publish, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONTRACT = {
    "apiVersion": "v3.1.0", "kind": "DataContract", "id": "ret", "name": "ret", "version": "1", "status": "active",
    "schema": [{"name": "events", "physicalName": "db.events", "properties": [{"name": "ts", "logicalType": "timestamp"}]}],
    "slaProperties": [{"property": "retention", "value": 30, "unit": "d", "element": "events.ts"}],
}  # fmt: skip


async def test_rows_deleted_before_their_retention_ends(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(
        update={"contracts_dir": write(tmp_path / "c", "r.odcs.yaml", yaml.safe_dump(CONTRACT)).parent}
    )
    processor = processor_service(s, load_registry(s))
    now = datetime.now(UTC)
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("db.events", MaterializationEvent(event_id="r1", asset="db.events", materialized_at=now,
                                               oldest_data_timestamp=now - timedelta(days=20))),
            ("db.events", MaterializationEvent(event_id="r2", asset="db.events", materialized_at=now + timedelta(seconds=1),
                                               oldest_data_timestamp=now - timedelta(days=7))),
        ])  # fmt: skip

        async def opened() -> ViolationData | None:
            for e in await violations(s):
                if isinstance(e.data, ViolationData) and e.data.violation_type == CheckType.RETENTION:
                    return e.data
            return None

        v = await wait_for(opened, timeout=15)
    assert v.severity == Severity.ERROR
    assert v.element == "ts"
    assert "retention are gone" in v.message
