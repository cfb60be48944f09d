"""Schema drift: the actual schema (catalog commit, producer, OpenLineage schema facet) against the contract."""

from __future__ import annotations

import re
from typing import Any

from floe_stream.contracts.models import ColumnSpec, MonitoredAsset
from floe_stream.processors.bounds import SAMPLE, SAMPLE_CHARS
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.bounds import clip
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

# Linear in the type's length (no nested quantifiers over the same characters); the type names of an input
# are at most topics.bounds.TEXT_MAX characters anyway.
_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_STRING_PARAMS = {
    "varchar": "string",
    "char": "string",
    "character varying": "string",
    "string": "string",
    "fixed": "binary",
}
ADDED_ONE_BY_ONE = 10
"""Added columns reported one finding each; more are one finding ("N columns added", with a sample)."""


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
    head, paren, _ = t.partition("(")  # a parameterized name: varchar(10), fixed[16] spelled fixed(16)
    if paren and t.endswith(")") and (base := _STRING_PARAMS.get(head.strip())) is not None:
        return base
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


_INT_RANK = {"int": 0, "long": 1}
_FLOAT_RANK = {"float": 0, "double": 1}


def widening(expected: str | None, actual: str | None) -> bool:
    """A physical-type change every reader of the old type can take (Iceberg's safe promotions): int → long,
    float → double, decimal(P,S) → decimal(P',S) with P' > P. (decimal → double loses precision: not one.)"""
    if expected is None or actual is None:
        return False
    for ranks in (_INT_RANK, _FLOAT_RANK):
        if expected in ranks and actual in ranks:
            return ranks[actual] > ranks[expected]
    e, a = _DECIMAL_NORM.match(expected), _DECIMAL_NORM.match(actual)
    return bool(e and a and e.group(2) == a.group(2) and int(a.group(1)) > int(e.group(1)))


_DECIMAL_NORM = re.compile(r"^decimal\((\d+),(\d+)\)$")


_new = tuple.__new__


def _finding(
    kind: DriftKind, name: str, severity: Severity, message: str, expected: str, actual: str
) -> Finding:
    # tuple.__new__ with every field in order (NamedTuple's own __new__ is a Python function): once per drift
    # finding, bench/processor_cpu.py (drift); the order is pinned by tests/unit/test_hot_path.py
    return _new(
        Finding, (f"{SCOPE}{kind}:{name}", severity, message, name, expected, actual, kind, None, None)
    )


Expected = dict[str, tuple[ColumnSpec, str | None, str | None]]
"""A contract schema ready to compare: lower-cased column name → (column, normalized physical type, logical
type)."""

_PLAN_COLUMNS = 4_000
"""Contract columns the prepared schemas hold at most (~280 B each, ~1.1 MB: bench/state.py's 250 MB budget has
little room): past it they are all forgotten and prepared again as updates come."""


class _Prepared:
    """Contract schemas prepared once, not at every update (bench/processor_cpu.py, drift: the lower-cased
    names and normalized types of an asset's columns do not change between its events). Keyed by the identity
    of the asset's columns tuple (immutable, of frozen columns; equal tuples are one object across assets,
    contracts/interning.py) and holding it, so the key is never reused while cached; bounded by
    :data:`_PLAN_COLUMNS` columns."""

    def __init__(self) -> None:
        self.plans: dict[int, tuple[tuple[ColumnSpec, ...], Expected, str]] = {}
        self.columns = 0

    def get(self, expected: tuple[ColumnSpec, ...]) -> tuple[Expected, str]:
        """(the prepared schema, its column names for a check result)."""
        hit = self.plans.get(id(expected))
        if hit is not None and hit[0] is expected:
            return hit[1], hit[2]
        want = _expected(expected)
        names = _names(expected)
        if expected.__class__ is tuple:  # immutable: safe to keep
            if self.columns + len(expected) > _PLAN_COLUMNS:
                self.plans.clear()
                self.columns = 0
            self.plans[id(expected)] = (expected, want, names)
            self.columns += len(expected)
        return want, names


def _expected(expected: tuple[ColumnSpec, ...] | list[ColumnSpec]) -> Expected:
    want = {(c.physical_name or c.name).lower(): c for c in expected}
    return {k: (c, normalize_physical(c.physical_type), _contract_logical(c)) for k, c in want.items()}


_PREPARED = _Prepared()

