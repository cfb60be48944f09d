"""Dagster → floe-stream, the recipe of docs/integrations/dagster.md (run by tests/integration/test_dagster.py).

`dagster dev -f definitions.py` with FLOE_KAFKA__BOOTSTRAP_SERVERS (and FLOE_KAFKA__TOPIC_PREFIX) set; the
contracts these assets answer to are in ./contracts. Needs `pip install "floe-stream[dagster]"`.
"""

from datetime import UTC, datetime

import dagster as dg

from floe_stream.integrations.dagster import floe_sensor, publish_result

daily = dg.DailyPartitionsDefinition(start_date="2026-12-01")


@dg.asset(key_prefix=["shop"], partitions_def=daily)
def orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Reported by the sensor: no floe code in the asset, only Dagster's standard metadata."""
    day = datetime.fromisoformat(context.partition_key).replace(tzinfo=UTC)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": 3,
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn("id", "bigint", constraints=dg.TableColumnConstraints(nullable=False)),
                    dg.TableColumn("amount", "double"),
                    dg.TableColumn("coupon", "varchar"),
                ]
            ),
            # the newest order in the partition: what freshness is measured on
            "dagster/last_updated_timestamp": dg.MetadataValue.timestamp(day.replace(hour=23)),
        }
    )


@dg.asset_check(asset=orders, description="every order has an amount")
def orders_have_an_amount() -> dg.AssetCheckResult:
    """An asset check: floe gets it as a quality result of shop.orders (column, metric and failures from its
    metadata), judged by the contract's nullValues rule on `amount`."""
    missing = 1  # e.g. SELECT count(*) FROM shop.orders WHERE amount IS NULL
    return dg.AssetCheckResult(
        passed=missing == 0,
        metadata={"column": "amount", "metric": "nullValues", "failures": missing},
    )


@dg.asset(key_prefix=["crm"], name="customers_asset")
def customers(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Reported by the one-line hook, at once (the sensor sends the same event id again later: no double)."""
    return publish_result(
        context,
        dg.MaterializeResult(
            metadata={
                "dagster/table_name": "crm.customers",  # the asset identity, instead of the asset key
                "dagster/row_count": 2,
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn("id", "bigint", constraints=dg.TableColumnConstraints(nullable=False)),
                        dg.TableColumn("email", "varchar"),
                    ]
                ),
            }
        ),
    )


defs = dg.Definitions(
    assets=[orders, customers],
    asset_checks=[orders_have_an_amount],
    sensors=[floe_sensor(minimum_interval_seconds=30)],
)
