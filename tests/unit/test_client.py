"""The publisher kit without a broker: event building and validation, retries, dbt run_results → quality."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from floe_stream.client import FloeClient, PublishError, commit_event, materialization_event
from floe_stream.sources.dbt import models_built, quality_by_model
from tests.conftest import REPO

DBT = REPO / "tests" / "fixtures" / "dbt"
SCHEMA = {
    "type": "struct",
    "schema-id": 0,
    "fields": [{"id": 1, "name": "id", "required": True, "type": "long"}],
}


def test_materialization_event_defaults_and_stable_ids() -> None:
    before = datetime.now(UTC)
    ev = materialization_event(
        "sales.orders", row_count=10, run_id="run-7", quality=[{"name": "nn", "passed": True}]
    )
    assert ev.asset == "sales.orders"
    assert ev.row_count == 10
    assert ev.materialized_at >= before
    assert ev.event_id == "sales.orders:run-7"  # a re-sent hook is the same event
    assert ev.quality is not None
    assert ev.quality[0].name == "nn"
    other = materialization_event("sales.orders")
    assert other.event_id
    assert other.event_id != materialization_event("sales.orders").event_id
    at = materialization_event("a", materialized_at="2026-01-02T03:04:05Z", data_timestamp="now")
    assert at.materialized_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert at.data_timestamp is not None
    assert at.data_timestamp > before - timedelta(seconds=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"materialized_at": datetime(2026, 1, 1)},  # naive: ambiguous
        {"row_count": -1},
        {"quality": [{"passed": True}]},  # a quality result needs a name
        {"labels": {"a": 1}},
        {"columns": [{"name": "id"}]},  # a column needs a type
    ],
)
def test_bad_arguments_are_rejected_before_sending(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError or our own message
        materialization_event("sales.orders", **kwargs)  # type: ignore[arg-type]


def test_commit_event_from_fields_mapping_or_model() -> None:
    ev = commit_event(
        table="shop.orders", snapshot_id=42, sequence_number=3, schema=SCHEMA, summary={"added-records": "5"}
    )
    assert (ev.event_id, ev.operation, ev.table_schema.fields[0].type) == ("shop.orders:42", "append", "long")
    same = commit_event(json.loads(ev.model_dump_json(by_alias=True)))
    assert same == ev
    assert commit_event(ev) is ev
    with pytest.raises(ValueError, match="needs an event"):
        commit_event(table="shop.orders")
    with pytest.raises(ValueError):  # noqa: PT011
        commit_event({**json.loads(ev.model_dump_json(by_alias=True)), "operation": "truncate"})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sync_publish_retries_then_raises_a_clear_error() -> None:
    client = FloeClient(f"127.0.0.1:{_closed_port()}", retries=2, backoff_s=0.05, timeout_s=3)
    t0 = time.monotonic()
    try:
        with pytest.raises(PublishError, match=r"after 3 attempt\(s\)"):
            client.publish_materialization("sales.orders", row_count=1)
    finally:
        client.close()
    assert time.monotonic() - t0 < 30


async def test_async_publish_retries_then_raises_and_validation_is_not_retried() -> None:
    async with FloeClient(f"127.0.0.1:{_closed_port()}", retries=1, backoff_s=0.05, timeout_s=3) as client:
        with pytest.raises(PublishError, match=r"after 2 attempt\(s\)"):
            await client.apublish_commit(table="t.x", snapshot_id=1, schema=SCHEMA)
        sends: list[str] = []

        async def send(topic: str, key: str | None, value: bytes) -> None:
            sends.append(topic)

        client._send = send  # type: ignore[method-assign]
        with pytest.raises(ValueError):  # noqa: PT011
            await client.apublish_materialization("sales.orders", row_count=-5)
        assert sends == []  # refused before delivery: no broker round trip, no retry


def test_dbt_run_results_become_quality_results_per_model() -> None:
    run_results = json.loads((DBT / "run_results.json").read_text())
    manifest = json.loads((DBT / "manifest.json").read_text())
    by_model = quality_by_model(run_results, manifest)
    assert set(by_model) == {"sales.orders"}  # customers errored: its test was skipped, so nothing to report
    q = {r.name: r for r in by_model["sales.orders"]}
    assert set(q) == {
        "not_null_orders_order_id",
        "accepted_values_orders_status__placed__shipped__returned",
        "unique_orders_order_ref",
        "relationships_orders_customer_id__id__ref_customers_",  # attached to orders, not customers
    }
    nn = q["not_null_orders_order_id"]
    assert (nn.passed, nn.column, nn.metric, nn.observed_value, nn.severity) == (
        True,
        "order_id",
        "nullValues",
        0,
        "error",
    )
    av = q["accepted_values_orders_status__placed__shipped__returned"]
    assert (av.passed, av.column, av.metric, av.observed_value) == (False, "status", "invalidValues", 7)
    uq = q["unique_orders_order_ref"]
    assert (uq.passed, uq.severity, uq.metric) == (False, "warning", "duplicateValues")
    assert models_built(run_results, manifest) == {
        "sales.orders": {
            "unique_id": "model.shop.orders",
            "rows_affected": 1200,
            "completed_at": "2026-11-23T06:12:39.402310Z",
        }
    }
    # without a manifest the tests are attached by name (the model name is the key)
    plain = quality_by_model(run_results)
    assert set(plain) == {"orders"}
    assert len(plain["orders"]) == 4
    assert all(r.column is None for r in plain["orders"])