_OBSERVED_TYPES = 4096
_observed: dict[str | None, tuple[str | None, str | None]] = {}
"""Observed type name → (normalized physical, logical): type names repeat across events (bench/processor_cpu.py,
drift); at most :data:`_OBSERVED_TYPES` are kept (the names are input)."""


def _observed_type(type_name: str | None) -> tuple[str | None, str | None]:
    hit = _observed.get(type_name)
    if hit is None:
        hit = (normalize_physical(type_name), logical_of(type_name))
        if len(_observed) < _OBSERVED_TYPES:
            _observed[type_name] = hit
    return hit


def diff_schema(
    expected: tuple[ColumnSpec, ...],
    actual: tuple[ObservedColumn, ...] | list[ObservedColumn],
    nested: dict[str, tuple[ColumnSpec, ...]] | None = None,
    prefix: str = "",
) -> list[Finding]:
    """One finding per drift, with expected vs actual. Column names compare case-insensitively; nested types
    (struct fields, list elements, map values) are compared field by field as ``parent.child``.

    Severities: a removed required column CRITICAL, another removed column ERROR; a type change ERROR,
    a safe widening (int → long, float → double, more decimal precision) INFO; a required column that
    became nullable ERROR, an optional one that became required INFO; a lost primary key or unique
    constraint WARNING, a new one INFO; an added column WARNING."""
    want = _PREPARED.get(expected)[0] if not prefix else _expected(expected)
    have = {c.name.lower(): c for c in actual}
    out: list[Finding] = []
    for key, (col, exp_phys, exp_log) in want.items():
        name = f"{prefix}{col.name}"
        obs = have.get(key)
        if obs is None:
            declared = f"{name} {col.physical_type or col.logical_type or ''}".strip()
            severity = Severity.CRITICAL if col.required else Severity.ERROR
            what = "required column" if col.required else "column"
            out.append(
                _finding(
                    DriftKind.COLUMN_REMOVED,
                    name,
                    severity,
                    f"{what} '{name}' is in the contract but missing from the table",
                    declared,
                    "absent",
                )
            )
            continue
        act_phys, act_log = _observed_type(obs.type)
        changed = (exp_log is not None and act_log is not None and exp_log != act_log) or (
            exp_phys is not None and act_phys is not None and exp_phys != act_phys
        )
        if changed:
            exp_t = col.physical_type or col.logical_type or "?"
            if widening(exp_phys, act_phys):
                out.append(
                    _finding(
                        DriftKind.TYPE_CHANGED,
                        name,
                        Severity.INFO,
                        f"column '{name}' widened from {exp_t} to {obs.type} (safe for readers)",
                        exp_t,
                        obs.type,
                    )
                )
            else:
                out.append(
                    _finding(
                        DriftKind.TYPE_CHANGED,
                        name,
                        Severity.ERROR,
                        f"column '{name}' changed type from {exp_t} to {obs.type}",
                        exp_t,
                        obs.type,
                    )
                )
        elif nested and name in nested and obs.fields is not None:
            out += diff_schema(nested[name], obs.fields, nested, f"{name}.")
        if col.required and obs.nullable is True:
            out.append(
                _finding(
                    DriftKind.NULLABILITY_CHANGED,
                    name,
                    Severity.ERROR,
                    f"column '{name}' is required by the contract but nullable in the table",
                    "required (not null)",
                    "nullable",
                )
            )
        elif not col.required and obs.nullable is False and not col.primary_key:
            out.append(
                _finding(
                    DriftKind.NULLABILITY_CHANGED,
                    name,
                    Severity.INFO,
                    f"column '{name}' is optional in the contract but required (not null) in the table",
                    "nullable",
                    "required (not null)",
                )
            )
        if obs.primary_key is None and obs.unique is None:
            continue  # no constraint reported (the common case)
        for flag, label in (("primary_key", "primary key"), ("unique", "unique")):
            want_flag, seen = getattr(col, flag), getattr(obs, flag)
            if seen is None or bool(want_flag) == seen:
                continue
            if want_flag:
                out.append(
                    _finding(
                        DriftKind.CONSTRAINT_CHANGED,
                        f"{name}:{flag}",
                        Severity.WARNING,
                        f"column '{name}' is {label} in the contract but not in the table",
                        label,
                        f"not {label}",
                    )
                )
            else:
                out.append(
                    _finding(
                        DriftKind.CONSTRAINT_CHANGED,
                        f"{name}:{flag}",
                        Severity.INFO,
                        f"column '{name}' is {label} in the table but not in the contract",
                        f"not {label}",
                        label,
                    )
                )
    added = [obs for key, obs in have.items() if key not in want]
    if len(added) > ADDED_ONE_BY_ONE:
        out.append(_added_columns(added, prefix))
        return out
    for obs in added:
        name = f"{prefix}{obs.name}"
        out.append(
            _finding(
                DriftKind.COLUMN_ADDED,
                name,
                Severity.WARNING,
                f"column '{name}' ({obs.type}) is in the table but not in the contract",
                "absent",
                f"{name} {obs.type}",
            )
        )
    return out


