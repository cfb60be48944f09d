"""Over the broker: contracts that name their tables only by ODCS ``servers`` + ``physicalName`` receive
OpenLineage run events by exact (namespace, name); a name alone that two contracts share is refused, counted
(``floe_events_ambiguous_total``) and listed by ``floe contracts coverage --seen``; a FAIL event delivers its
assertions as quality results; an untyped schema facet (a declared schema) raises no drift.

The events are shaped like those of dbt-ol 1.54 on dbt-duckdb and of the Airflow postgres provider (their
dataset identifiers per their source); the real tools' runs are the emitters' tests."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.telemetry.metrics import setup_metrics
from floe_stream.topics import CheckResult, CheckStatus, CheckType, TopicKey, ViolationData
from floe_stream.topics.catalog import topic_name
from tests.conftest import wait_for
from tests.integration.helpers import Running, floe_env, publish, read_all, violations
from tests.integration.test_observability import scrape, total

pytestmark = [pytest.mark.kafka]

FLOE = str(Path(sys.executable).parent / "floe")
DUCKDB = {"server": "dev", "type": "duckdb", "database": "/srv/dbt/warehouse.duckdb", "schema": "sales"}
PG = {
    "server": "prod",
    "type": "postgres",
    "host": "pg",
    "port": 5432,
    "database": "postgres",
    "schema": "sales",
}


def contract(cid: str, server: dict[str, Any], table: str, columns: list[str], **extra: Any) -> str:
    props = [{"name": c, "logicalType": "string"} for c in columns]
    return yaml.safe_dump({
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": cid, "name": cid, "version": "1.0.0",
        "status": "active", "servers": [server],
        "schema": [{"name": table, "physicalName": table, "properties": props, **extra}],
    }, sort_keys=False)  # fmt: skip


def event(
    kind: str, run: str, job: str, outputs: list[dict[str, Any]] = (), inputs: list[dict[str, Any]] = ()
) -> bytes:  # type: ignore[assignment]
    return json.dumps({
        "eventType": kind, "eventTime": datetime.now(UTC).isoformat(), "producer": "https://example.test/dbt-ol",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run}, "job": {"namespace": "dbt", "name": job},
        "inputs": list(inputs), "outputs": list(outputs),
    }).encode()  # fmt: skip


async def test_servers_identities_ambiguity_fail_events_and_declared_schemas(
    settings: Settings, tmp_path: Path
) -> None:
    setup_metrics("floe-test")
    folder = tmp_path / "contracts"
    folder.mkdir()
    quality = [{"metric": "nullValues", "mustBe": 0, "name": "order_id_not_null"}]
    (folder / "shop.yaml").write_text(
        contract("shop", DUCKDB, "orders", ["order_id", "status"]).replace(
            "  - name: order_id\n    logicalType: string\n",
            "  - name: order_id\n    logicalType: string\n    quality:\n"
            + "".join(f"    - {json.dumps(q)}\n" for q in quality),
        )
    )
    (folder / "sales.yaml").write_text(contract("sales", PG, "customers", ["id"]))
    (folder / "marketing.yaml").write_text(
        contract("marketing", {**PG, "schema": "marketing"}, "customers", ["id"])
    )
    s = settings.model_copy(update={"contracts_dir": folder, "health_port": 0, "health_host": "127.0.0.1"})
    registry = load_registry(s)
    assert sorted(a.asset_id for a in registry.assets()) == [
        "postgres.marketing.customers", "postgres.sales.customers", "warehouse.sales.orders",
    ]  # fmt: skip
    processor = processor_service(s, registry)
    duck_orders = {"namespace": "duckdb://warehouse.duckdb", "name": "warehouse.sales.orders"}
    failed_tests = {"_producer": "p", "_schemaURL": "s", "assertions": [
        {"assertion": "not_null", "name": "not_null_orders_order_id", "column": "order_id", "success": False,
         "severity": "error", "actual": "3", "expected": "0"},
    ]}  # fmt: skip
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned and processor.health is not None, timeout=30)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            # dbt-ol, the model's run, no fresh catalog.json: documented columns without types
            (None, event("START", "r1", "warehouse.sales.shop.orders.build.run", [duck_orders])),
            (None, event("COMPLETE", "r1", "warehouse.sales.shop.orders.build.run", [
                {**duck_orders, "facets": {"schema": {"fields": [{"name": "order_id", "description": "id"}]}}}])),
            # dbt-ol, the model's tests: an error-severity failure ends the test job with FAIL
            (None, event("FAIL", "r2", "warehouse.sales.shop.orders.build.test", inputs=[
                {**duck_orders, "facets": {"dataQualityAssertions": failed_tests},
                 "inputFacets": {"dataQualityAssertions": failed_tests}}])),
            # the Airflow postgres provider writing marketing's table
            (None, event("COMPLETE", "r3", "etl.load_customers", [{
                "namespace": "postgres://pg:5432", "name": "postgres.marketing.customers",
                "facets": {"schema": {"fields": [{"name": "id", "type": "text"}]}}}])),
            # a table name alone, from a host no contract names: both contracts have a 'customers'
            (None, event("COMPLETE", "r4", "adhoc", [{"namespace": "postgres://elsewhere:5432", "name": "customers"}])),
            # a table no contract names: coverage --seen says which contract table it most likely is
            (None, event("COMPLETE", "r5", "warehouse.marts.shop.orders.build.run",
                         [{"namespace": "duckdb://warehouse.duckdb", "name": "warehouse.marts.orders"}])),
        ])  # fmt: skip
        port = processor.health.port  # type: ignore[union-attr]

        async def refused() -> float:
            metrics = await scrape(port)
            t = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
            return total(metrics, "floe_events_ambiguous_total", topic=t)

        async def results() -> list[CheckResult] | None:
            got = [
                CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)
            ]
            kinds = {
                (r.asset, r.check_type)
                for r in got
                if r.status != CheckStatus.SKIPPED or r.check_type == CheckType.SCHEMA_DRIFT
            }
            want = {("warehouse.sales.orders", CheckType.QUALITY), ("warehouse.sales.orders", CheckType.SCHEMA_DRIFT),
                    ("postgres.marketing.customers", CheckType.SCHEMA_DRIFT)}  # fmt: skip
            return got if want <= kinds else None

        got = await wait_for(results, timeout=30)
        assert await wait_for(lambda: _at_least(refused, 1), timeout=20)
        # marketing's table name from a host its servers do not name (another environment): taken by the name
        # alone, as a name only one asset has is; coverage --seen shows it
        await publish(s, TopicKey.MATERIALIZATIONS, [(None, event("COMPLETE", "r6", "etl.load_customers", [
            {"namespace": "postgres://pg-dev:5432", "name": "postgres.marketing.customers"}]))])  # fmt: skip

    by = {(r.asset, r.check_type): r for r in got}
    # resolved by exact (namespace, name) from servers + physicalName: no alias anywhere
    assert by[("postgres.marketing.customers", CheckType.SCHEMA_DRIFT)].status == CheckStatus.PASS
    # the declared schema is said to be skipped, not judged (no column_removed for 'status')
    drift = by[("warehouse.sales.orders", CheckType.SCHEMA_DRIFT)]
    assert drift.status == CheckStatus.SKIPPED and "declared schema" in (drift.message or "")
    # the FAIL event's assertion is the contract's null-values rule, failed
    quality = [r for r in got if (r.asset, r.check_type) == ("warehouse.sales.orders", CheckType.QUALITY)]
    assert [r.status for r in quality if r.status != CheckStatus.SKIPPED] == [CheckStatus.FAIL]
    found = [v.data for v in await violations(s) if isinstance(v.data, ViolationData)]
    assert {v.correlation_key for v in found} == {"warehouse.sales.orders/quality/order_id_not_null",
                                                    "warehouse.sales.orders/quality"}  # fmt: skip
    # the ambiguous dataset reached neither contract
    assert not any(r.asset.endswith(".customers") and r.asset != "postgres.marketing.customers" for r in got)

    env = {**os.environ, **floe_env(s), "FLOE_CONTRACTS_DIR": str(folder)}
    proc = await asyncio.create_subprocess_exec(
        FLOE, "contracts", "coverage", "--seen", "1h", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "ambiguous  postgres://elsewhere:5432/customers" in text
    assert "uncovered  duckdb://warehouse.duckdb/warehouse.marts.orders" in text
    assert (
        "likely warehouse.sales.orders (shop): its servers give duckdb:///srv/dbt/warehouse.duckdb + "
        "warehouse.sales.orders; add the server {type: duckdb, database: warehouse.duckdb, schema: marts}"
        in text
    )
    assert "postgres.marketing.customers, postgres.sales.customers" in text
    assert "1 dataset(s) taken by their name alone" in text
    assert "  by name  postgres://pg-dev:5432/postgres.marketing.customers  1 event(s)" in text
    assert (
        "went to postgres.marketing.customers (marketing), whose servers give postgres://pg:5432 + "
        "postgres.marketing.customers: if it is that table, add its server" in text
    )
    # the datasets that matched their servers exactly are not listed
    assert "postgres://pg:5432/" not in text and "duckdb://warehouse.duckdb/warehouse.sales" not in text


async def _at_least(fn, n: float) -> bool:  # type: ignore[no-untyped-def]
    return await fn() >= n


@pytest.mark.postgres
async def test_the_report_shows_that_the_last_run_failed(pg_dsn: str) -> None:
    """The violation context says the producing run failed; `floe sla report` shows it beside the pair in
    trouble (text) and per asset (JSON)."""
    import asyncpg

    from floe_stream.contracts.loader import load_contract_text
    from floe_stream.processors.context import ImpactContext
    from floe_stream.processors.engine import Engine
    from floe_stream.processors.normalize import from_openlineage
    from floe_stream.reporting import store
    from floe_stream.reporting.compliance import build_report
    from floe_stream.reporting.render import table_text
    from floe_stream.topics import OpenLineageRunEvent
    from floe_stream.topics.violation import decode_violation, encode_violation

    c = load_contract_text(contract("shop", DUCKDB, "orders", ["order_id", "status"]), "shop.yaml")
    (asset,) = c.assets
    now = datetime.now(UTC)
    out_of = [{**{"namespace": "duckdb://warehouse.duckdb", "name": "warehouse.sales.orders"},
               "facets": {"schema": {"fields": [{"name": "order_id", "type": "VARCHAR"}]}}}]  # fmt: skip
    failed = json.loads(event("FAIL", "r9", "warehouse.sales.shop.orders.build.run", out_of))
    failed["run"]["facets"] = {"errorMessage": {"message": "Binder Error", "programmingLanguage": "sql"}}
    [(_, failure)] = from_openlineage(OpenLineageRunEvent.model_validate(failed))
    ctx = ImpactContext()
    ctx.note_run_failed(asset.asset_id, now, failure.run_failed or "")
    [(_, update)] = from_openlineage(
        OpenLineageRunEvent.model_validate(json.loads(event("COMPLETE", "r8", "j", out_of)))
    )
    out = Engine(clock_skew_s=0).apply_update(asset, update, now)  # 'status' removed: a drift violation
    [v] = [v for v in out.violations if isinstance(v, ViolationData)]
    v = ctx.enrich_violation(
        v, declared_consumers=(), asset_identifiers=(), upstream_health=lambda _: None, now=now
    )
    key, value, headers = encode_violation(v)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await store.register_contracts(conn, [c])
        await store.write_history(conn, out.check_results, [decode_violation(dict(headers), key, value)])
        report = await build_report(conn, window="1d", as_of=now + timedelta(minutes=1))
    finally:
        await conn.close()
    [row] = [a for a in report.assets if a.asset == asset.asset_id]
    assert (
        row.last_run_failed is not None
        and "FAIL of job dbt/warehouse.sales.shop.orders.build.run" in row.last_run_failed
    )
    assert row.last_run_failed.endswith("Binder Error")
    text = table_text(report)
    assert "last run failed: " in text and "Binder Error" in text
