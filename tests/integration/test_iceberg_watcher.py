"""The Iceberg watcher over a real pyiceberg SQL catalog (SQLite + a local warehouse) and the real broker.

End to end: create a table, append, evolve the schema (add a column, widen int → long, drop a column) —
the watcher publishes the commits and the processor raises the matching drift violations. Restart: a new
watcher (after `floe run source iceberg` as a real process) republishes nothing and picks up the next snapshot.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import DoubleType, IntegerType, LongType, NestedField, StringType

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.iceberg_watcher import IcebergWatcher
from floe_stream.settings import IcebergSourceSettings, Settings, SourcesSettings
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics import CatalogCommitEvent, DriftKind, Severity, TopicKey, ViolationData
from tests.conftest import wait_for
from tests.integration.helpers import Running, floe_env, read_all, start_floe, stop_process, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: shop-orders
name: shop-orders
version: 1.0.0
status: active
team:
  name: shop
  members:
    - username: bob
      role: owner
schema:
  - name: orders
    physicalName: orders
    physicalType: table
    customProperties:
      - property: floe
        value:
          asset: shop.orders
    properties:
      - name: id
        logicalType: integer
        physicalType: long
        required: true
      - name: qty
        logicalType: integer
        physicalType: int
      - name: note
        logicalType: string
        physicalType: string
"""


def make_catalog(tmp: Path) -> tuple[SqlCatalog, dict[str, str]]:
    props = {"type": "sql", "uri": f"sqlite:///{tmp}/catalog.db", "warehouse": f"file://{tmp}/warehouse"}
    (tmp / "warehouse").mkdir(exist_ok=True)
    return SqlCatalog("lake", **{k: v for k, v in props.items() if k != "type"}), props


def create_orders(cat: SqlCatalog) -> Any:
    cat.create_namespace_if_not_exists("shop")
    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "qty", IntegerType()),
        NestedField(3, "note", StringType()),
    )
    return cat.create_table("shop.orders", schema=schema)


def append(table: Any, n: int = 2) -> None:
    table.refresh()
    cols = {f.name: f for f in table.schema().fields}
    data: dict[str, Any] = {"id": pa.array(range(n), pa.int64())}
    if "qty" in cols:
        data["qty"] = pa.array([1] * n, pa.int64() if str(cols["qty"].field_type) == "long" else pa.int32())
    if "note" in cols:
        data["note"] = ["x"] * n
    if "extra" in cols:
        data["extra"] = pa.array([0.5] * n, pa.float64())
    table.append(pa.table(data, schema=table.schema().as_arrow()))


def watch_settings(s: Settings, props: dict[str, str], contracts: Path, **over: Any) -> Settings:
    iceberg = IcebergSourceSettings(catalog_name="lake", properties=props, poll_interval_s=0.2, **over)
    return s.model_copy(update={"sources": SourcesSettings(iceberg=iceberg), "contracts_dir": contracts})


async def commits(s: Settings) -> list[CatalogCommitEvent]:
    return [
        CatalogCommitEvent.model_validate_json(r.value) for r in await read_all(s, TopicKey.CATALOG_COMMITS)
    ]


def drift(evs: list[Any]) -> set[tuple[DriftKind | None, str | None, Severity]]:
    return {
        (e.data.drift_kind, e.data.element, e.data.severity)
        for e in evs
        if isinstance(e.data, ViolationData) and e.data.violation_type.value == "schema_drift"
    }


