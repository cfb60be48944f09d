"""Which snapshots the watcher publishes, over real pyiceberg table metadata (SQLite SQL catalog, no broker).

Duplicates, out-of-order (stale) metadata, first sight, backfill, bursts, schema-only changes, format v1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

from floe_stream.cli.main import main
from floe_stream.settings import IcebergSourceSettings
from floe_stream.sources.iceberg.catalog import is_watched, list_tables
from floe_stream.sources.iceberg.snapshots import new_events

SCHEMA = Schema(NestedField(1, "id", LongType(), required=True))


@pytest.fixture
def cat(tmp_path: Path) -> SqlCatalog:
    (tmp_path / "wh").mkdir()
    c = SqlCatalog("lake", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    c.create_namespace("shop")
    return c


def history(table: Any, n: int) -> list[tuple[Any, str]]:
    """(metadata, location) after each of n appends."""
    out = []
    for i in range(n):
        table.append(pa.table({"id": pa.array([i], pa.int64())}, schema=table.schema().as_arrow()))
        out.append((table.metadata, table.metadata_location))
    return out


def test_first_sight_backfill_bursts_duplicates_and_stale_metadata(cat: SqlCatalog) -> None:
    t = cat.create_table("shop.orders", schema=SCHEMA)
    (m1, l1), (m2, l2), (m3, l3) = history(t, 3)
    evs, mark = new_events("shop.orders", m3, l3, None, catalog="lake")
    assert [e.sequence_number for e in evs] == [3]  # first sight: the newest snapshot only
    assert mark.metadata_location == l3
    assert mark.sequence_number == 3
    evs, _ = new_events("shop.orders", m3, l3, None, backfill=True)
    assert [e.sequence_number for e in evs] == [1, 2, 3]  # oldest first
    evs, _ = new_events("shop.orders", m3, l3, None, backfill=True, max_snapshots=2)
    assert [e.sequence_number for e in evs] == [2, 3]

    _, after1 = new_events("shop.orders", m1, l1, None)
    evs, after3 = new_events("shop.orders", m3, l3, after1)
    assert [(e.sequence_number, e.event_id) for e in evs] == [
        (2, f"shop.orders:{m2.current_snapshot_id}"),
        (3, f"shop.orders:{m3.current_snapshot_id}"),
    ]
    assert [e.table_schema.fields[0].name for e in evs] == ["id", "id"]

    assert new_events("shop.orders", m3, l3, after3)[0] == []  # duplicate poll
    stale, kept = new_events("shop.orders", m2, l2, after3)  # a lagging replica returns older metadata
    assert stale == []
    assert kept.order == after3.order
    assert kept.metadata_location == l2


def test_a_dropped_and_recreated_table_starts_over(cat: SqlCatalog) -> None:
    t = cat.create_table("shop.orders", schema=SCHEMA)
    (_, _), (m2, l2) = history(t, 2)
    _, mark = new_events("shop.orders", m2, l2, None)
    cat.drop_table("shop.orders")
    t = cat.create_table("shop.orders", schema=SCHEMA)
    ((m1, l1),) = history(t, 1)
    evs, again = new_events("shop.orders", m1, l1, mark)
    assert [(e.sequence_number, e.snapshot_id) for e in evs] == [(1, m1.current_snapshot_id)]
    assert again.table_uuid == str(m1.table_uuid) != mark.table_uuid


def test_schema_only_change_and_empty_tables(cat: SqlCatalog) -> None:
    t = cat.create_table("shop.orders", schema=SCHEMA)
    empty, mark0 = new_events("shop.orders", t.metadata, t.metadata_location, None)
    assert empty == []
    assert mark0.snapshot_id is None
    ((m1, l1),) = history(t, 1)
    evs, mark1 = new_events("shop.orders", m1, l1, mark0)
    assert len(evs) == 1
    with t.update_schema() as u:
        u.add_column("note", StringType())
    evs, mark2 = new_events("shop.orders", t.metadata, t.metadata_location, mark1)
    (ev,) = evs
    assert ev.snapshot_id == m1.current_snapshot_id
    assert ev.timestamp_ms == m1.current_snapshot().timestamp_ms  # an ALTER does not make the data fresher
    assert ev.event_id == f"shop.orders:{ev.snapshot_id}:schema-1"
    assert ev.summary["floe.trigger"] == "schema-change"
    assert [f.name for f in ev.table_schema.fields] == ["id", "note"]
    assert mark2.order == mark1.order  # same snapshot position, new schema id
    assert mark2.schema_id == 1
    assert new_events("shop.orders", t.metadata, t.metadata_location, mark2)[0] == []
    assert new_events("shop.orders", t.metadata, t.metadata_location, mark1, schema_changes=False)[0] == []


def test_format_v1_tables_have_no_sequence_numbers_yet_are_ordered(cat: SqlCatalog) -> None:
    t = cat.create_table("shop.legacy", schema=SCHEMA, properties={"format-version": "1"})
    (m1, l1), (m2, l2) = history(t, 2)
    _, mark = new_events("shop.legacy", m1, l1, None)
    evs, mark2 = new_events("shop.legacy", m2, l2, mark)
    assert [e.sequence_number for e in evs] == [0]
    assert evs[0].snapshot_id == m2.current_snapshot_id
    assert new_events("shop.legacy", m1, l1, mark2)[0] == []


def test_filters_and_one_query_listing(cat: SqlCatalog) -> None:
    cat.create_namespace("hr")
    for name in ("shop.orders", "shop.orders_tmp", "hr.salaries"):
        cat.create_table(name, schema=SCHEMA)
    cfg = IcebergSourceSettings(namespaces=["shop"], exclude=["*_tmp"])
    listing = list_tables(cat, cfg)
    assert list(listing) == ["shop.orders"]
    assert listing["shop.orders"] == cat.load_table("shop.orders").metadata_location
    assert is_watched("shop.eu.orders", IcebergSourceSettings(namespaces=["shop"]))  # nested namespaces
    assert not is_watched("shopping.orders", IcebergSourceSettings(namespaces=["shop"]))
    assert is_watched("a.b", IcebergSourceSettings(tables=["A.*"]))  # case-insensitive globs


CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: {id}
name: {id}
version: 1.0.0
status: active
schema:
  - name: {table}
    physicalType: table
    customProperties:
      - property: floe
        value:
          asset: {asset}
    properties:
      - name: id
        logicalType: integer
"""


