"""Real Dagster (1.13, in-process: an ephemeral instance, ``materialize``) → floe_stream.integrations.dagster →
the broker → the processor → violations.

The code under test is the documented recipe itself (``examples/integrations/dagster/definitions.py``): its
assets report ``dagster/row_count``, ``dagster/column_schema``, ``dagster/table_name`` and
``dagster/last_updated_timestamp``; one uses the one-line hook, the sensor picks up every run that ended
(a failed run's materialized asset too). Evaluating a tick again, and the hook + the sensor on the same
materialization, send the same event ids: no result or violation is doubled. Its asset check is a quality
result: on the materialization it checked when they ran together, a quality report only (never new data) when
the check ran on its own.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from examples.integrations.dagster import definitions as recipe

from floe_stream.client import FloeClient
from floe_stream.integrations.dagster import configure
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.topics import CheckResult, DriftKind, MaterializationEvent, Severity, TopicKey, ViolationData
from floe_stream.topics.enums import CheckStatus, CheckType
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, read_all, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONTRACTS = REPO / "examples" / "integrations" / "dagster" / "contracts"


@dg.asset(key_prefix=["shop"], partitions_def=recipe.daily, deps=[recipe.orders])
def order_totals() -> None:
    raise RuntimeError("boom")  # the run fails after shop/orders was materialized


def tick(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[str | None, str]:
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    return data.cursor, data.skip_message or ""


async def materializations(s: Settings) -> list[MaterializationEvent]:
    """floe's own events on the materializations topic (a check-only report is an OpenLineage event)."""
    return [
        MaterializationEvent.model_validate_json(r.value)
        for r in await read_all(s, TopicKey.MATERIALIZATIONS)
        if b'"kind":"floe.materialization"' in (r.value or b"")
    ]


async def results(s: Settings) -> list[CheckResult]:
    return [CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)]