async def test_snapshots_and_schema_evolution_raise_drift_end_to_end(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "shop.odcs.yaml").write_text(CONTRACT)
    cat, props = make_catalog(tmp_path)
    table = create_orders(cat)
    s = watch_settings(settings, props, tmp_path / "contracts")
    processor = processor_service(s, load_registry(s))
    watcher = IcebergWatcher(s, metrics=instruments())
    async with Running(processor, watcher):
        await wait_for(lambda: processor.ever_assigned and watcher.polls > 0, timeout=30)
        assert await commits(s) == []  # a table without a snapshot publishes nothing
        await asyncio.to_thread(append, table)
        first = await wait_for(lambda: _n_commits(s, 1), timeout=30)
        results = await wait_for(lambda: _n(s, TopicKey.CHECK_RESULTS, 1), timeout=30)
        assert '"status":"pass"' in results[0].value.decode().replace(
            " ", ""
        )  # the schema matches the contract
        assert await violations(s) == []

        def evolve() -> None:
            with table.update_schema() as u:
                u.add_column("extra", DoubleType())
                u.update_column("qty", LongType())
                u.delete_column("note")

        await asyncio.to_thread(evolve)  # a metadata-only commit: no new snapshot
        evs = await wait_for(lambda: _drift_at_least(s, 3), timeout=30)
        await asyncio.to_thread(append, table, 3)  # the next snapshot carries the evolved schema
        all_commits = await wait_for(lambda: _n_commits(s, 3), timeout=30)
    got = drift(evs)
    assert (DriftKind.COLUMN_ADDED, "extra", Severity.WARNING) in got
    assert (DriftKind.TYPE_CHANGED, "qty", Severity.INFO) in got  # int widened to long: safe (issue 15.4)
    assert (DriftKind.COLUMN_REMOVED, "note", Severity.ERROR) in got
    v = next(e for e in evs if isinstance(e.data, ViolationData) and e.data.element == "qty")
    assert (v.data.asset, v.data.expected_value, v.data.actual_value, v.data.owner) == (
        "shop.orders",
        "int",
        "long",
        "bob",
    )

    c1, schema_change, c2 = all_commits
    snap = first[0]
    assert (snap.table, snap.catalog, snap.operation, snap.sequence_number) == (
        "shop.orders",
        "lake",
        "append",
        1,
    )
    assert snap.event_id == f"shop.orders:{snap.snapshot_id}"
    assert snap.summary["added-records"] == "2"
    assert [f.name for f in snap.table_schema.fields] == ["id", "qty", "note"]
    assert schema_change.snapshot_id == snap.snapshot_id
    assert schema_change.summary["floe.trigger"] == "schema-change"
    assert [(f.name, f.type) for f in schema_change.table_schema.fields] == [
        ("id", "long"),
        ("qty", "long"),
        ("extra", "double"),
    ]
    assert c2.sequence_number == 2
    assert c2.summary["added-records"] == "3"
    assert c2.summary["total-records"] == "5"
    recs = await read_all(s, TopicKey.CATALOG_COMMITS)
    assert {r.key for r in recs} == {b"shop.orders"}
    assert len({r.partition for r in recs}) == 1
    assert c1 == snap


async def test_restart_publishes_nothing_twice_and_continues(settings: Settings, tmp_path: Path) -> None:
    cat, props = make_catalog(tmp_path)
    table = create_orders(cat)
    cat.create_table("shop.customers", schema=Schema(NestedField(1, "id", LongType(), required=True)))
    cat.create_namespace("hr")
    cat.create_table("hr.salaries", schema=Schema(NestedField(1, "id", LongType(), required=True)))
    for t in (table, cat.load_table("shop.customers"), cat.load_table("hr.salaries")):
        await asyncio.to_thread(append, t, 1)
    await asyncio.to_thread(
        append, table, 1
    )  # orders has 2 snapshots: only the newest is published at first sight
    (tmp_path / "contracts").mkdir()
    s = watch_settings(settings, props, tmp_path / "contracts", namespaces=["shop"], exclude=["*.customers"])

    # 1. the real deployable: `floe run source iceberg`, configured by environment variables only
    env = floe_env(s, FLOE_SOURCES__ICEBERG__CATALOG_NAME="lake", FLOE_SOURCES__ICEBERG__POLL_INTERVAL_S="0.2",
                   FLOE_SOURCES__ICEBERG__PROPERTIES=_json(props), FLOE_SOURCES__ICEBERG__NAMESPACES='["shop"]',
                   FLOE_SOURCES__ICEBERG__EXCLUDE='["*.customers"]')  # fmt: skip
    proc = await start_floe(["run", "source", "iceberg"], env, tmp_path / "watcher.log")
    try:
        first = await wait_for(lambda: _n_commits(s, 1), timeout=30)
    finally:
        assert await stop_process(proc) == 0, (tmp_path / "watcher.log").read_text()[-2000:]
    assert [c.table for c in first] == [
        "shop.orders"
    ]  # hr.* (namespace filter) and *.customers (exclude) skipped
    assert first[0].sequence_number == 2

    # 2. a new watcher restores its marks from the topic: the same snapshot is not published again
    watcher = IcebergWatcher(s, metrics=instruments())
    async with Running(watcher):
        await wait_for(lambda: watcher.polls >= 3, timeout=30)
        assert watcher.marks["shop.orders"].snapshot_id == first[0].snapshot_id
        assert len(await commits(s)) == 1
        await asyncio.to_thread(append, table, 1)
        after = await wait_for(lambda: _n_commits(s, 2), timeout=30)
        polls = watcher.polls
        await wait_for(lambda: watcher.polls >= polls + 3, timeout=30)
        assert watcher.last_stats.loaded == 0  # unchanged metadata pointer: nothing loaded
    assert len(await commits(s)) == 2
    assert after[1].sequence_number == 3
    assert after[1].event_id == f"shop.orders:{after[1].snapshot_id}"


def _json(obj: object) -> str:
    import json

    return json.dumps(obj)


async def _n_commits(s: Settings, n: int) -> list[CatalogCommitEvent] | None:
    got = await commits(s)
    return got if len(got) >= n else None


async def _n(s: Settings, key: TopicKey, n: int):  # type: ignore[no-untyped-def]
    recs = await read_all(s, key)
    return recs if len(recs) >= n else None


async def _drift_at_least(s: Settings, n: int):  # type: ignore[no-untyped-def]
    evs = await violations(s)
    return evs if len(drift(evs)) >= n else None