def test_contracts_coverage_command(cat: SqlCatalog, tmp_path: Path) -> None:
    cat.create_namespace("crm")
    for name in ("shop.orders", "shop.payments", "crm.customers"):
        cat.create_table(name, schema=SCHEMA)
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    for cid, table, asset in (
        ("orders", "orders", "shop.orders"),
        ("returns", "returns", "shop.returns"),
        ("customers", "customers", "sales.customers"),
    ):
        (contracts / f"{cid}.odcs.yaml").write_text(CONTRACT.format(id=cid, table=table, asset=asset))
    env = {
        "FLOE_SOURCES__ICEBERG__CATALOG_NAME": "lake",
        "FLOE_SOURCES__ICEBERG__PROPERTIES": f'{{"type": "sql", "uri": "sqlite:///{tmp_path}/c.db"}}',
        "FLOE_CONTRACTS_DIR": str(contracts),
    }
    runner = CliRunner()
    res = runner.invoke(main, ["contracts", "coverage"], env=env)
    assert res.exit_code == 0, res.output
    assert "3 table(s), 1 covered (33%)" in res.output
    assert "covered    shop.orders  ->  shop.orders (orders)" in res.output
    assert "uncovered  shop.payments" in res.output
    assert "missing    shop.returns (returns)" in res.output
    assert "[catalog has crm.customers: set floe.asset or an alias to it]" in res.output
    res = runner.invoke(main, ["contracts", "coverage", "--format", "json", "--fail-on-missing"], env=env)
    assert res.exit_code == 1
    report = json.loads(res.output)
    assert [m["asset"] for m in report["missing"]] == ["sales.customers", "shop.returns"]
    bad = runner.invoke(
        main, ["contracts", "coverage"], env={**env, "FLOE_SOURCES__ICEBERG__PROPERTIES": '{"type": "nope"}'}
    )
    assert bad.exit_code == 1
    assert "cannot open Iceberg catalog 'lake'" in bad.output
