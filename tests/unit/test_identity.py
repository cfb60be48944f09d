"""OpenLineage dataset identifiers from a contract's servers (contracts/identity.py): the naming spec's rules,
checked against openlineage-python's own naming helpers (``openlineage.client.naming.dataset``) where it has
one, and against what dbt-ol, the Airflow provider and Spark write where the spec leaves room."""

from __future__ import annotations

from typing import Any

import pytest
from openlineage.client.naming import dataset as ol

from floe_stream.contracts.identity import (
    dataset_key,
    server_identities,
    server_problem,
    split_name,
    suggest,
    table_identities,
)
from floe_stream.contracts.models import MonitoredAsset, ServerRef


def srv(type_: str, **kw: Any) -> ServerRef:
    return ServerRef(server="s", type=type_, **kw)


def ident(naming: Any) -> tuple[str, str]:
    return naming.get_namespace(), naming.get_name()


@pytest.mark.parametrize(
    ("server", "physical", "expected"),
    [
        (
            srv("postgres", host="db.internal", port=5432, database="shop", schema_name="public"),
            "orders",
            ol.Postgres(host="db.internal", port="5432", database="shop", schema="public", table="orders"),
        ),
        (
            srv("mysql", host="my", port=3306, database="shop"),
            "orders",
            ol.MySQL(host="my", port="3306", database="shop", table="orders"),
        ),
        (
            srv("trino", host="trino", port=8080, catalog="hive", schema_name="sales"),
            "orders",
            ol.Trino(host="trino", port="8080", catalog="hive", schema="sales", table="orders"),
        ),
        (
            srv("bigquery", project="acme-prod", dataset="sales"),
            "orders",
            ol.BigQuery(project_id="acme-prod", dataset_name="sales", table_name="orders"),
        ),
        (
            srv("hive", host="metastore", port=9083, database="sales"),
            "orders",
            ol.Hive(host="metastore", port="9083", database="sales", table="orders"),
        ),
        (
            srv("oracle", host="ora", port=1521, service_name="ORCL", schema_name="SALES"),
            "ORDERS",
            ol.Oracle(host="ora", port="1521", service_name="ORCL", schema="SALES", table="ORDERS"),
        ),
        (
            srv("athena", region="eu-west-1", schema_name="sales"),
            "orders",
            ol.Athena(region_name="eu-west-1", catalog="awsdatacatalog", database="sales", table="orders"),
        ),
        (
            srv("glue", region="eu-west-1", account="123456789012", database="sales"),
            "orders",
            ol.AWSGlue(
                region_name="eu-west-1", account_id="123456789012", database_name="sales", table_name="orders"
            ),
        ),
        (
            srv("s3", location="s3://lake/sales/orders/*.parquet"),
            "orders",
            ol.S3(bucket_name="lake", object_key="sales/orders"),
        ),
        (
            srv("local", location="/data/sales/orders.parquet"),
            "orders",
            ol.LocalFileSystem(path="/data/sales/orders.parquet"),
        ),
    ],
)
def test_identities_are_the_naming_spec_ones(server: ServerRef, physical: str, expected: Any) -> None:
    assert server_identities(server, physical)[0] == ident(expected)


def test_what_the_real_emitters_write() -> None:
    # dbt-ol (dbt-duckdb): duckdb://<profile path> + <database>.<schema>.<table>, database = the file's stem
    duck = srv("duckdb", database="/srv/dbt/warehouse.duckdb", schema_name="sales")
    assert server_identities(duck, "orders") == (
        ("duckdb:///srv/dbt/warehouse.duckdb", "warehouse.sales.orders"),
    )
    # the profile's path is relative while the contract's is absolute: compared by file name
    assert dataset_key("duckdb://warehouse.duckdb", "warehouse.sales.orders") == dataset_key(
        *server_identities(duck, "orders")[0]
    )
    # Airflow's postgres provider: postgres://host:port + database.schema.table
    pg = srv("postgres", host="localhost", port=5432, database="postgres", schema_name="sales")
    assert server_identities(pg, "orders") == (("postgres://localhost:5432", "postgres.sales.orders"),)
    # redshift: dbt-ol writes the host, the spec the cluster and region
    rs = srv(
        "redshift",
        host="analytics.abc123xyz.eu-west-1.redshift.amazonaws.com",
        database="dev",
        schema_name="public",
    )
    assert server_identities(rs, "orders") == (
        ("redshift://analytics.abc123xyz.eu-west-1.redshift.amazonaws.com:5439", "dev.public.orders"),
        ("redshift://analytics.eu-west-1:5439", "dev.public.orders"),
    )
    # databricks: dbt-ol's namespace and the spec's Unity Catalog one
    dbx = srv("databricks", host="dbc-1.cloud.databricks.com", catalog="main", schema_name="sales")
    assert [ns for ns, _ in server_identities(dbx, "orders")] == [
        "databricks://dbc-1.cloud.databricks.com",
        "unitycatalog://dbc-1.cloud.databricks.com",
    ]
    # kafka: one namespace per bootstrap server, the topic unsplit
    kafka = srv("kafka", host="b1:9092, b2:9092")
    assert server_identities(kafka, "sales.orders.v1") == (
        ("kafka://b1:9092", "sales.orders.v1"),
        ("kafka://b2:9092", "sales.orders.v1"),
    )
    # Iceberg REST catalog: Spark's symlink (catalog uri, ns.table) and the table's location under the warehouse
    ice = srv("iceberg", catalog_url="http://rest:8181/", warehouse="s3://lake/wh", namespace="sales")
    assert server_identities(ice, "orders") == (
        ("http://rest:8181", "sales.orders"),
        ("s3://lake", "wh/sales/orders"),
    )