DECLARED_SCHEMA_SKIPPED = Evaluation(
    check_type=CheckType.SCHEMA_DRIFT,
    status=CheckStatus.SKIPPED,
    message="skipped: the schema facet lists columns without types, a declared schema (e.g. dbt-ol without a "
    "fresh catalog.json), not the table's observed one; not compared",
)


def _added_columns(added: list[ObservedColumn], prefix: str) -> Finding:
    """One finding for many added columns: their count and the first few (in the table's order)."""
    sample = ", ".join(f"{prefix}{c.name} ({c.type})" for c in added[:SAMPLE])
    more = f", … (+{len(added) - SAMPLE} more)" if len(added) > SAMPLE else ""
    listed = clip(f"{sample}{more}", SAMPLE_CHARS)
    return Finding(
        key=f"{SCOPE}{DriftKind.COLUMN_ADDED}:{prefix}*",
        severity=Severity.WARNING,
        message=f"{len(added)} columns are in the table but not in the contract: {listed}",
        element=prefix.removesuffix(".") or None,
        expected="absent",
        actual=f"{len(added)} columns added",
        drift_kind=DriftKind.COLUMN_ADDED,
        context={"columns_added": str(len(added))},
    )


def _names(columns: tuple[ColumnSpec, ...] | tuple[ObservedColumn, ...] | list[ObservedColumn]) -> str:
    """The column names of a schema, for a check result: a wide table's list is cut (its count stays)."""
    if len(columns) <= 100:
        return ", ".join(c.name for c in columns)
    return f"{len(columns)} columns: " + clip(", ".join(c.name for c in columns[:100]), SAMPLE_CHARS)


_RANK = {s: s.rank for s in Severity}


class SchemaDriftCheck:
    check_type = CheckType.SCHEMA_DRIFT

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        if update.columns is None or not asset.columns:
            if update.declared_schema and asset.columns:  # rare: say why this update's schema is not judged
                return [DECLARED_SCHEMA_SKIPPED]
            return []
        if (
            update.sequence is not None
            and state.last_sequence is not None
            and update.sequence < state.last_sequence
        ):
            return []  # an older snapshot arriving late must not reopen or resolve anything
        findings = diff_schema(asset.columns, update.columns, asset.nested)
        # Once per update with a schema (bench/processor_cpu.py, drift): the contract's column names prepared
        # (by diff_schema just now), the worst severity in one loop (the first of the highest rank, as max()
        # would), the Evaluation by tuple.__new__ with every field in order (pinned by test_hot_path.py).
        expected = _PREPARED.get(asset.columns)[1]
        actual = _names(update.columns)
        worst: Severity | None = None
        for f in findings:
            sev = f.severity
            if sev and (worst is None or _RANK[sev] > _RANK[worst]):
                worst = sev
        if findings:
            status, message = CheckStatus.FAIL, "; ".join([f.message for f in findings])
        else:
            status, message = CheckStatus.PASS, "schema matches the contract"
        fields = (CheckType.SCHEMA_DRIFT, status, tuple(findings), SCOPE, worst, float(len(findings)), None)
        return [_new(Evaluation, (*fields, expected, actual, message, None))]

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        if not asset.columns:
            return []
        return [
            {
                "check": "schema_drift",
                "evaluates": f"{len(asset.columns)} declared column(s)",
                "measured": "observed columns of each update (Iceberg schema, OpenLineage schema facet, materialization); "
                "a schema facet without column types is a declared schema (dbt-ol without catalog.json), "
                "not compared",
                "severity": "removed/type-changed column ERROR, added column WARNING",
            }
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        return []
