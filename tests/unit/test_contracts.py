"""ODCS contract loader and linter: upstream examples, the demo contracts, units, forms and error messages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from floe_stream.contracts.lint import lint_directory
from floe_stream.contracts.loader import load_contract, load_contract_text, load_directory
from floe_stream.contracts.models import (
    AvailabilitySla,
    ColumnSpec,
    ContractError,
    FreshnessSla,
    LoadedContract,
    QualityRule,
    ServerRef,
)
from floe_stream.contracts.units import availability_ratio
from floe_stream.durations import duration_seconds
from floe_stream.probes.guard import ProbeGuard
from floe_stream.probes.targets import probe_problems
from floe_stream.processors.policy import override_problems

ODCS_EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "odcs-examples"
ODCS_JSON_SCHEMA = (
    Path(__file__).resolve().parents[1] / "fixtures" / "schemas" / "odcs" / "odcs-json-schema-v3.1.0.json"
)
DEMO_CONTRACTS = Path(__file__).parents[2] / "examples" / "contracts"
DAY = 86_400.0

# filename -> number of monitored assets, or a substring of the expected ContractError.
# All upstream examples are valid ODCS v3 (they pass the v3.1.0 JSON Schema), so none is rejected.
EXPECTED: dict[str, int | str] = {
    "all__full-example.odcs.yaml": 2,
    "all__postgresql-adventureworks-contract.odcs.yaml": 68,
    "data-types__all-data-types.odcs.yaml": 1,
    "fundamentals__table-column-description.odcs.yaml": 1,
    "quality__column-accuracy.odcs.yaml": 1,
    "quality__column-completeness.odcs.yaml": 1,
    "quality__column-custom.odcs.yaml": 1,
    "quality__column-validity.odcs.yaml": 1,
    "roles__service-and-operational-roles.odcs.yaml": 0,
    "schema__all-schema-types.odcs.yaml": 3,
    "schema__kafka-schema.odcs.yaml": 1,
    "schema__kafka-schemaregistry.odcs.yaml": 1,
    "schema__table-column.odcs.yaml": 1,
    "schema__table-columns-with-partition.odcs.yaml": 1,
    "server__azure-server.odcs.yaml": 0,
    "server__kafka-server.odcs.yaml": 1,
    "sla__database-table-sla.odcs.yaml": 0,
    "stakeholders__basic-four-dpo.odcs.yaml": 0,
}
# filename -> substrings every one of which must appear in some warning; other files load without warnings.
EXPECTED_WARNINGS: dict[str, list[str]] = {
    "all__full-example.odcs.yaml": ["slaProperties[0] latency: element 'tab1.txn_ref_dt' names no table"],
    "quality__column-accuracy.odcs.yaml": [
        "quality[0] (Air_Quality.DataValue): 'sql' quality checks are not"
    ],
    "quality__column-custom.odcs.yaml": ["quality[0] (Air_Quality.UniqueID): 'custom'", "quality[1]"],
    "roles__service-and-operational-roles.odcs.yaml": ["no schema objects"],
    "server__azure-server.odcs.yaml": ["no schema objects"],
    "sla__database-table-sla.odcs.yaml": ["no schema objects"],
    "stakeholders__basic-four-dpo.odcs.yaml": ["no schema objects"],
}

BASE: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "shop-1",
    "name": "shop",
    "version": "1.0.0",
    "status": "active",
}


def load(**fields: Any) -> LoadedContract:
    """Load BASE plus ``fields`` (``schema_`` stands for ``schema``)."""
    if "schema_" in fields:
        fields["schema"] = fields.pop("schema_")
    return load_contract_text(yaml.safe_dump({**BASE, **fields}, sort_keys=False), "test.odcs.yaml")


def table(name: str, *columns: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "properties": [{"name": c, "logicalType": "string"} for c in columns], **extra}


def floe(value: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"property": "floe", "value": value}]


def error_of(**fields: Any) -> str:
    with pytest.raises(ContractError) as info:
        load(**fields)
    return info.value.problem


# --- upstream ODCS examples -------------------------------------------------------------------------


def test_expectations_cover_exactly_the_example_folder() -> None:
    assert sorted(p.name for p in ODCS_EXAMPLES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_odcs_example_loads_or_is_rejected_specifically(name: str) -> None:
    expected = EXPECTED[name]
    if isinstance(expected, str):
        with pytest.raises(ContractError, match=re.escape(expected)):
            load_contract(ODCS_EXAMPLES / name)
        return
    contract = load_contract(ODCS_EXAMPLES / name)
    assert len(contract.assets) == expected
    assert contract.source.endswith(name)
    for fragment in EXPECTED_WARNINGS.get(name, []):
        assert any(fragment in w for w in contract.warnings), (fragment, contract.warnings)
    if name not in EXPECTED_WARNINGS:
        assert contract.warnings == ()


def test_sla_example_has_no_tables_so_its_latency_is_parsed_but_not_attached() -> None:
    contract = load_contract(ODCS_EXAMPLES / "sla__database-table-sla.odcs.yaml")
    assert contract.assets == ()
    assert contract.name == "my_table"
    assert contract.warnings == (
        "no schema objects: the contract describes no tables, so it has no monitored assets",
    )
    # every SLA property is still named once, with why it is not evaluated (explain and lint show the notes)
    doc = yaml.safe_load((ODCS_EXAMPLES / "sla__database-table-sla.odcs.yaml").read_text())
    assert len(contract.notes) == len(doc["slaProperties"])
    assert contract.notes[1].startswith("slaProperties[1] generalAvailability = ")
    assert all(n.endswith("not evaluated: the contract describes no tables (no schema objects), so there is "
                          "no asset to judge it on") for n in contract.notes)  # fmt: skip

    # the same SLAs once the contract declares the table the latency element names
    doc = yaml.safe_load((ODCS_EXAMPLES / "sla__database-table-sla.odcs.yaml").read_text())
    doc["schema"] = [table("tab1", "txn_ref_dt")]
    asset = load_contract_text(yaml.safe_dump(doc), "sla.yaml").assets[0]
    assert asset.freshness == FreshnessSla(
        threshold_s=4 * DAY, element="txn_ref_dt", source_property="latency"
    )
    assert asset.availability is None  # retention, frequency, timeOfAvailability, ... are not monitored


def test_full_example_columns_quality_team_and_servers() -> None:
    contract = load_contract(ODCS_EXAMPLES / "all__full-example.odcs.yaml")
    assert (contract.contract_id, contract.name, contract.version, contract.status) == (
        "53581432-6c55-4ba2-a65f-72344a91553a",
        "53581432-6c55-4ba2-a65f-72344a91553a",  # no name: the id stands in
        "1.1.0",
        "active",
    )
    tbl, receivers = contract.assets
    # no floe.asset: the table's name on its postgres server (database.schema.physicalName); the physical name
    # stays an alias, and the server gives the OpenLineage identity the Airflow provider or dbt-ol would send
    assert (tbl.asset_id, tbl.table, tbl.physical_name) == ("pypl-edw.pp_access_views.tbl_1", "tbl", "tbl_1")
    assert tbl.aliases == tuple(sorted({"tbl", f"{contract.name}.tbl", "tbl_1"}))
    assert tbl.identities == (("postgres://localhost:5432", "pypl-edw.pp_access_views.tbl_1"),)
    assert tbl.columns == (
        ColumnSpec(
            name="transaction_reference_date",
            physical_name="txn_ref_dt",
            logical_type="date",
            physical_type="date",
        ),
        ColumnSpec(name="rcvr_id", logical_type="string", physical_type="varchar(18)", primary_key=True),
        ColumnSpec(name="rcvr_cntry_code", logical_type="string", physical_type="varchar(2)"),
    )
    assert tbl.quality_rules == (
        QualityRule(
            name="tbl.rowCount",
            metric="rowCount",
            operator="mustBeGreaterThan",
            threshold=1_000_000,
            severity="error",
            dimension="completeness",
        ),
        QualityRule(
            name="rcvr_cntry_code.nullValues",
            column="rcvr_cntry_code",
            metric="nullValues",
            operator="mustBe",
            threshold=0,
            severity="error",
            dimension="completeness",
        ),
    )
    assert receivers.asset_id == "pypl-edw.pp_access_views.receivers_master"
    assert [c.name for c in receivers.columns] == ["id", "country_code", "receiver_name", "receiver_type"]
    assert receivers.columns[0] == ColumnSpec(
        name="id",
        logical_type="string",
        physical_type="varchar(18)",
        required=True,
        unique=True,
        primary_key=True,
    )
    assert receivers.quality_rules == ()
    assert tbl.freshness is None  # the latency element names 'tab1', which is not a table here
    assert (tbl.owner, tbl.team, tbl.domain) == ("daustin", "my-team", "seller")
    assert tbl.tags == ("transactions", "finance", "payments")
    assert tbl.servers == (
        ServerRef(
            server="my-postgres",
            type="postgres",
            host="localhost",
            port=5432,
            database="pypl-edw",
            schema_name="pp_access_views",
        ),
    )


def test_v30_examples_nested_columns_kafka_servers_and_status() -> None:
    types = load_contract(ODCS_EXAMPLES / "schema__all-schema-types.odcs.yaml")
    assert [a.asset_id for a in types.assets] == ["tbl_1", "AnObject", "AnotherObject"]
    assert types.assets[2].columns == (ColumnSpec(name="x", logical_type="array", physical_type="array"),)

    kafka = load_contract(ODCS_EXAMPLES / "server__kafka-server.odcs.yaml")
    (asset,) = kafka.assets
    assert (kafka.name, kafka.status, asset.asset_id) == ("abc123", "in development", "orders.avro.v1")
    assert asset.servers[0].host == "pkc-7xoy1.eu-central-1.aws.confluent.cloud:9092"

    validity = load_contract(ODCS_EXAMPLES / "quality__column-validity.odcs.yaml").assets[0]
    assert validity.quality_rules[0].unit == "percent"
    assert validity.quality_rules[0].threshold == 5


# --- the demo contracts -----------------------------------------------------------------------------


def test_demo_contracts_load_with_their_slas() -> None:
    contracts, errors = load_directory(DEMO_CONTRACTS)
    assert errors == []
    assets = {a.asset_id: a for c in contracts for a in c.assets}
    assert sorted(assets) == ["inventory.stock", "sales.orders", "sales.payments"]
    assert all(c.warnings == () for c in contracts)

    orders = assets["sales.orders"]
    assert orders.contract_id == orders.contract_name == "sales-orders"
    assert orders.freshness == FreshnessSla(threshold_s=20, element="updated_at")
    assert orders.availability == AvailabilitySla(target_ratio=0.995)
    assert {"orders", "public.orders", "sales-orders.orders"} <= set(orders.aliases)
    assert (orders.owner, orders.team) == ("alice.martin@acme.example", "sales-data")
    rules = {r.name: r for r in orders.quality_rules}
    assert rules["customer_id_not_null"].model_dump(
        include={"column", "metric", "operator", "threshold", "weight"}
    ) == {
        "column": "customer_id",
        "metric": "nullValues",
        "operator": "mustBe",
        "threshold": 0,
        "weight": 2.0,
    }
    assert rules["orders.rowCount"].operator == "mustBeGreaterThan"
    assert rules["orders.rowCount"].threshold == 0
    assert orders.consumers == ("bi.sales_kpis", "finance.revenue_daily", "ops.fulfilment_dashboard")

    payments = assets["sales.payments"]
    assert payments.freshness == FreshnessSla(threshold_s=15, element="paid_at")
    assert payments.availability is None

    stock = assets["inventory.stock"]
    assert stock.freshness == FreshnessSla(threshold_s=3600, element="updated_at")
    assert stock.columns == (
        ColumnSpec(
            name="sku", logical_type="string", physical_type="string", required=True, primary_key=True
        ),
        ColumnSpec(name="warehouse_id", logical_type="integer", physical_type="int"),
        ColumnSpec(name="quantity", logical_type="integer", physical_type="int", required=True),
        ColumnSpec(name="updated_at", logical_type="timestamp"),
    )
    assert stock.owner == "dana.kowalski@acme.example"  # role "Product Owner"


def test_demo_contracts_are_valid_odcs_v310() -> None:
    validator = jsonschema.Draft201909Validator(json.loads(ODCS_JSON_SCHEMA.read_text()))
    for path in sorted(DEMO_CONTRACTS.glob("*.odcs.yaml")):
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], path.name


# --- durations and availability ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "seconds"),
    [
        (20, "s", 20),
        (20, "sec", 20),
        (20, "seconds", 20),
        (5, "m", 300),
        (5, "min", 300),
        (5, "minutes", 300),
        (2, "h", 7_200),
        (2, "hr", 7_200),
        (2, "hours", 7_200),
        (4, "d", 4 * DAY),
        (1, "day", DAY),
        (4, "Days", 4 * DAY),
        (1, "w", 7 * DAY),
        (2, "weeks", 14 * DAY),
        (3, "y", 3 * 365 * DAY),
        (1, "yr", 365 * DAY),
        (2, "years", 730 * DAY),
        (0.5, "h", 1_800),
        ("4", "d", 4 * DAY),
        # what contracts written by others use (datacontract-cli's fixtures): sub-second units, the unit in
        # the value, or both saying the same
        (500, "ms", 0.5),
        ("500", "milliseconds", 0.5),
        (250, "us", 0.00025),
        ("500ms", None, 0.5),
        ("500 ms", None, 0.5),
        ("6 hours", None, 6 * 3_600),
        ("4h30m", None, 4.5 * 3_600),
        ("500ms", "ms", 0.5),
    ],
)
def test_duration_units(value: object, unit: str | None, seconds: float) -> None:
    assert duration_seconds(value, unit) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT6H", 6 * 3_600),
        ("PT30S", 30),
        ("PT1.5S", 1.5),
        ("PT0.5S", 0.5),
        ("P1D", DAY),
        ("P1W", 7 * DAY),
        ("P1DT2H30M", DAY + 9_000),
        ("P1M", 30 * DAY),
        ("P1Y", 365 * DAY),
    ],
)
def test_iso_8601_durations(value: str, seconds: float) -> None:
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        (2, "fortnight", "unit 'fortnight' is not a time unit"),
        (2, "parsecs", "unit 'parsecs' is not a time unit (use ms, s, m, h, d, w or y)"),
        ("5 parsecs", None, "'parsecs' is not a time unit"),
        ("500ms", "s", "value '500ms' already has a unit, so unit 's' must be left out"),
        (4, None, "value 4 has no unit"),
        ("PT6X", None, "'PT6X' is not a valid ISO-8601 duration"),
        ("PT6H", "h", "unit 'h' must be left out"),
        ("soon", "d", "'soon' is not a number"),
        (True, "d", "True is not a number"),
        (0, "s", "not a positive duration"),
        (-5, "m", "not a positive duration"),
        ("PT0S", None, "not a positive duration"),
        (None, "d", "None is not a number"),
    ],
)
def test_bad_durations_say_what_is_wrong(value: object, unit: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        duration_seconds(value, unit)


@pytest.mark.parametrize(
    ("value", "unit", "ratio"),
    [
        ("99.9%", None, 0.999),
        (" 99.5 % ", None, 0.995),
        (99.9, None, 0.999),
        ("99.9", None, 0.999),
        (0.999, None, 0.999),
        (99.9, "percent", 0.999),
        (99.9, "%", 0.999),
        (0.5, "%", 0.005),
        ("100%", None, 1.0),
        (1, None, 1.0),
    ],
)
def test_availability_forms(value: object, unit: str | None, ratio: float) -> None:
    assert availability_ratio(value, unit) == ratio


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        ("150%", None, "'150%' is not an availability between 0 and 100%"),
        (0, None, "not an availability"),
        (-1, None, "not an availability"),
        ("high", None, "'high' is not a percentage"),
        (True, None, "True is not a percentage"),
        (99.9, "ms", "unit 'ms' is not a percentage unit"),
    ],
)
def test_bad_availability(value: object, unit: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        availability_ratio(value, unit)


# --- SLA placement ----------------------------------------------------------------------------------


def test_sla_without_element_applies_to_every_table() -> None:
    contract = load(
        schema_=[table("orders", "ts"), table("payments", "ts")],
        slaProperties=[{"property": "ly", "value": 10, "unit": "m"}, {"property": "av", "value": "99%"}],
    )
    for asset in contract.assets:
        assert asset.freshness == FreshnessSla(threshold_s=600, element=None, source_property="ly")
        assert asset.availability == AvailabilitySla(target_ratio=0.99)


def test_sla_element_forms_pick_tables() -> None:
    contract = load(
        schema_=[
            table("orders", "updated_at"),
            table("payments", "paid_at", physicalName="pay_v2"),
            table("stock", "counted_at"),
        ],
        slaProperties=[
            {"property": "Latency", "value": "PT5M", "element": "orders.updated_at, pay_v2.paid_at"},
            {"property": "freshness", "value": 1, "unit": "h", "element": "counted_at"},
        ],
    )
    orders, payments, stock = contract.assets
    assert orders.freshness == FreshnessSla(threshold_s=300, element="updated_at", source_property="Latency")
    assert payments.freshness == FreshnessSla(threshold_s=300, element="paid_at", source_property="Latency")
    assert stock.freshness == FreshnessSla(
        threshold_s=3_600, element="counted_at", source_property="freshness"
    )
    assert contract.warnings == ()


def test_sla_naming_a_table_beats_one_for_every_table_and_duplicates_keep_the_strictest() -> None:
    contract = load(
        schema_=[table("orders", "ts"), table("payments", "ts")],
        slaProperties=[
            {"property": "latency", "value": 1, "unit": "h"},
            {"property": "latency", "value": 30, "unit": "s", "element": "orders.ts"},
            {"property": "availability", "value": "99%", "element": "payments"},
            {"property": "availability", "value": "99.9%", "element": "payments"},
        ],
    )
    orders, payments = contract.assets
    assert orders.freshness is not None
    assert orders.freshness.threshold_s == 30
    assert payments.freshness is not None
    assert payments.freshness.threshold_s == 3_600
    assert payments.availability == AvailabilitySla(target_ratio=0.999)
    assert contract.warnings == (
        "table 'payments' has 2 availability SLAs (slaProperties[2], slaProperties[3]); the strictest is kept",
    )


def test_sla_element_problems_are_warnings() -> None:
    contract = load(
        schema_=[table("orders", "ts"), table("payments", "ts")],
        slaProperties=[
            {"property": "latency", "value": 1, "unit": "h", "element": "refunds.ts"},
            {"property": "latency", "value": 1, "unit": "h", "element": "orders.created"},
        ],
    )
    assert contract.warnings == (
        "slaProperties[0] latency: element 'refunds.ts' names no table of this contract "
        "(tables: orders, payments); SLA not attached",
        "slaProperties[1] latency: column 'created' is not a property of table 'orders'",
    )
    assert contract.assets[0].freshness is not None
    assert contract.assets[1].freshness is None


def test_sla_default_element_is_used_when_an_sla_has_none() -> None:
    contract = load(
        schema_=[table("orders", "ts"), table("payments", "ts")],
        slaDefaultElement="payments.ts",
        slaProperties=[{"property": "latency", "value": 2, "unit": "d"}],
    )
    assert contract.assets[0].freshness is None
    assert contract.assets[1].freshness == FreshnessSla(threshold_s=2 * DAY, element="ts")


def test_sla_map_form_is_read_with_a_warning() -> None:
    contract = load(
        schema_=[table("orders", "updated_at")],
        slaProperties={
            "freshness": {"value": "PT6H", "element": "updated_at"},
            "availability": {"value": "99.9%"},
            "quality": {"completeness": "99%"},
        },
    )
    (asset,) = contract.assets
    assert asset.freshness == FreshnessSla(
        threshold_s=6 * 3_600, element="updated_at", source_property="freshness"
    )
    assert asset.availability == AvailabilitySla(target_ratio=0.999)
    assert len(contract.warnings) == 1
    assert "slaProperties is written as a map" in contract.warnings[0]


# --- identity, floe custom property, people ---------------------------------------------------------


def test_asset_id_aliases_consumers_and_overrides_from_the_floe_custom_property() -> None:
    contract = load(
        customProperties=[*floe({"consumers": ["bi"], "alerting": {"channel": "c1"}, "tier": 2})],
        schema_=[
            table(
                "orders",
                "id",
                physicalName="orders_v3",
                customProperties=floe(
                    {"asset": "sales.orders", "aliases": ["old.orders"], "consumers": ["ml"], "tier": 1}
                ),
            ),
            table("payments", "id"),
        ],
    )
    orders, payments = contract.assets
    assert orders.asset_id == "sales.orders"
    assert orders.aliases == tuple(sorted({"orders", "orders_v3", "shop.orders", "old.orders"}))
    assert orders.consumers == ("bi", "ml")
    assert orders.overrides == {
        "consumers": ["ml"],
        "alerting": {"channel": "c1"},
        "tier": 1,
        "asset": "sales.orders",
        "aliases": ["old.orders"],
    }
    assert (payments.asset_id, payments.aliases, payments.consumers) == (
        "payments",
        ("shop.payments",),
        ("bi",),
    )


def test_duplicate_asset_ids_in_one_contract_are_an_error() -> None:
    problem = error_of(
        schema_=[
            table("orders", "id", customProperties=floe({"asset": "sales.orders"})),
            table("orders_archive", "id", customProperties=floe({"asset": "Sales.Orders"})),
        ]
    )
    assert problem == (
        "schema[1] (orders_archive): asset id 'Sales.Orders' is already used by schema[0] (orders); "
        "set a distinct 'asset' in its floe customProperty"
    )


@pytest.mark.parametrize(
    ("team", "custom", "expected"),
    [
        (
            {
                "name": "t",
                "members": [{"username": "a", "role": "dev"}, {"username": "b", "role": "Data Owner"}],
            },
            [],
            ("t", "b"),
        ),
        ({"name": "t", "members": [{"name": "Ann", "role": "dev"}]}, [], ("t", "Ann")),
        (
            [
                {"username": "old", "role": "owner", "dateOut": "2020-01-01"},
                {"username": "new", "role": "dev"},
            ],
            [],
            (None, "new"),
        ),
        ({"name": "t"}, [{"property": "owner", "value": "ops@acme"}], ("t", "ops@acme")),
        (None, [], (None, None)),
    ],
)
def test_owner_and_team(
    team: Any, custom: list[dict[str, Any]], expected: tuple[str | None, str | None]
) -> None:
    fields: dict[str, Any] = {"schema_": [table("orders", "id")], "customProperties": custom}
    if team is not None:
        fields["team"] = team
    asset = load(**fields).assets[0]
    assert (asset.team, asset.owner) == expected


# --- quality ----------------------------------------------------------------------------------------


def test_quality_rules_operators_units_weights_and_skips() -> None:
    contract = load(
        schema_=[
            {
                "name": "orders",
                "quality": [
                    {"metric": "rowCount", "mustBeBetween": [10, 20]},
                    {"type": "sql", "query": "select 1", "mustBe": 1},
                    {"rule": "duplicateCount", "mustNotBeBetween": [1, 5], "name": "dups"},
                    {"rule": "notNull", "mustBe": 0},
                    {"type": "text", "description": "fine"},
                ],
                "properties": [
                    {
                        "name": "email",
                        "logicalType": "string",
                        "quality": [
                            {"metric": "nullValues", "mustBeLessThan": 5, "unit": "percent"},
                            {
                                "metric": "nullValues",
                                "mustBeLessOrEqualTo": 10,
                                "unit": "Percent",
                                "severity": "warning",
                            },
                            {"metric": "missingValues", "mustBe": 0, "unit": "bytes"},
                            {
                                "metric": "invalidValues",
                                "mustBeGreaterOrEqualTo": 0,
                                "customProperties": floe({"weight": 0.5}),
                            },
                        ],
                    }
                ],
            }
        ]
    )
    rules = [
        (r.name, r.column, r.metric, r.operator, r.threshold, r.unit, r.weight)
        for r in contract.assets[0].quality_rules
    ]
    assert rules == [
        ("orders.rowCount", None, "rowCount", "mustBeBetween", (10, 20), "rows", 1.0),
        ("dups", None, "duplicateValues", "mustNotBeBetween", (1, 5), "rows", 1.0),
        ("email.nullValues", "email", "nullValues", "mustBeLessThan", 5, "percent", 1.0),
        ("email.nullValues#2", "email", "nullValues", "mustBeLessOrEqualTo", 10, "percent", 1.0),
        ("email.invalidValues", "email", "invalidValues", "mustBeGreaterOrEqualTo", 0, "rows", 0.5),
    ]
    assert contract.warnings == (
        "schema[0].quality[1] (orders): 'sql' quality checks are not evaluated by floe; skipped",
        "schema[0].quality[3] (orders): rule 'notNull' is not an ODCS library metric floe knows; skipped",
        "schema[0].quality[4] (orders): 'text' quality checks are not evaluated by floe; skipped",
        "schema[0].properties[0].quality[2] (orders.email): unit 'bytes' is not evaluated by floe (rows, percent); skipped",
    )


# --- errors -----------------------------------------------------------------------------------------


def test_bad_yaml_names_the_line() -> None:
    text = "apiVersion: v3.1.0\nkind: DataContract\nid: x\nschema: [a, b\nversion: 1.0.0\n"
    with pytest.raises(ContractError) as info:
        load_contract_text(text, "broken.yaml")
    assert info.value.source == "broken.yaml"
    assert info.value.problem.startswith("YAML syntax error at line 5")
    assert str(info.value).startswith("broken.yaml: YAML syntax error at line 5")


ORDERS = [table("orders", "id", "ts")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"apiVersion": "v2.2.0"}, "not an ODCS v3 document: apiVersion 'v2.2.0' is not supported, use v3.x"),
        ({"apiVersion": None}, "not an ODCS v3 document: apiVersion is missing"),
        ({"kind": None}, "missing required key 'kind'"),
        ({"kind": "DataProduct"}, "kind 'DataProduct' is not supported"),
        ({"id": None}, "missing required key 'id'"),
        ({"status": ""}, "missing required key 'status'"),
        ({"version": 1.0}, "version: expected a string, got 1.0"),
        ({"models": {"orders": {}}}, "unknown top-level key 'models': not an ODCS v3 field"),
        ({"schema_": {"orders": {}}}, "schema: Input should be a valid list"),
        (
            {
                "schema_": [
                    table("orders", "a", "b"),
                    {
                        "name": "x",
                        "properties": [
                            {"name": "a"},
                            {"name": "b"},
                            {"name": "amount", "logicalType": "decimal"},
                        ],
                    },
                ]
            },
            "schema[1].properties[2] (x.amount): logicalType 'decimal' is not an ODCS logical type; use 'number'",
        ),
        (
            {"schema_": [{"name": "t", "properties": [{"name": "a", "logicalType": "uuid"}]}]},
            "logicalType 'uuid' is not an ODCS logical type; use one of string",
        ),
        ({"schema_": [{"physicalName": "orders"}]}, "schema[0]: missing required key 'name'"),
        (
            {"schema_": [{"name": "orders", "logicalType": "array"}]},
            "schema[0] (orders): logicalType 'array' is not a table",
        ),
        (
            {"schema_": [{"name": "t", "properties": [{"name": "a"}, {"name": "a"}]}]},
            "schema[0].properties[1] (t.a): column declared twice",
        ),
        ({"slaProperties": [{"value": 1}]}, "slaProperties[0]: missing required key 'property'"),
        ({"slaProperties": ["latency"]}, "slaProperties[0]: Input should be a valid dictionary"),
        (
            {"schema_": [{"name": "t", "quality": [{"metric": "completeness", "mustBe": 0}]}]},
            "schema[0].quality[0] (t): metric 'completeness' is not an ODCS library metric",
        ),
        (
            {"schema_": [{"name": "t", "quality": [{"metric": "rowCount"}]}]},
            "schema[0].quality[0] (t): needs exactly one operator",
        ),
        (
            {
                "schema_": [
                    {"name": "t", "quality": [{"metric": "rowCount", "mustBe": 1, "mustBeLessThan": 3}]}
                ]
            },
            "found 2 (mustBe, mustBeLessThan)",
        ),
        (
            {"schema_": [{"name": "t", "quality": [{"metric": "rowCount", "mustBe": "many"}]}]},
            "mustBe must be a number, got 'many'",
        ),
        (
            {"schema_": [{"name": "t", "quality": [{"metric": "rowCount", "mustBeBetween": [9, 1]}]}]},
            "mustBeBetween must list the smaller number first",
        ),
        (
            {"schema_": [{"name": "t", "quality": [{"type": "magic"}]}]},
            "type 'magic' is not an ODCS quality type",
        ),
        (
            {"schema_": [{"name": "t", "quality": [{"mustBe": 0}]}]},
            "schema[0].quality[0] (t): library quality check needs a metric",
        ),
        (
            {"customProperties": [{"property": "floe", "value": [1]}]},
            "customProperties[0] floe: value must be a mapping of floe settings, got a list",
        ),
        (
            {"schema_": [table("t", customProperties=floe({"aliases": "x"}))]},
            "schema[0].customProperties[0] floe.aliases: must be a list of non-empty strings",
        ),
        (
            {"schema_": [table("t", customProperties=floe({"asset": ""}))]},
            "floe.asset: must be a non-empty string",
        ),
        (
            {
                "schema_": [
                    {
                        "name": "t",
                        "quality": [
                            {"metric": "rowCount", "mustBe": 0, "customProperties": floe({"weight": "high"})}
                        ],
                    }
                ]
            },
            "schema[0].quality[0].customProperties[0] floe.weight: must be a number >= 0, got 'high'",
        ),
        ({"servers": [{"server": "db"}]}, "servers[0]: missing required key 'type'"),
        ({"team": "sales"}, "team: Input should be a valid dictionary or instance of Team, got 'sales'"),
    ],
)
def test_specific_error_messages(fields: dict[str, Any], message: str) -> None:
    assert message in error_of(**fields)


@pytest.mark.parametrize(
    ("sla", "message"),
    [
        (
            {"property": "latency", "value": 2, "unit": "fortnight"},
            "unit 'fortnight' is not a time unit (use ms, s, m, h, d, w or y)",
        ),
        (
            {"property": "latency", "value": 4},
            "value 4 has no unit; add a unit (ms, s, m, h, d, w or y) or write an ISO-8601 duration such as 'PT6H'",
        ),
        (
            {"property": "availability", "value": "150%"},
            "value '150%' is not an availability between 0 and 100%",
        ),
    ],
)
def test_an_sla_value_floe_cannot_use_is_a_warning_never_a_refusal(sla: dict[str, Any], message: str) -> None:
    """The contract loads (its tables, columns and other SLAs are monitored); the property is not evaluated,
    once in the warnings and in what explain shows for it."""
    contract = load(schema_=ORDERS, slaProperties=[sla, {"property": "retention", "value": 1, "unit": "y"}])
    (asset,) = contract.assets
    assert (asset.freshness, asset.availability) == (None, None)
    assert asset.retention is not None
    warned = [w for w in contract.warnings if w.startswith(f"slaProperties[0] {sla['property']}:")]
    assert warned == [f"slaProperties[0] {sla['property']}: {message}; not evaluated"]
    note = next(n for n in asset.sla_notes if n.index == 0)
    assert (note.evaluated_by, note.detail) == (None, f"not evaluated: {message}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty document"),
        ("- a\n- b\n", "the top level is a list, expected a mapping"),
        ("dataContractSpecification: 1.1.0\nid: x\n", "apiVersion is missing (this is a datacontract.com"),
        ("apiVersion: v3.1.0\n---\nkind: x\n", "YAML syntax error at line 2"),
    ],
)
def test_documents_that_are_not_odcs(text: str, message: str) -> None:
    with pytest.raises(ContractError, match=re.escape(message)):
        load_contract_text(text, "x.yaml")


def test_dates_stay_strings_and_a_v30_team_list_loads() -> None:
    text = yaml.safe_dump({**BASE, "schema": ORDERS}) + (
        "contractCreatedTs: 2022-11-15T02:59:43+00:00\n"
        "team:\n  - username: ann\n    role: owner\n    dateIn: 2022-08-02\n"
    )
    asset = load_contract_text(text, "dates.yaml").assets[0]
    assert (asset.owner, asset.team) == ("ann", None)


# --- directories and lint ---------------------------------------------------------------------------


def write(folder: Path, filename: str, **fields: Any) -> None:
    if "schema_" in fields:
        fields["schema"] = fields.pop("schema_")
    (folder / filename).write_text(yaml.safe_dump({**BASE, **fields}, sort_keys=False))


def test_load_directory_keeps_going_past_bad_files(tmp_path: Path) -> None:
    write(tmp_path, "b.odcs.yaml", id="b", schema_=[table("b", "id")])
    write(tmp_path, "a.yml", id="a", schema_=[table("a", "id")])
    (tmp_path / "c.yaml").write_text("apiVersion: v3.1.0\nkind: [\n")
    (tmp_path / "d.yaml").write_bytes(b"\xff\xfe bad")
    (tmp_path / "notes.txt").write_text("not a contract")
    (tmp_path / ".hidden.yaml").write_text("ignored: true")
    contracts, errors = load_directory(tmp_path)
    assert [c.contract_id for c in contracts] == ["a", "b"]
    assert [(Path(e.source).name, e.problem.split(":")[0]) for e in errors] == [
        ("c.yaml", "YAML syntax error at line 3, column 1"),
        ("d.yaml", "not UTF-8 text (invalid byte at offset 0)"),
    ]


def test_load_directory_of_a_missing_folder(tmp_path: Path) -> None:
    contracts, errors = load_directory(tmp_path / "missing")
    assert contracts == []
    assert [e.problem for e in errors] == ["not a directory"]


LINT_RULES = (override_problems, probe_problems)  # as `floe contracts lint` runs them


def test_lint_demo_contracts_is_clean() -> None:
    # as `floe dev` runs them: the demo's order service listens on loopback, which floe dev allows probes to reach
    dev = ProbeGuard.from_settings(["127.0.0.0/8", "::1"])
    report = lint_directory(DEMO_CONTRACTS, (override_problems, lambda a: probe_problems(a, dev)))
    assert (report.files_checked, len(report.contracts), len(report.assets)) == (3, 3, 3)
    assert report.errors == ()
    assert report.warnings == ()
    assert report.ok
    # anywhere else (default allow-list): the loopback probe is not evaluated, and lint says so
    default = lint_directory(DEMO_CONTRACTS, LINT_RULES)
    assert [w.split(": ", 1)[1] for w in default.warnings] == [
        "sales.orders: availability not evaluated: probe target not allowed: 127.0.0.1 is a loopback address "
        "(allow it in checks.probe_allow)"
    ]


def test_lint_reports_file_errors_warnings_and_clashes_across_contracts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "1-orders.yaml",
        id="orders",
        name="orders",
        schema_=[table("orders", "id", customProperties=floe({"asset": "sales.orders"}))],
    )
    write(tmp_path, "2-orders-copy.yaml", id="orders", name="orders-copy", schema_=[table("other", "id")])
    write(
        tmp_path,
        "3-legacy.yaml",
        id="legacy",
        name="legacy",
        schema_=[table("SALES.ORDERS", "id", physicalName="legacy_orders")],
    )
    write(
        tmp_path,
        "4-returns.yaml",
        id="returns",
        name="returns",
        schema_=[table("orders", "id", customProperties=floe({"asset": "returns.orders"}))],
    )
    write(tmp_path, "5-empty.yaml", id="empty", name="empty")
    (tmp_path / "6-broken.yaml").write_text("apiVersion: v2.2.0\n")

    report = lint_directory(tmp_path, LINT_RULES)
    assert report.files_checked == 6
    assert [c.contract_id for c in report.contracts] == ["orders", "orders", "legacy", "returns", "empty"]
    assert len(report.assets) == 4
    assert not report.ok
    problems = [(Path(e.source).name, e.problem) for e in report.errors]
    assert problems == [
        ("6-broken.yaml", "not an ODCS v3 document: apiVersion 'v2.2.0' is not supported, use v3.x"),
        (
            "2-orders-copy.yaml",
            f"contract id 'orders' is also used by {tmp_path / '1-orders.yaml'}; only one can be monitored",
        ),
    ]
    # implicit names (table and physical names) shared between contracts are no load error: the name alone
    # is ambiguous (or belongs to another asset's id), events with the asset id or full identity resolve
    assert report.warnings == (
        f"{tmp_path / '5-empty.yaml'}: no schema objects: the contract describes no tables, so it has no monitored assets",
        f"{tmp_path / '3-legacy.yaml'}: 'SALES.ORDERS' (a name of asset 'legacy_orders') is the id or alias of "
        "asset 'sales.orders' of contract 'orders': events naming only 'SALES.ORDERS' go to that asset",
        f"{tmp_path / '4-returns.yaml'}: 'orders' names asset 'returns.orders' and asset 'sales.orders' of "
        "contract 'orders': an event naming only 'orders' is ambiguous and refused; events with the full dataset "
        "identity (servers) or the asset id resolve",
    )


def test_lint_of_a_missing_folder(tmp_path: Path) -> None:
    report = lint_directory(tmp_path / "nope", LINT_RULES)
    assert (report.files_checked, report.contracts, report.ok) == (0, (), False)
    assert [e.problem for e in report.errors] == ["not a directory"]


def test_tables_with_equal_columns_and_slas_share_them_and_stay_independent() -> None:
    # bench/state.py: equal sub-objects and fields sets are shared between assets (memory at 100,000 assets)
    text = (
        "apiVersion: v3.1.0\nkind: DataContract\nid: share\nname: share\nversion: 1.0.0\nstatus: active\n"
        "schema:\n"
        "  - name: a\n    properties: [{name: id, logicalType: integer, required: true}]\n"
        "  - name: b\n    properties: [{name: id, logicalType: integer, required: true}]\n"
        "slaProperties:\n  - property: latency\n    value: 1\n    unit: h\n"
    )
    a, b = load_contract_text(text, "share.yaml").assets
    assert a.columns is b.columns and a.freshness is b.freshness and a.sla_notes is b.sla_notes
    assert a.columns[0].model_fields_set is b.columns[0].model_fields_set
    assert a.columns == (ColumnSpec(name="id", logical_type="integer", required=True),)
    assert a.freshness == FreshnessSla(threshold_s=3600)
    # assets are immutable; a copy with a change leaves the others as they were
    with pytest.raises(AttributeError):
        a.owner = "someone"  # type: ignore[misc]
    c = a.replace(owner="someone", nested={})
    assert c.owner == "someone" and b.owner is None and a.owner is None and c.columns == a.columns


def test_a_contract_file_is_read_only_up_to_the_document_bound(tmp_path: Path) -> None:
    """A huge file in the contracts directory (a sparse 200 MiB one here; gigabytes on a volume) was read whole
    into memory, twice (bytes, then text), before its size was judged: a processor or sink OOM at every start.
    It is refused after reading at most the bound."""
    import tracemalloc

    from floe_stream.contracts.document import MAX_DOCUMENT_CHARS
    from floe_stream.contracts.loader import load_directory

    with (tmp_path / "huge.yaml").open("wb") as f:
        f.truncate(200 * 1024 * 1024)
    tracemalloc.start()
    try:
        contracts, errors = load_directory(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert contracts == []
    assert [e.problem for e in errors] == [
        f"document too large: more than the {4 * MAX_DOCUMENT_CHARS:,} bytes floe reads"
    ]
    assert peak < 8 * MAX_DOCUMENT_CHARS  # the bound, not the file
