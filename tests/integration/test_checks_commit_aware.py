"""Commit-aware freshness over the real broker: compactions (Iceberg ``replace`` snapshots) keep arriving,
yet the table gets no new data, so its freshness SLA is breached; a real append resolves it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import Settings
from floe_stream.topics import (
    CatalogCommitEvent,
    IcebergField,
    IcebergSchema,
    ResolvedData,
    TopicKey,
    ViolationData,
)
from floe_stream.topics.enums import CheckType, Severity
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, publish, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FIELDS = [
    IcebergField(id=1, name="id", required=True, type="long"),
    IcebergField(id=2, name="amount", type="double"),
    IcebergField(id=3, name="updated_at", type="timestamptz"),
]


def commit(seq: int, op: str, added: str) -> CatalogCommitEvent:
    return CatalogCommitEvent(
        table="test.fast", snapshot_id=1000 + seq, sequence_number=seq,
        timestamp_ms=int(datetime.now(UTC).timestamp() * 1000), operation=op,  # type: ignore[arg-type]
        table_schema=IcebergSchema(fields=FIELDS), summary={"added-records": added},
    )  # fmt: skip


async def _freshness(s: Settings, kind: type) -> list:  # type: ignore[type-arg]
    return [
        e.data
        for e in await violations(s)
        if isinstance(e.data, kind)
        and e.data.asset == "test.fast"
        and e.data.violation_type == CheckType.FRESHNESS
    ]


async def test_compactions_are_not_new_data(settings: Settings) -> None:
    s = settings.model_copy(update={"contracts_dir": REPO / "tests" / "fixtures" / "contracts"})
    processor = processor_service(s, load_registry(s))
    async with Running(processor, Ticker(s, ticker_id="t1")):
        await wait_for(lambda: processor.ever_assigned)
        await publish(s, TopicKey.CATALOG_COMMITS, [("test.fast", commit(1, "append", "10"))])

        async def compactions() -> None:  # every 0.3 s, against a 2 s latency SLA, until the breach
            seq = 2
            while True:
                await publish(s, TopicKey.CATALOG_COMMITS, [("test.fast", commit(seq, "replace", "10"))])
                seq += 1
                await asyncio.sleep(0.3)

        task = asyncio.create_task(compactions())
        try:

            async def breached() -> list[ViolationData]:
                return [v for v in await _freshness(s, ViolationData) if v.severity == Severity.ERROR]

            (breach, *_) = await wait_for(breached, timeout=15)
            assert "no update for" in breach.message  # while replace snapshots kept arriving
            assert not task.done()
        finally:
            task.cancel()
        await publish(s, TopicKey.CATALOG_COMMITS, [("test.fast", commit(10_000, "append", "3"))])
        await wait_for(lambda: _freshness(s, ResolvedData), timeout=10)