def test_snowflake_names_are_canonical_upper_case_and_accounts_complete() -> None:
    s = srv("snowflake", account="acme-prod", database="analytics", schema_name="sales")
    assert server_identities(s, "orders") == (("snowflake://acme-prod", "ANALYTICS.SALES.ORDERS"),)
    assert server_identities(s, '"My Table"')[0][1] == 'ANALYTICS.SALES."My Table"'
    locator = srv("snowflake", account="xy12345", database="d", schema_name="s")
    assert server_identities(locator, "t")[0][0] == "snowflake://xy12345.us-west-1.aws"
    assert server_identities(locator.model_copy(update={"account": "xy12345.eu-west-2"}), "t")[0][0] == (
        "snowflake://xy12345.eu-west-2.aws"
    )


def test_a_qualified_physical_name_overrides_the_servers_levels_from_the_right() -> None:
    pg = srv("postgres", host="db", port=5432, database="shop", schema_name="public")
    assert server_identities(pg, "sales.orders")[0][1] == "shop.sales.orders"
    assert server_identities(pg, "other.sales.orders")[0][1] == "other.sales.orders"
    assert split_name('a."b.c".d') == ["a", '"b.c"', "d"]


def test_object_store_locations() -> None:
    # datacontract-cli's {model} placeholder; several tables under one folder; abfss without a container@
    s3 = srv("s3", location="s3a://lake/raw/{model}/*.json")
    assert server_identities(s3, "orders") == (("s3://lake", "raw/orders"),)
    folder = srv("s3", location="s3://lake/raw/")
    assert server_identities(folder, "orders", single_table=False) == (("s3://lake", "raw/orders"),)
    adls = srv("azure", location="abfss://acct.dfs.core.windows.net/container/raw/orders/*.parquet")
    assert server_identities(adls, "orders") == (
        ("abfss://container@acct.dfs.core.windows.net", "raw/orders"),
    )
    gcs = srv("custom", location="gs://bucket/path/orders")
    assert server_identities(gcs, "orders") == (("gs://bucket", "path/orders"),)


def test_a_server_without_what_the_spec_needs_says_why() -> None:
    assert server_problem(srv("postgres", host="db", database="shop"), "orders") == "no schema"
    assert server_problem(srv("postgres", database="shop", schema_name="p"), "orders") == "no host"
    assert "no OpenLineage naming rule" in (server_problem(srv("api", url="https://x"), "o") or "")
    assert server_problem(srv("postgres", host="db", database="shop", schema_name="p"), "o") is None


def test_keys_follow_each_platforms_case_rules() -> None:
    # case-insensitive engines: unquoted parts in one case; quoted parts exact; scheme and host in lower case
    assert dataset_key("POSTGRES://DB:5432", "Shop.Public.Orders") == dataset_key(
        "postgres://db:5432", "shop.public.orders"
    )
    assert dataset_key("snowflake://a-b", 'D.S."My Table"') != dataset_key(
        "snowflake://a-b", 'D.S."MY TABLE"'
    )
    assert dataset_key("snowflake://a-b", "ANALYTICS.SALES.ORDERS") == dataset_key(
        "snowflake://a-b", "analytics.sales.orders"
    )
    # case-sensitive: BigQuery, Kafka topics, object keys
    assert dataset_key("bigquery", "p.Sales.Orders") != dataset_key("bigquery", "p.sales.orders")
    assert dataset_key("kafka://b:9092", "Orders") != dataset_key("kafka://b:9092", "orders")
    # OpenLineage's filesystem naming: s3a is s3, abfs is abfss; object keys without the leading slash
    assert dataset_key("s3a://lake", "/raw/orders/") == dataset_key("s3://lake", "raw/orders")
    assert dataset_key("file", "/data/orders/") == ("file", "/data/orders")


def test_table_identities_keep_server_order_without_repeats() -> None:
    prod = srv("postgres", host="db", port=5432, database="shop", schema_name="public")
    again = prod.model_copy(update={"server": "prod-ro", "host": "DB"})
    dev = prod.model_copy(update={"server": "dev", "database": "shop_dev"})
    assert table_identities([prod, again, dev], "orders") == (
        ("postgres://db:5432", "shop.public.orders"),
        ("postgres://db:5432", "shop_dev.public.orders"),
    )


def test_suggestions_name_the_likely_table_and_what_to_add() -> None:
    def asset(aid: str, table: str, **kw: Any) -> MonitoredAsset:
        return MonitoredAsset(
            asset_id=aid, contract_id=f"c-{aid}", contract_name="c", contract_version="1", table=table, **kw
        )

    orders = asset("sales.orders", "orders")
    payments = asset("sales.payments", "payments")
    found = suggest("postgres://db:5432", "shop.sales.orders", [payments, orders])
    assert [s.asset for s in found] == ["sales.orders"]
    assert "{type: postgres, host: db, port: 5432, database: shop, schema: sales}" in found[0].hint
    assert "postgres://db:5432/shop.sales.orders" in found[0].hint
    assert suggest("postgres://db:5432", "shop.sales.customers", [payments, orders]) == []
