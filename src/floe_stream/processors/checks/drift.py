"""Schema drift: the actual schema (catalog commit, producer, OpenLineage schema facet) against the contract."""

from __future__ import annotations

import re

from floe_stream.contracts.models import ColumnSpec, MonitoredAsset
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.enums import CheckStatus, CheckType, DriftKind, Severity
from floe_stream.topics.materialization import ObservedColumn

SCOPE = "schema_drift:"

# Physical type names normalized to Iceberg's vocabulary (SQL, Spark, Arrow, Avro spellings).
_PHYSICAL = {
    "boolean": "boolean", "bool": "boolean",
    "int": "int", "integer": "int", "int4": "int", "int32": "int",
    "long": "long", "bigint": "long", "int8": "long", "int64": "long",
    "smallint": "int", "tinyint": "int", "short": "int",
    "float": "float", "real": "float", "float4": "float", "float32": "float",
    "double": "double", "float8": "double", "float64": "double", "double precision": "double",
    "string": "string", "text": "string", "varchar": "string", "char": "string", "uuid": "uuid",
    "date": "date", "time": "time",
    "timestamp": "timestamp", "timestamp_ntz": "timestamp", "timestamp without time zone": "timestamp",
    "timestamptz": "timestamptz", "timestamp_ltz": "timestamptz", "timestamp with time zone": "timestamptz",
    "timestamp_ns": "timestamp_ns", "timestamptz_ns": "timestamptz_ns",
    "binary": "binary", "bytea": "binary", "bytes": "binary", "fixed": "binary",
    "struct": "struct", "list": "list", "array": "list", "map": "map",
}  # fmt: skip

# Iceberg type → ODCS logical type.
_LOGICAL = {
    "boolean": "boolean", "int": "integer", "long": "integer", "float": "number", "double": "number",
    "decimal": "number", "string": "string", "uuid": "string", "binary": "string", "date": "date",
    "time": "time", "timestamp": "timestamp", "timestamptz": "timestamp", "timestamp_ns": "timestamp",
    "timestamptz_ns": "timestamp", "struct": "object", "map": "object", "list": "array",
}  # fmt: skip

_LOGICAL_ALIASES = {
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "decimal": "number",
}

_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_PARAM = re.compile(r"^([a-z_ ]+?)\s*\(.*\)$")


def normalize_physical(type_name: str | None) -> str | None:
    """Iceberg-vocabulary name of a physical type, or None when it is not a type we can compare."""
    if not type_name:
        return None
    t = type_name.strip().lower()
    m = _DECIMAL.match(t)
    if m:
        return f"decimal({m.group(1)},{m.group(2)})"
    if t in _PHYSICAL:
        return _PHYSICAL[t]
    m = _PARAM.match(t)
    if m and m.group(1).strip() in ("varchar", "char", "character varying", "fixed", "string"):
        return "string" if m.group(1).strip() != "fixed" else "binary"
    if t.startswith(("struct<", "array<", "list<", "map<")):
        return _PHYSICAL[t.split("<", 1)[0]]
    return None


def logical_of(type_name: str | None) -> str | None:
    """ODCS logical type of an observed (physical or logical) type name."""
    if not type_name:
        return None
    phys = normalize_physical(type_name)
    if phys is not None:
        return _LOGICAL.get(phys.split("(", 1)[0])
    t = type_name.strip().lower()
    if t in ("string", "date", "timestamp", "time", "number", "integer", "object", "array", "boolean"):
        return t
    return _LOGICAL_ALIASES.get(t)


def _contract_logical(col: ColumnSpec) -> str | None:
    if col.logical_type:
        return _LOGICAL_ALIASES.get(col.logical_type.lower(), col.logical_type.lower())
    return logical_of(col.physical_type)


def diff_schema(expected: tuple[ColumnSpec, ...], actual: tuple[ObservedColumn, ...]) -> list[Finding]:
    """One finding per drift, with expected vs actual. Column names compare case-insensitively."""
    want = {(c.physical_name or c.name).lower(): c for c in expected}
    have = {c.name.lower(): c for c in actual}
    out: list[Finding] = []
    for name, col in want.items():
        obs = have.get(name)
        if obs is None:
            out.append(
                Finding(
                    key=f"{SCOPE}{DriftKind.COLUMN_REMOVED}:{col.name}",
                    severity=Severity.ERROR,
                    message=f"column '{col.name}' is in the contract but missing from the table",
                    element=col.name,
                    expected=f"{col.name} {col.physical_type or col.logical_type or ''}".strip(),
                    actual="absent",
                    drift_kind=DriftKind.COLUMN_REMOVED,
                )
            )
            continue
        exp_phys, act_phys = normalize_physical(col.physical_type), normalize_physical(obs.type)
        exp_log, act_log = _contract_logical(col), logical_of(obs.type)
        changed = (exp_log is not None and act_log is not None and exp_log != act_log) or (
            exp_phys is not None and act_phys is not None and exp_phys != act_phys
        )
        if changed:
            exp_t = col.physical_type or col.logical_type or "?"
            out.append(
                Finding(
                    key=f"{SCOPE}{DriftKind.TYPE_CHANGED}:{col.name}",
                    severity=Severity.ERROR,
                    message=f"column '{col.name}' changed type from {exp_t} to {obs.type}",
                    element=col.name,
                    expected=exp_t,
                    actual=obs.type,
                    drift_kind=DriftKind.TYPE_CHANGED,
                )
            )
        if col.required and obs.nullable is True:
            out.append(
                Finding(
                    key=f"{SCOPE}{DriftKind.NULLABILITY_CHANGED}:{col.name}",
                    severity=Severity.ERROR,
                    message=f"column '{col.name}' is required by the contract but nullable in the table",
                    element=col.name,
                    expected="required (not null)",
                    actual="nullable",
                    drift_kind=DriftKind.NULLABILITY_CHANGED,
                )
            )
    for name, obs in have.items():
        if name not in want:
            out.append(
                Finding(
                    key=f"{SCOPE}{DriftKind.COLUMN_ADDED}:{obs.name}",
                    severity=Severity.WARNING,
                    message=f"column '{obs.name}' ({obs.type}) is in the table but not in the contract",
                    element=obs.name,
                    expected="absent",
                    actual=f"{obs.name} {obs.type}",
                    drift_kind=DriftKind.COLUMN_ADDED,
                )
            )
    return out


class SchemaDriftCheck:
    check_type = CheckType.SCHEMA_DRIFT

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        if update.columns is None or not asset.columns:
            return []
        if (
            update.sequence is not None
            and state.last_sequence is not None
            and update.sequence < state.last_sequence
        ):
            return []  # an older snapshot arriving late must not reopen or resolve anything
        findings = diff_schema(asset.columns, update.columns)
        worst = max((f.severity for f in findings if f.severity), key=lambda s: s.rank, default=None)
        expected = ", ".join(c.name for c in asset.columns)
        actual = ", ".join(c.name for c in update.columns)
        message = "; ".join(f.message for f in findings) if findings else "schema matches the contract"
        return [
            Evaluation(
                check_type=CheckType.SCHEMA_DRIFT,
                status=CheckStatus.FAIL if findings else CheckStatus.PASS,
                findings=tuple(findings),
                scope=SCOPE,
                severity=worst,
                metric=float(len(findings)),
                expected=expected,
                actual=actual,
                message=message,
            )
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        return []
