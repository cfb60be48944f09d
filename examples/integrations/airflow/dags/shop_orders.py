"""A DAG that loads sales.orders in PostgreSQL: the OpenLineage provider reports the table it wrote (Kafka
transport → floe's materializations topic), the task callback reports the same load through floe's client."""

from __future__ import annotations

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG
from floe_callbacks import floe_materialized

with DAG(
    dag_id="shop_orders",
    schedule=None,
    start_date=pendulum.datetime(2026, 12, 1, tz="UTC"),
    catchup=False,
):
    SQLExecuteQueryOperator(
        task_id="load_orders",
        conn_id="shop_pg",
        sql="""
            INSERT INTO sales.orders (id, amount, updated_at)
            SELECT g, g * 1.5, now() FROM generate_series(1, 3) AS g
            ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, updated_at = EXCLUDED.updated_at
            RETURNING id;
        """,
        on_success_callback=floe_materialized("sales.orders"),  # row count: the rows RETURNING gave
    )
