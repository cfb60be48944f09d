"""Real dbt: `dbt-ol build` (dbt-core 1.11 + dbt-duckdb + openlineage-dbt, `.tools/dbt`, installed by `make tools`)
on the project in examples/integrations/dbt, with openlineage-python's Kafka transport configured by environment
variables to the test broker, as docs/integrations/dbt.md shows.

The contract (examples/integrations/dbt/contracts) names its tables only by its duckdb server and their
``physicalName``. One error-severity test fails (a ``lost`` order status), so dbt-ol ends that test job with FAIL.
What a user must see: each model built is one update (START counts nothing); the failing test is a failed
quality result and each assertion counts once (dbt-ol writes them in two facet maps, on START and on FAIL);
the untyped schema facet (only the documented columns) raises no drift; and the ``run_results.json`` route of
the same build gives the same quality verdicts.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from floe_stream.client import FloeClient
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.sources.dbt import quality_by_model
from floe_stream.topics import CheckResult, TopicKey, ViolationData
from floe_stream.topics.enums import CheckType
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, read_all, violations
from tests.integration.tools import run_tool, tool, tool_env

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.tool]  # .tools/ of `make tools`

PROJECT = REPO / "examples" / "integrations" / "dbt"
FAILING = "accepted_values_orders_status__paid__refunded"


def dbt_ol_build(s: Settings, work: Path) -> tuple[int, Path]:
    """`dbt-ol build` with the Kafka transport, run in ``work`` (the duckdb file and dbt's target/ land there)."""
    venv = tool("dbt", "dbt (dbt-core 1.11 + dbt-duckdb + openlineage-dbt)")
    env = tool_env(
        venv,
        OPENLINEAGE__TRANSPORT__TYPE="kafka",
        OPENLINEAGE__TRANSPORT__TOPIC=f"{s.kafka.topic_prefix}materializations",
        OPENLINEAGE__TRANSPORT__CONFIG=json.dumps(
            {"bootstrap.servers": s.kafka.bootstrap_servers, "acks": "all"}
        ),
        OPENLINEAGE__TRANSPORT__FLUSH="true",
        DBT_TARGET_PATH=str(work / "target"),
        DBT_LOG_PATH=str(work / "logs"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    args = ["dbt-ol", "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT)]
    proc = run_tool(args, env, work, work / "dbt-ol.log")
    return proc.returncode, work / "target"


async def results(s: Settings) -> list[CheckResult]:
    return [CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)]


def table(asset: str) -> str:
    return asset.rsplit(".", 1)[-1]


async def test_dbt_ol_build_updates_quality_no_false_drift_and_the_run_results_route_agrees(
    settings: Settings, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"contracts_dir": PROJECT / "contracts"})
    processor = processor_service(s, load_registry(s))
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned, timeout=30)
        code, target = await asyncio.to_thread(dbt_ol_build, s, tmp_path)
        assert code == 1, (tmp_path / "dbt-ol.log").read_text()[-3000:]  # the failing test fails the build
        raw = [json.loads(r.value) for r in await read_all(s, TopicKey.MATERIALIZATIONS)]
        sent = {(e.get("eventType"), e["job"]["name"]) for e in raw}
        assert (
            {  # what dbt-ol really sent (11 events: START/COMPLETE per model, START/FAIL or COMPLETE per test job)
                ("COMPLETE", "warehouse.sales.shop.orders.build.run"),
                ("FAIL", "warehouse.sales.shop.orders.build.test"),
                ("COMPLETE", "warehouse.sales.shop.customers.build.test"),
            }
            <= sent
        ), sent

        def ol_quality(rs: list[CheckResult]) -> list[CheckResult]:
            return [
                r
                for r in rs
                if r.check_type == CheckType.QUALITY
                and r.status.value != "skipped"  # a model's own COMPLETE carries no quality report
                and (r.source_event_id or "").startswith("ol:")
            ]

        async def settled() -> list[CheckResult] | None:
            rs = await results(s)
            fresh = [r for r in rs if r.check_type == CheckType.FRESHNESS]
            return rs if len(ol_quality(rs)) >= 2 and len(fresh) >= 1 else None

        ol_results = await wait_for(settled, timeout=30)

        # the run_results.json route of the same build: floe's converter, published with the client
        run_results = json.loads((target / "run_results.json").read_text())
        manifest = json.loads((target / "manifest.json").read_text())
        quality = quality_by_model(run_results, manifest)
        with FloeClient(s.kafka.bootstrap_servers, s.kafka.topic_prefix) as floe:
            for model, qs in quality.items():
                await asyncio.to_thread(
                    floe.publish_materialization, model, quality=qs, producer="dbt",
                    run_id=run_results["metadata"]["invocation_id"], event_id=f"dbt-run-results:{model}",
                )  # fmt: skip

        async def both_routes() -> list[CheckResult] | None:
            rs = await results(s)
            q = [
                r
                for r in rs
                if r.check_type == CheckType.QUALITY
                and (r.source_event_id or "").startswith("dbt-run-results:")
            ]
            return rs if len(q) >= 2 else None

        every = await wait_for(both_routes, timeout=30)
        evs = await violations(s)

    # each model built is one update: one freshness evaluation per model run (START and the tests: none)
    fresh = [r for r in ol_results if r.check_type == CheckType.FRESHNESS]
    assert [table(r.asset) for r in fresh] == ["orders"]  # the one table with a latency SLA
    assert {r.contract_id for r in every} == {"dbt-shop"}

    # the failing error-severity test is a failed quality result; every assertion counted once
    by_table = {table(r.asset): r for r in ol_quality(every)}
    assert set(by_table) == {"orders", "customers"}
    assert by_table["orders"].status.value == "fail"
    assert "(2/3 expectations passed)" in by_table["orders"].message, by_table["orders"].message
    assert FAILING in by_table["orders"].message
    assert by_table["customers"].status.value == "pass"
    assert "(1/1 expectations passed)" in by_table["customers"].message, by_table["customers"].message
    failed = [
        e.data for e in evs
        if isinstance(e.data, ViolationData) and e.data.violation_type == CheckType.QUALITY and FAILING in e.data.message
    ]  # fmt: skip
    assert len(failed) == 1 and table(failed[0].asset) == "orders"

    # an untyped schema facet (only the documented columns) is declared, not observed: no drift
    assert [e for e in evs if e.data.violation_type == CheckType.SCHEMA_DRIFT] == []

    # the run_results.json route gives the same verdicts
    rr = {
        table(r.asset): r
        for r in every
        if r.check_type == CheckType.QUALITY and (r.source_event_id or "").startswith("dbt-run-results:")
    }
    assert {t: (r.status, r.metric, r.message) for t, r in rr.items()} == {
        t: (r.status, r.metric, r.message) for t, r in by_table.items()
    }
