"""Real Airflow: `airflow dags test` (Airflow 3.3, `.tools/airflow`, installed by `make tools`; a SQLite metadata
database) runs examples/integrations/airflow/dags/shop_orders.py against the test PostgreSQL, with the
OpenLineage provider's Kafka transport and the documented task callback (plugins/floe_callbacks.py, a
module-level FloeClient nobody closes) both publishing to the test broker.

What a user must see: the provider's COMPLETE event (postgres://127.0.0.1:5432 + <db>.sales.orders) reaches the
contract that names the table only by its server and physicalName; PostgreSQL's own type names in the schema
facet (int8, float8, timestamptz) are no drift; the callback's event arrives with its row count; the worker
exits without "Unclosed AIOKafkaProducer".
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import asyncpg
import pytest

from floe_stream.processors.router import is_rerouted
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.topics import CheckResult, MaterializationEvent, TopicKey
from floe_stream.topics.enums import CheckType
from tests.conftest import ADMIN_DSN, REPO, empty_database, wait_for
from tests.integration.helpers import Running, read_all, violations
from tests.integration.tools import run_tool, tool, tool_env

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.tool]  # .tools/ of `make tools`

EXAMPLE = REPO / "examples" / "integrations" / "airflow"


def airflow_dags_test(s: Settings, work: Path, database: str) -> str:
    venv = tool("airflow", "Airflow 3.3 (apache-airflow + providers openlineage, postgres)")
    env = tool_env(
        venv,
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{work}/airflow.db",
        AIRFLOW__CORE__DAGS_FOLDER=str(EXAMPLE / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(EXAMPLE / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="false",
        AIRFLOW_CONN_SHOP_PG=f"{ADMIN_DSN.rpartition('/')[0]}/{database}",
        AIRFLOW__OPENLINEAGE__NAMESPACE="shop",
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
            {
                "type": "kafka",
                "topic": f"{s.kafka.topic_prefix}materializations",
                "config": {"bootstrap.servers": s.kafka.bootstrap_servers, "acks": "all"},
                "flush": True,
            }
        ),
        FLOE_KAFKA__BOOTSTRAP_SERVERS=s.kafka.bootstrap_servers,
        FLOE_KAFKA__TOPIC_PREFIX=s.kafka.topic_prefix,
        PYTHONPATH=str(REPO / "src"),  # this checkout's floe_stream before the copy installed in the venv
    )
    airflow = str(venv / "bin" / "airflow")
    # a copy of the migrated, empty metadata database make tools made (a migration here costs 10-30 s)
    shutil.copyfile(
        tool("airflow/metadata-template.db", "Airflow's metadata database template"), work / "airflow.db"
    )
    ran = run_tool([airflow, "dags", "test", "shop_orders"], env, work, work / "airflow-dags-test.log")
    output = (work / "airflow-dags-test.log").read_text()
    assert ran.returncode == 0, output[-4000:]
    return output


async def results(s: Settings) -> list[CheckResult]:
    return [CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)]


async def test_airflow_dags_test_provider_and_callback_reach_the_contract(
    settings: Settings, tmp_path: Path
) -> None:
    async with empty_database("floe_airflow") as dsn:
        database = dsn.rpartition("/")[2]
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "CREATE SCHEMA sales; CREATE TABLE sales.orders "
                "(id bigint PRIMARY KEY, amount double precision, updated_at timestamptz)"
            )
        finally:
            await conn.close()
        contracts = tmp_path / "contracts"
        contracts.mkdir()
        text = (EXAMPLE / "contracts" / "shop.odcs.yaml").read_text()
        (contracts / "shop.odcs.yaml").write_text(text.replace("database: shop", f"database: {database}"))
        s = settings.model_copy(update={"contracts_dir": contracts})
        processor = processor_service(s, load_registry(s))
        async with Running(processor):
            await wait_for(lambda: processor.ever_assigned, timeout=30)
            output = await asyncio.to_thread(airflow_dags_test, s, tmp_path, database)
            assert "Failed to run task callback" not in output
            assert "Unclosed AIOKafkaProducer" not in output  # the recipe's client was closed at exit
            raw = [r for r in await read_all(s, TopicKey.MATERIALIZATIONS) if not is_rerouted(r.headers)]
            ol = [json.loads(r.value) for r in raw if b'"eventType"' in r.value]
            floe = [
                MaterializationEvent.model_validate_json(r.value)
                for r in raw
                if b'"eventType"' not in r.value
            ]
            complete = [
                e
                for e in ol
                if e["eventType"] == "COMPLETE" and e["job"]["name"] == "shop_orders.load_orders"
            ]
            assert len(complete) == 1, [(e["eventType"], e["job"]["name"]) for e in ol]
            (out,) = complete[0]["outputs"]
            assert (out["namespace"], out["name"]) == (
                "postgres://127.0.0.1:5432",
                f"{database}.sales.orders",
            )

            async def evaluated() -> list[CheckResult] | None:
                rs = [
                    r
                    for r in await results(s)
                    if r.check_type in (CheckType.FRESHNESS, CheckType.SCHEMA_DRIFT)
                ]
                return rs if len({r.source_event_id for r in rs}) >= 2 else None

            got = await wait_for(evaluated, timeout=30)
            evs = await violations(s)

    (cb,) = floe
    assert (cb.producer, cb.row_count, cb.job) == ("airflow", 3, "shop_orders.load_orders")
    assert cb.run_id is not None and cb.run_id.startswith("shop_orders.load_orders.")
    provider_id = f"ol:{complete[0]['run']['runId']}:postgres://127.0.0.1:5432/{database}.sales.orders"
    by_source = {(r.source_event_id, r.check_type): r for r in got}
    # the provider's event reached the contract table: fresh, and PostgreSQL's int8/float8 are no drift
    assert by_source[(provider_id, CheckType.FRESHNESS)].status.value == "pass"
    assert by_source[(provider_id, CheckType.SCHEMA_DRIFT)].status.value == "pass"
    # the callback's event reached the same asset
    assert (
        by_source[(cb.event_id, CheckType.FRESHNESS)].asset
        == by_source[(provider_id, CheckType.FRESHNESS)].asset
    )
    assert {r.contract_id for r in got} == {"airflow-shop"}
    assert [e for e in evs if e.data.violation_type == CheckType.SCHEMA_DRIFT] == []