async def test_dagster_materializations_end_in_violations(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"contracts_dir": CONTRACTS})
    client = FloeClient(s.kafka.bootstrap_servers, s.kafka.topic_prefix)
    configure(client)  # what the recipe's hook and sensor use (else one from FLOE_KAFKA__*)
    sensor = recipe.defs.resolve_sensor_def("floe_materializations")
    instance = dg.DagsterInstance.ephemeral(tempdir=str(tmp_path))
    processor = processor_service(s, load_registry(s))
    try:
        async with Running(processor):
            await wait_for(lambda: processor.ever_assigned, timeout=30)
            cursor, msg = await asyncio.to_thread(tick, sensor, instance, None)
            assert "started" in msg  # the first tick only sets the cursor

            def run_all() -> tuple[Any, Any]:
                daily = dg.materialize(
                    [recipe.orders, recipe.orders_have_an_amount, order_totals], instance=instance,
                    partition_key="2026-12-03", raise_on_error=False,
                )  # fmt: skip
                crm = dg.materialize([recipe.customers], instance=instance)
                return daily, crm

            daily, crm = await asyncio.to_thread(run_all)
            assert not daily.success and crm.success  # order_totals fails after orders materialized
            after, msg = await asyncio.to_thread(tick, sensor, instance, cursor)
            assert msg.startswith("floe: 2 materialization(s) of 2 run(s)"), msg
            again, msg = await asyncio.to_thread(tick, sensor, instance, cursor)  # a tick evaluated again
            assert again == after

            def check_only() -> Any:  # the check alone, on the materialization of the run above
                return dg.materialize(
                    [recipe.orders, recipe.orders_have_an_amount], instance=instance,
                    selection=dg.AssetSelection.checks(recipe.orders_have_an_amount),
                )  # fmt: skip

            checked = await asyncio.to_thread(check_only)
            later, msg = await asyncio.to_thread(tick, sensor, instance, after)
            assert msg == "floe: 0 materialization(s) of 1 run(s) published, 1 check-only quality report(s)"
            await asyncio.to_thread(tick, sensor, instance, after)  # evaluated again: the same report
            _, msg = await asyncio.to_thread(tick, sensor, instance, later)
            assert msg.startswith("floe: 0 materialization(s) of 0 run(s)"), msg

            evs = await wait_for(lambda: _drift(s, 2), timeout=30)
            got = await wait_for(lambda: _n_results(s, CheckType.SCHEMA_DRIFT, 5), timeout=30)
            fresh = await wait_for(lambda: _violations(s, CheckType.FRESHNESS), timeout=30)
            report_id = f"ol:{checked.run_id}:in:dagster/shop.orders"
            quality = await wait_for(lambda: _quality_of(s, {orders_id(daily), report_id}), timeout=30)
            bad = await wait_for(lambda: _violations(s, CheckType.QUALITY), timeout=30)
    finally:
        configure(None)
        await asyncio.to_thread(client.close)

    sent = await materializations(s)
    ids = Counter(e.event_id for e in sent)
    customers_id = f"dagster:{crm.run_id}:crm/customers_asset:"
    # the hook sent customers once, the sensor twice more (two evaluations) and orders twice: same ids
    assert ids == {orders_id(daily): 2, customers_id: 3}
    orders = next(e for e in sent if e.event_id == orders_id(daily))
    assert (orders.asset, orders.row_count, orders.run_id, orders.producer) == (
        "shop.orders",
        3,
        daily.run_id,
        "dagster",
    )
    assert orders.labels == {"partition": "2026-12-03", "dagster_asset_key": "shop/orders"}
    assert orders.data_timestamp == datetime(2026, 12, 3, 23, 0, tzinfo=UTC)
    assert [(c.name, c.type, c.nullable) for c in orders.columns or []] == [
        ("id", "bigint", False), ("amount", "double", True), ("coupon", "varchar", True),
    ]  # fmt: skip
    customers = next(e for e in sent if e.event_id == customers_id)
    assert customers.asset == "crm.customers"  # dagster/table_name, not the asset key

    result_ids: dict[tuple[str | None, CheckType], set[str]] = {}
    for r in got:
        result_ids.setdefault((r.source_event_id, r.check_type), set()).add(r.result_id)
    assert all(len(v) == 1 for v in result_ids.values())  # a repeated input gives the same result ids
    assert {(r.asset, r.check_type) for r in got} >= {
        ("shop.orders", CheckType.SCHEMA_DRIFT),
        ("crm.customers", CheckType.SCHEMA_DRIFT),
        ("shop.orders", CheckType.FRESHNESS),
    }
    opened = Counter((v.asset, v.drift_kind, v.element, v.severity) for v in evs)
    assert opened == {
        ("shop.orders", DriftKind.COLUMN_REMOVED, "updated_at", Severity.ERROR): 1,
        ("shop.orders", DriftKind.COLUMN_ADDED, "coupon", Severity.WARNING): 1,
    }  # each once, though the inputs came two and three times; crm.customers matches its contract
    assert {(v.asset, v.severity) for v in fresh} == {("shop.orders", Severity.ERROR)}  # data of 2026-12-03

    # the asset check: on the materialization it ran with, and as a report of its own run (the check alone)
    assert [(q.name, q.column, q.metric, q.passed, q.observed_value) for q in orders.quality or []] == [
        ("orders_have_an_amount", "amount", "nullValues", False, 1.0)
    ]
    assert {r.source_event_id: r.status for r in quality} == {
        orders_id(daily): CheckStatus.FAIL,  # re-judged by the contract's nullValues rule on amount
        report_id: CheckStatus.FAIL,
    }
    # the check-only run is no new data: nothing but its quality was evaluated from it
    from_report = {r.check_type for r in await results(s) if r.source_event_id == report_id}
    assert from_report == {CheckType.QUALITY}
    assert {(v.asset, v.correlation_key) for v in bad} == {
        ("shop.orders", "shop.orders/quality"),  # the score: 0 of 1 expectations passed
        ("shop.orders", "shop.orders/quality/amount.nullValues"),  # the rule the check failed
    }


def orders_id(run: Any) -> str:
    return f"dagster:{run.run_id}:shop/orders:2026-12-03"


async def _quality_of(s: Settings, sources: set[str]) -> list[CheckResult] | None:
    got = [r for r in await results(s) if r.check_type == CheckType.QUALITY and r.source_event_id in sources]
    return got if {r.source_event_id for r in got} == sources else None


async def _drift(s: Settings, n: int) -> list[ViolationData] | None:
    evs = [
        e.data
        for e in await violations(s)
        if isinstance(e.data, ViolationData) and e.data.violation_type == CheckType.SCHEMA_DRIFT
    ]
    return evs if len(evs) >= n else None


async def _n_results(s: Settings, kind: CheckType, n: int) -> list[CheckResult] | None:
    got = await results(s)
    return got if len([r for r in got if r.check_type == kind]) >= n else None


async def _violations(s: Settings, kind: CheckType) -> list[ViolationData] | None:
    evs = [
        e.data
        for e in await violations(s)
        if isinstance(e.data, ViolationData) and e.data.violation_type == kind
    ]
    return evs or None
