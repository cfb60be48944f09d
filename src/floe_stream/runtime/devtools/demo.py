"""The scripted `make demo` scenario, published to the real (embedded) broker.

* sales.orders    — materialized every 3 s: stays fresh.
* sales.payments  — materialized three times, then its pipeline stops: INFO, WARNING, ERROR as its
                    15 s freshness SLA runs out, with no event arriving (absence, driven by ticks).
* inventory.stock — an Iceberg commit adds a column and changes a type: two drift violations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from floe_stream.runtime.framework.kafka import make_producer
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.commit import CatalogCommitEvent, IcebergField, IcebergSchema
from floe_stream.topics.materialization import MaterializationEvent

SCENARIO_S = 34.0
DEMO_HEALTH_PORT = 18931


def stock_commit(snapshot: int) -> CatalogCommitEvent:
    now = datetime.now(UTC)
    return CatalogCommitEvent(
        catalog="demo",
        table="inventory.stock",
        snapshot_id=snapshot,
        sequence_number=snapshot,
        timestamp_ms=int(now.timestamp() * 1000),
        operation="append",
        table_schema=IcebergSchema(
            fields=[
                IcebergField(id=1, name="sku", required=True, type="string"),
                IcebergField(id=2, name="warehouse_id", required=False, type="string"),  # int → string
                IcebergField(id=3, name="quantity", required=True, type="int"),
                IcebergField(id=4, name="updated_at", required=False, type="timestamptz"),
                IcebergField(id=5, name="bin_location", required=False, type="string"),  # added
            ]
        ),
        summary={"added-records": "120", "total-records": "5120"},
    )


async def order_service_health() -> asyncio.Server | None:
    """The order service's health port that sales.orders' availability probe pings (see its contract).
    Started before the processor, so the first ping already finds it."""

    async def _accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    try:
        return await asyncio.start_server(_accept, "127.0.0.1", DEMO_HEALTH_PORT)
    except OSError:
        return None  # the port is taken: whatever listens there answers the probe


async def run_scenario(settings: Settings, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a plain predicate
        await asyncio.sleep(0.1)

    producer = make_producer(settings.kafka, linger_ms=0)
    await producer.start()
    t_mat = topic_name(settings.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    t_commit = topic_name(settings.kafka.topic_prefix, TopicKey.CATALOG_COMMITS)
    try:
        commit = stock_commit(1)
        await producer.send_and_wait(
            t_commit, commit.model_dump_json(by_alias=True).encode(), key=b"inventory.stock"
        )
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < SCENARIO_S:
            now = datetime.now(UTC)
            assets = ["sales.orders"] + (["sales.payments"] if n < 3 else [])
            for asset in assets:
                ev = MaterializationEvent(
                    event_id=f"demo-{asset}-{n}",
                    asset=asset,
                    materialized_at=now,
                    run_id=f"run-{n}",
                    job="demo",
                    row_count=100 + n,
                )
                await producer.send_and_wait(t_mat, ev.model_dump_json().encode(), key=asset.encode())
            n += 1
            await asyncio.sleep(3)
    finally:
        await producer.stop()
