"""Complete schema drift: removed required columns, nullability both ways, constraints, nested Iceberg
types field by field, lossy changes told apart from safe widenings."""

from __future__ import annotations

from typing import Any

import yaml

from floe_stream.contracts.loader import load_contract_text
from floe_stream.contracts.models import ColumnSpec, MonitoredAsset
from floe_stream.processors.checks.drift import diff_schema, widening
from floe_stream.processors.normalize import iceberg_columns
from floe_stream.topics import DriftKind, IcebergField, ObservedColumn, Severity

CONTRACT: dict[str, Any] = {
    "apiVersion": "v3.1.0", "kind": "DataContract", "id": "c", "name": "c", "version": "1", "status": "active",
    "schema": [{"name": "orders", "properties": [
        {"name": "id", "physicalType": "long", "required": True, "primaryKey": True},
        {"name": "amount", "physicalType": "decimal(12,2)"},
        {"name": "qty", "physicalType": "int"},
        {"name": "code", "physicalType": "string", "required": True},
        {"name": "note", "physicalType": "string"},
        {"name": "address", "logicalType": "object", "physicalType": "struct", "properties": [
            {"name": "city", "physicalType": "string", "required": True},
            {"name": "zip", "physicalType": "int"},
        ]},
        {"name": "tags", "logicalType": "array", "physicalType": "list", "items": {"physicalType": "string"}},
    ]}],
}  # fmt: skip


def asset() -> MonitoredAsset:
    (a,) = load_contract_text(yaml.safe_dump(CONTRACT), "c.yaml").assets
    return a


def findings(
    actual: tuple[ObservedColumn, ...],
) -> dict[tuple[DriftKind | None, str | None], Severity | None]:
    a = asset()
    return {(f.drift_kind, f.element): f.severity for f in diff_schema(a.columns, actual, a.nested)}


ICEBERG = [
    IcebergField(id=1, name="id", required=True, type="long"),
    IcebergField(id=2, name="amount", type="double"),  # decimal(12,2) → double: loses precision
    IcebergField(id=3, name="qty", type="long"),  # int → long: safe widening
    IcebergField(id=5, name="note", required=True, type="string"),  # optional → required
    IcebergField(
        id=6,
        name="address",
        type={
            "type": "struct",
            "fields": [
                {
                    "id": 10,
                    "name": "city",
                    "required": False,
                    "type": "string",
                },  # required → nullable (nested)
                {"id": 11, "name": "zip", "required": False, "type": "string"},  # int → string (nested)
                {"id": 12, "name": "street", "required": False, "type": "string"},  # added (nested)
            ],
        },
    ),
    IcebergField(
        id=7,
        name="tags",
        type={"type": "list", "element-id": 13, "element": "int", "element-required": False},
    ),
]  # code (required) removed


def test_nested_iceberg_schema_against_the_contract() -> None:
    got = findings(iceberg_columns(ICEBERG, identifier_ids=[3]))
    assert got == {
        (DriftKind.TYPE_CHANGED, "amount"): Severity.ERROR,
        (DriftKind.TYPE_CHANGED, "qty"): Severity.INFO,
        (DriftKind.COLUMN_REMOVED, "code"): Severity.CRITICAL,
        (DriftKind.NULLABILITY_CHANGED, "note"): Severity.INFO,
        (DriftKind.NULLABILITY_CHANGED, "address.city"): Severity.ERROR,
        (DriftKind.TYPE_CHANGED, "address.zip"): Severity.ERROR,
        (DriftKind.COLUMN_ADDED, "address.street"): Severity.WARNING,
        (DriftKind.TYPE_CHANGED, "tags.element"): Severity.ERROR,
        (DriftKind.CONSTRAINT_CHANGED, "id:primary_key"): Severity.WARNING,  # the key moved to qty
        (DriftKind.CONSTRAINT_CHANGED, "qty:primary_key"): Severity.INFO,
    }


def test_no_identifier_fields_means_constraints_unknown() -> None:
    got = findings(iceberg_columns(ICEBERG))
    assert not any(kind == DriftKind.CONSTRAINT_CHANGED for kind, _ in got)


def test_unique_reported_by_a_producer() -> None:
    a = MonitoredAsset(asset_id="a", contract_id="c", contract_name="c", contract_version="1", table="t",
                       columns=(ColumnSpec(name="email", unique=True),))  # fmt: skip
    lost = diff_schema(a.columns, (ObservedColumn(name="email", type="string", unique=False),))
    assert [(f.drift_kind, f.severity) for f in lost] == [(DriftKind.CONSTRAINT_CHANGED, Severity.WARNING)]


def test_widenings() -> None:
    assert (
        widening("int", "long") and widening("float", "double") and widening("decimal(10,2)", "decimal(12,2)")
    )
    assert not widening("long", "int")
    assert not widening("decimal(12,2)", "double")
    assert not widening("decimal(10,2)", "decimal(12,3)")
