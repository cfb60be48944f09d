"""Contracts written with ODCS ``servers`` + ``physicalName`` only (no aliases) receive the OpenLineage events
of the tools that write their tables, resolved by exact (namespace, name); a name alone that two assets share
is refused, never given to one of them. Hand-written events here (the dataset identifiers the real emitters
send, per their source and the lab notes); the real tools run in the integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from floe_stream.contracts.lint import lint_directory
from floe_stream.contracts.loader import load_contract_text
from floe_stream.contracts.models import LoadedContract, MonitoredAsset
from floe_stream.contracts.registry import Ambiguous, ContractRegistry
from floe_stream.processors.router import route_update
from floe_stream.topics.catalog import TopicKey


def contract(cid: str, servers: list[dict[str, Any]], *tables: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v3.1.0",
            "kind": "DataContract",
            "id": cid,
            "name": cid,
            "version": "1.0.0",
            "status": "active",
            "servers": servers,
            "schema": [
                {"name": t, "physicalName": t, "properties": [{"name": "id", "logicalType": "string"}]}
                for t in tables
            ],
        },
        sort_keys=False,
    )


def load(cid: str, servers: list[dict[str, Any]], *tables: str) -> LoadedContract:
    return load_contract_text(contract(cid, servers, *tables), f"{cid}.yaml")


def ol_event(namespace: str, name: str, event_type: str = "COMPLETE", **dataset: Any) -> bytes:
    return orjson.dumps(
        {
            "eventType": event_type,
            "eventTime": "2026-12-05T10:00:00Z",
            "run": {"runId": "0193c2a4-0000-7000-8000-000000000001"},
            "job": {"namespace": "default", "name": "job"},
            "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/dbt",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "outputs": [{"namespace": namespace, "name": name, **dataset}],
        }
    )


def routed(registry: ContractRegistry, value: bytes) -> tuple[list[str], list[Ambiguous]]:
    refused: list[Ambiguous] = []
    _, pairs = route_update(TopicKey.MATERIALIZATIONS, value, "t", 0, 0, registry, refused)
    return [a.asset_id for a, _ in pairs], refused


def only(c: LoadedContract) -> MonitoredAsset:
    (asset,) = c.assets
    return asset


DUCKDB = [{"server": "local", "type": "duckdb", "database": "/srv/dbt/warehouse.duckdb", "schema": "sales"}]
POSTGRES = [
    {
        "server": "prod",
        "type": "postgres",
        "host": "pg",
        "port": 5432,
        "database": "postgres",
        "schema": "sales",
    }
]
TRINO = [
    {"server": "trino", "type": "trino", "host": "trino", "port": 8080, "catalog": "lake", "schema": "sales"}
]
HIVE = [{"server": "hive", "type": "hive", "host": "metastore", "port": 9083, "database": "sales"}]


def test_servers_and_physical_name_receive_each_tools_events() -> None:
    duck, pg, trino, hive = (
        load("duck", DUCKDB, "orders"),
        load("pg", POSTGRES, "orders"),
        load("trino", TRINO, "orders"),
        load("hive", HIVE, "orders"),
    )
    registry = ContractRegistry([duck, pg, trino, hive])
    # dbt-ol on dbt-duckdb: the profile's path (here relative to the project) + database.schema.table
    assert routed(registry, ol_event("duckdb://warehouse.duckdb", "warehouse.sales.orders")) == (
        [only(duck).asset_id],
        [],
    )
    # the Airflow postgres provider
    assert routed(registry, ol_event("postgres://pg:5432", "postgres.sales.orders"))[0] == [only(pg).asset_id]
    # Trino's OpenLineage plugin, upper case as a user typed it: trino folds unquoted identifiers
    assert routed(registry, ol_event("trino://TRINO:8080", "LAKE.SALES.ORDERS"))[0] == [only(trino).asset_id]
    # Spark on a Hive table: the location first, the table in the symlinks facet
    spark = ol_event(
        "hdfs://namenode:8020",
        "/warehouse/sales.db/orders",
        facets={
            "symlinks": {
                "identifiers": [
                    {"namespace": "hive://metastore:9083", "name": "sales.orders", "type": "TABLE"}
                ]
            }
        },
    )
    assert routed(registry, spark)[0] == [only(hive).asset_id]


def test_one_table_name_in_two_schemas_is_two_assets_and_the_name_alone_is_refused(tmp_path: Path) -> None:
    marketing = [{**POSTGRES[0], "schema": "marketing"}]
    sales_c, marketing_c = load("sales", POSTGRES, "orders"), load("marketing", marketing, "orders")
    assert (only(sales_c).asset_id, only(marketing_c).asset_id) == (
        "postgres.sales.orders",
        "postgres.marketing.orders",
    )
    registry = ContractRegistry([sales_c, marketing_c])
    assert len(registry) == 2
    assert routed(registry, ol_event("postgres://pg:5432", "postgres.marketing.orders"))[0] == [
        "postgres.marketing.orders"
    ]
    # another host: the exact identity matches no contract; the name alone matches both → refused
    names, refused = routed(registry, ol_event("postgres://other:5432", "orders"))
    assert names == []
    assert [r.assets for r in refused] == [("postgres.sales.orders", "postgres.marketing.orders")]
    # floe's own event naming only the table is refused too; the asset id resolves
    assert isinstance(registry.lookup("orders"), Ambiguous)
    assert registry.resolve("orders") is None
    assert registry.resolve("postgres.sales.orders") is only(sales_c)
    # retiring one contract makes the name unique again
    registry.remove("marketing")
    assert registry.resolve("orders") is only(sales_c)
    # lint: two assets, no error; the shared name is a warning
    (tmp_path / "sales.yaml").write_text(contract("sales", POSTGRES, "orders"))
    (tmp_path / "marketing.yaml").write_text(contract("marketing", marketing, "orders"))
    report = lint_directory(tmp_path)
    assert report.errors == ()
    assert any("'orders' names asset" in w and "ambiguous and refused" in w for w in report.warnings)


def test_the_same_dataset_in_two_environments_resolves_by_namespace() -> None:
    prod = load("prod", [{**POSTGRES[0], "host": "pg-prod"}], "orders")
    dev = load("dev", [{**POSTGRES[0], "host": "pg-dev", "server": "dev"}], "orders")
    # the same database.schema.table: the default ids collide, so one sets its own (floe.asset)
    assert only(prod).asset_id == only(dev).asset_id == "postgres.sales.orders"
    # without it the later contract is refused, and the refusal says what to do (registry and lint alike)
    both = ContractRegistry([prod, dev])
    assert [a.asset_id for a in both.assets()] == ["postgres.sales.orders"]
    assert [str(r) for r in both.refused] == [
        "dev.yaml: contract 'dev' refused: asset id 'postgres.sales.orders' is owned by contract 'prod' (the "
        "table's default id, its name on its first server: the same table name on another host, e.g. prod and "
        "dev, needs its own id: set floe.asset)"
    ]
    text = contract("dev", [{**POSTGRES[0], "host": "pg-dev"}], "orders").replace(
        "physicalName: orders\n",
        "physicalName: orders\n  customProperties:\n  - property: floe\n    value: {asset: dev.orders}\n",
    )
    dev = load_contract_text(text, "dev.yaml")
    registry = ContractRegistry([prod, dev])
    assert routed(registry, ol_event("postgres://pg-dev:5432", "postgres.sales.orders"))[0] == ["dev.orders"]
    assert routed(registry, ol_event("postgres://pg-prod:5432", "postgres.sales.orders"))[0] == [
        "postgres.sales.orders"
    ]
    names, refused = routed(registry, ol_event("postgres://pg-test:5432", "postgres.sales.orders"))
    assert names == [] and len(refused) == 1  # a third environment: no silent merge into one of them


def test_one_default_id_on_two_hosts_is_one_lint_error_that_says_to_set_floe_asset(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(contract("a", [{**POSTGRES[0], "host": "pg-prod"}], "orders"))
    (tmp_path / "b.yaml").write_text(contract("b", [{**POSTGRES[0], "host": "pg-dev"}], "orders"))
    report = lint_directory(tmp_path)
    assert [e.problem.endswith("needs its own id: set floe.asset)") for e in report.errors] == [True]
    assert report.warnings == ()  # not also 'orders' names asset X and asset X


def test_the_same_identity_in_two_contracts_is_a_lint_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(contract("a", POSTGRES, "orders"))
    (tmp_path / "b.yaml").write_text(contract("b", [{**POSTGRES[0], "server": "other-name"}], "orders"))
    report = lint_directory(tmp_path)
    assert any("dataset postgres://pg:5432 + postgres.sales.orders" in e.problem for e in report.errors)


def test_explain_lists_what_each_asset_answers_to() -> None:
    from floe_stream.processors.explain import explain_contract, render_text
    from floe_stream.processors.policy import CheckPolicy

    c = load("pg", [*POSTGRES, {"server": "stage", "type": "postgres", "database": "postgres"}], "orders")
    [asset] = explain_contract(c, CheckPolicy())["assets"]
    assert asset["answers_to"]["datasets"] == ["postgres://pg:5432 + postgres.sales.orders"]
    assert asset["answers_to"]["names"] == ["orders", "pg.orders", "postgres.sales.orders"]
    assert asset["answers_to"]["servers_without_dataset"] == ["stage (postgres): no host"]
    text = render_text([explain_contract(c, CheckPolicy())])
    assert "answers to dataset postgres://pg:5432 + postgres.sales.orders" in text
    assert "no dataset from server stage (postgres): no host" in text
