"""An ODCS schema object's properties → :class:`ColumnSpec` (and nested properties by column path), with the
quality rules declared on the table and on each column."""

from __future__ import annotations

from open_data_contract_standard.model import SchemaObject, SchemaProperty

from floe_stream.contracts.document import DocumentProblem, Problems, required
from floe_stream.contracts.models import ColumnSpec, QualityRule
from floe_stream.contracts.quality import named, quality_rules

__all__ = ["LOGICAL_TYPES", "column_names", "columns_and_rules"]

LOGICAL_TYPES = ("string", "date", "timestamp", "time", "number", "integer", "object", "array", "boolean")
_LOGICAL_TYPE_HINTS = {
    "decimal": "number",
    "double": "number",
    "float": "number",
    "int": "integer",
    "long": "integer",
    "bigint": "integer",
    "datetime": "timestamp",
    "bool": "boolean",
    "varchar": "string",
    "text": "string",
}


def columns_and_rules(
    obj: SchemaObject, path: str, table: str, warnings: list[str]
) -> tuple[tuple[ColumnSpec, ...], tuple[QualityRule, ...], dict[str, tuple[ColumnSpec, ...]]]:
    """(columns, quality rules, nested properties by column path) of one table."""
    columns: list[ColumnSpec] = []
    nested: dict[str, tuple[ColumnSpec, ...]] = {}
    problems = Problems()
    rules: list[QualityRule] = []
    with problems.each():
        rules += quality_rules(obj.quality, path, table, None, warnings)
    declared: dict[str, int] = {}
    for j, prop in enumerate(obj.properties or []):
        where = f"{path}.properties[{j}]"
        with problems.each():
            column = _column(prop, where, table)
            if column.name in declared:
                raise DocumentProblem(
                    f"{where} ({table}.{column.name}): column declared twice (also properties[{declared[column.name]}])"
                )
            declared[column.name] = j
            columns.append(column)
            _nested(prop, column.name, where, table, nested)
        with problems.each():
            rules += quality_rules(prop.quality, where, f"{table}.{prop.name}", prop.name, warnings)
    problems.raise_any()
    return tuple(columns), named(rules), nested


def column_names(obj: SchemaObject) -> set[str]:
    """Every name (logical and physical) of the table's top-level properties."""
    return {name for prop in obj.properties or [] for name in (prop.name, prop.physicalName) if name}


def _column(prop: SchemaProperty, where: str, table: str) -> ColumnSpec:
    name = required(prop.name, f"{where} ({table})", "name")
    logical = prop.logicalType
    if logical is not None and logical not in LOGICAL_TYPES:
        hint = _LOGICAL_TYPE_HINTS.get(logical.lower())
        use = f"use {hint!r}" if hint else f"use one of {', '.join(LOGICAL_TYPES)}"
        raise DocumentProblem(
            f"{where} ({table}.{name}): logicalType {logical!r} is not an ODCS logical type; {use}"
        )
    return ColumnSpec(
        name=name,
        physical_name=prop.physicalName if prop.physicalName and prop.physicalName != name else None,
        logical_type=logical,
        physical_type=prop.physicalType,
        required=bool(prop.required),
        unique=bool(prop.unique),
        primary_key=bool(prop.primaryKey),
    )


def _nested(
    prop: SchemaProperty, path: str, where: str, table: str, out: dict[str, tuple[ColumnSpec, ...]]
) -> None:
    """Nested properties of ``prop`` (object properties; an array's items as 'element'), by column path."""
    children: list[tuple[SchemaProperty, str]] = [
        (child, f"{where}.properties[{k}]") for k, child in enumerate(prop.properties or [])
    ]
    if prop.items is not None:
        children.append(
            (prop.items.model_copy(update={"name": prop.items.name or "element"}), f"{where}.items")
        )
    if not children:
        return
    specs = []
    problems = Problems()
    for child, at in children:
        with problems.each():
            spec = _column(child, at, f"{table}.{path}")
            specs.append(spec)
            _nested(child, f"{path}.{spec.name}", at, table, out)
    problems.raise_any()
    out[path] = tuple(specs)
