"""floe_stream.integrations.dagster: Dagster metadata → a floe materialization (pure; the end to end run with
real Dagster is tests/integration/test_dagster.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from floe_stream.integrations.dagster import (
    assertion_of_check,
    asset_name,
    event_from_materialization,
    event_id,
    publish_result,
    quality_report_event,
)
from floe_stream.processors.normalize import updates_of_openlineage
from floe_stream.topics.decode import decode_materialization
from floe_stream.topics.materialization import OpenLineageRunEvent

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


def test_asset_checks_are_quality_results_as_openlineage_assertions_are() -> None:
    """A check evaluation (name, verdict, severity, metadata) → the QualityResult the OpenLineage
    dataQualityAssertions path makes (processors/normalize.py ol_assertion)."""
    failed = assertion_of_check(
        "orders_have_an_amount",
        False,
        {
            "column": dg.MetadataValue.text("amount"),
            "metric": "not_null",
            "failures": dg.MetadataValue.int(2),
        },
        dg.AssetCheckSeverity.WARN,
    )
    fine = assertion_of_check("row_count_positive", True, {"observed_value": 3, "expected": "> 0"})
    ev = event_from_materialization(KEY, {}, run_id="r1", checks=[failed, fine])
    assert [(q.name, q.column, q.metric, q.passed, q.observed_value, q.expected, q.severity)
            for q in ev.quality or []] == [
        ("orders_have_an_amount", "amount", "nullValues", False, 2.0, None, "warning"),
        ("row_count_positive", None, None, True, None, "> 0", None),
    ]  # fmt: skip
    assert event_from_materialization(KEY, {}, run_id="r1").quality is None  # no check: no quality list
    # a check named what floe cannot take (a control character) is left out, not the event
    bad = assertion_of_check("bad\x1bname", False)
    assert event_from_materialization(KEY, {}, run_id="r1", checks=[bad, fine]).quality == ev.quality[1:]  # type: ignore[index]


def test_a_check_only_report_is_a_quality_report_never_new_data() -> None:
    """A check run on its own is an OpenLineage run event with the asset as its tested input: floe reads it as
    a quality report on that asset (quality_only), not as a materialization."""
    a = assertion_of_check(
        "orders_have_an_amount", False, {"column": "amount", "metric": "nullValues", "failures": 1}
    )
    report = quality_report_event("shop.orders", [a], run_id="8d3f0c0e-3c3b-4f52-9d2b-2c4f1b1c9a10",
                                  job="check_job", at=1.7e9)  # fmt: skip
    ev = decode_materialization(json.dumps(report).encode())
    assert isinstance(ev, OpenLineageRunEvent)
    ((ref, update),) = updates_of_openlineage(ev)
    assert ref[:2] == ("dagster", "shop.orders")
    assert update.quality_only and update.run_failed is None
    assert [(q.name, q.column, q.metric, q.passed, q.observed_value) for q in update.quality or []] == [
        ("orders_have_an_amount", "amount", "nullValues", False, 1.0)
    ]


class Recording:
    """Stands in for a FloeClient: what the hook publishes."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish_materialization(self, asset: str, **fields: Any) -> None:
        self.sent.append({"asset": asset, **fields})


def test_the_hook_publishes_the_check_results_an_asset_reports(tmp_path: Path) -> None:
    client = Recording()

    @dg.asset(
        key_prefix=["shop"], check_specs=[dg.AssetCheckSpec("amount_present", asset=["shop", "orders"])]
    )
    def orders(context) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]  # (dagster reads no string annotation)
        return publish_result(
            context,
            dg.MaterializeResult(
                metadata={"dagster/row_count": 3},
                check_results=[
                    dg.AssetCheckResult(passed=False, metadata={"column": "amount", "failures": 1})
                ],
            ),
            client=client,  # type: ignore[arg-type]
        )

    instance = dg.DagsterInstance.ephemeral(tempdir=str(tmp_path))
    assert dg.materialize([orders], instance=instance).success
    (sent,) = client.sent
    assert [(q.name, q.column, q.passed, q.observed_value, q.severity) for q in sent["quality"]] == [
        ("amount_present", "amount", False, 1.0, "error")  # the one check spec names the unnamed result
    ]
