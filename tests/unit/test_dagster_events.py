"""floe_stream.integrations.dagster: Dagster metadata → a floe materialization (pure; the end to end run with
real Dagster is tests/integration/test_dagster.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from floe_stream.integrations.dagster import asset_name, event_from_materialization, event_id

KEY = dg.AssetKey(["shop", "orders"])
SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("id", "bigint", constraints=dg.TableColumnConstraints(nullable=False, unique=True)),
        dg.TableColumn("note", "varchar"),
    ]
)


def test_raw_and_wrapped_metadata_give_the_same_event() -> None:
    raw = {"dagster/row_count": 7, "dagster/column_schema": SCHEMA, "dagster/last_updated_timestamp": 1.5e9}
    wrapped = {
        "dagster/row_count": dg.MetadataValue.int(7),
        "dagster/column_schema": dg.MetadataValue.table_schema(SCHEMA),
        "dagster/last_updated_timestamp": dg.MetadataValue.timestamp(1.5e9),
    }
    a, b = (
        event_from_materialization(KEY, m, run_id="r1", partition="2026-12-03", materialized_at=1.6e9)
        for m in (raw, wrapped)
    )
    assert a == b
    assert (a.asset, a.row_count, a.event_id) == ("shop.orders", 7, "dagster:r1:shop/orders:2026-12-03")
    assert a.data_timestamp == datetime.fromtimestamp(1.5e9, tz=UTC)
    assert a.materialized_at == datetime.fromtimestamp(1.6e9, tz=UTC)
    assert [(c.name, c.type, c.nullable, c.unique) for c in a.columns or []] == [
        ("id", "bigint", False, True),
        ("note", "varchar", True, None),
    ]


def test_identity_and_ids() -> None:
    assert asset_name(KEY, {"dagster/table_name": "warehouse.sales.orders"}) == "warehouse.sales.orders"
    assert asset_name(KEY, {}) == "shop.orders"
    assert event_id("r1", KEY, None) == "dagster:r1:shop/orders:"
    ev = event_from_materialization(KEY, {}, run_id="r1")  # nothing reported: no columns, no count
    assert (ev.columns, ev.row_count, ev.data_timestamp, ev.labels) == (
        None,
        None,
        None,
        {"dagster_asset_key": "shop/orders"},
    )
