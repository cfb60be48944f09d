"""Read ODCS v3 data contracts (YAML) into the monitoring view: one :class:`MonitoredAsset` per table.

The YAML is parsed with the ``open-data-contract-standard`` pydantic models. Those models leave most
values unchecked, so everything floe relies on (apiVersion, logical types, SLA values and units, quality
operators, the ``floe`` custom property) is checked here. Every failure is a
``ContractError(source, problem)`` whose problem names the key, the table and what is wrong.

Rules worth knowing:

- Invalid ODCS is an error; valid ODCS that floe cannot evaluate (``text``/``sql``/``custom`` quality
  checks, a quality unit other than rows/percent, an unknown legacy ``rule``) is skipped with a warning
  in ``LoadedContract.warnings``. A contract with no schema objects loads with no assets and a warning.
- Freshness comes from the SLA property ``latency`` (synonym ``ly``) or ``freshness``. Its value is a
  number with a time unit (s, m, h, d, w, y; a year is 365 days, a month 30 days) or an ISO-8601
  duration such as ``PT6H``. A number without a unit is rejected: seconds and days would both be guesses.
- Availability comes from ``availability`` (synonym ``av``): ``"99.9%"``, ``99.9`` (a number above 1
  is a percentage) or ``0.999`` all give the ratio 0.999.
- An SLA's ``element`` (``table.column``, ``column`` or a comma list; default ``slaDefaultElement``)
  picks the tables it applies to; an SLA without an element applies to every table. An element that
  names no table of the contract is reported as a warning and the SLA is not attached there. When a
  table gets two SLAs of one kind, one naming it in ``element`` beats one without; otherwise the
  stricter wins, with a warning.
- The owner is the ``owner`` custom property if set, else the current team member (no ``dateOut``)
  whose role contains "owner", else the first current member.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

import isodate
import yaml
from open_data_contract_standard.model import (
    CustomProperty,
    DataQuality,
    OpenDataContractStandard,
    SchemaObject,
    SchemaProperty,
    Server,
    Team,
    TeamMember,
)
from pydantic import BaseModel, ValidationError

from floe_stream.contracts.extension import FloeExtension, did_you_mean, extension_problem, unknown_keys
from floe_stream.contracts.models import (
    AvailabilitySla,
    ColumnSpec,
    ContractError,
    FreshnessSla,
    LoadedContract,
    MonitoredAsset,
    QualityOperator,
    QualityRule,
    ServerRef,
)
from floe_stream.contracts.sla import (
    SLA_PROPERTIES,
    FrequencySla,
    LifecycleSla,
    ResponseSla,
    RetentionSla,
    SlaNote,
    TimeOfAvailabilitySla,
    canonical_property,
    parse_datetime,
)

__all__ = [
    "LOGICAL_TYPES",
    "availability_ratio",
    "contract_files",
    "duration_seconds",
    "interval_seconds",
    "load_contract",
    "load_contract_text",
    "load_directory",
]

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

_DAY = 86_400.0
_TIME_UNITS: dict[str, float] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600.0),
    **dict.fromkeys(("d", "day", "days"), _DAY),
    **dict.fromkeys(("w", "week", "weeks"), 7 * _DAY),
    **dict.fromkeys(("month", "months"), 30 * _DAY),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * _DAY),
}
_FRESHNESS_PROPERTIES = ("latency", "ly", "freshness")
_AVAILABILITY_PROPERTIES = ("availability", "av")

_METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")
_LEGACY_RULES = {"duplicateCount": "duplicateValues", "validValues": "invalidValues"}  # ODCS v3.0 names
_OPERATORS: tuple[QualityOperator, ...] = get_args(QualityOperator)
_QUALITY_UNITS: dict[str, Literal["rows", "percent"]] = {"rows": "rows", "percent": "percent"}
_NOT_EVALUATED_QUALITY_TYPES = ("text", "sql", "custom")
_Sla = TypeVar("_Sla", FreshnessSla, AvailabilitySla)
_T = TypeVar("_T")

# pydantic puts union members into error locations ("Team", "list[TeamMember]", "str"); ODCS keys never
# start with a capital letter or contain brackets.
_UNION_MEMBER = re.compile(r"^(?:[A-Z].*|.*\[.*|str|int|float|bool|none)$")


class _YamlLoader(yaml.CSafeLoader):
    """Safe loader that keeps dates and timestamps as the strings ODCS declares them to be."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


class _Invalid(Exception):
    """A problem in the document; :func:`load_contract_text` adds the source."""


# --- public API -------------------------------------------------------------------------------------


def load_contract_text(text: str, source: str) -> LoadedContract:
    """Build the monitoring view of one ODCS v3 YAML document; raise :class:`ContractError` if unusable."""
    warnings: list[str] = []
    try:
        return _build(_parse(text, warnings), source, warnings)
    except _Invalid as exc:
        raise ContractError(source, str(exc)) from None
    except ValidationError as exc:
        raise ContractError(source, _describe(exc)) from None


def load_contract(path: Path) -> LoadedContract:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(source, f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    except OSError as exc:
        raise ContractError(source, f"cannot read the file: {exc.strerror or exc}") from None
    return load_contract_text(text, source)


def contract_files(path: Path) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files in ``path`` and its sub-folders, sorted; hidden files and folders are
    left out."""
    return sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in (".yaml", ".yml")
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.is_file()
    )


def load_directory(path: Path) -> tuple[list[LoadedContract], list[ContractError]]:
    """Load every contract file in ``path``; a file that fails becomes an error and never stops the others."""
    if not path.is_dir():
        return [], [ContractError(str(path), "not a directory")]
    contracts: list[LoadedContract] = []
    errors: list[ContractError] = []
    for file in contract_files(path):
        try:
            contracts.append(load_contract(file))
        except ContractError as exc:
            errors.append(exc)
        except Exception as exc:  # a loader bug must not hide the other contracts
            errors.append(ContractError(str(file), f"unexpected {type(exc).__name__} while loading: {exc}"))
    return contracts, errors


def duration_seconds(value: object, unit: str | None = None) -> float:
    """Seconds in an SLA duration: a number with a time unit (``4`` + ``d``) or ISO-8601 (``PT6H``).

    Raises ValueError with a message that names the bad value or unit.
    """
    if isinstance(value, str) and value.strip().startswith("P"):
        text = value.strip()
        if unit:
            raise ValueError(f"value {text!r} is an ISO-8601 duration, so unit {unit!r} must be left out")
        try:
            parsed = isodate.parse_duration(text)
        except (isodate.ISO8601Error, ValueError):
            raise ValueError(
                f"value {text!r} is not a valid ISO-8601 duration (e.g. 'PT6H', 'P1D')"
            ) from None
        if isinstance(parsed, isodate.Duration):  # has years/months
            seconds = float(parsed.tdelta.total_seconds()) + float(parsed.years) * 365 * _DAY
            seconds += float(parsed.months) * 30 * _DAY
        else:
            seconds = float(parsed.total_seconds())
    else:
        number = _number(value, "a number with a unit or an ISO-8601 duration such as 'PT6H'")
        if not unit:
            raise ValueError(
                f"value {value!r} has no unit; add a unit (s, m, h, d, w, y) or write an ISO-8601 duration such as 'PT6H'"
            )
        factor = _TIME_UNITS.get(unit.strip().lower())
        if factor is None:
            raise ValueError(f"unit {unit!r} is not a time unit (use s, m, h, d, w or y)")
        seconds = number * factor
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"value {value!r} is not a positive duration")
    return seconds


_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def interval_seconds(value: object) -> float:
    """Seconds in a ``floe`` duration setting: a number of seconds, ``"6h"``, ``"30 min"`` or ``"PT6H"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return duration_seconds(value, "s")
    if isinstance(value, str):
        m = _NUMBER_UNIT.match(value)
        if m:
            return duration_seconds(m.group(1), m.group(2))
        return duration_seconds(value)
    raise ValueError(f"value {value!r} is not a duration (e.g. 3600, '6h', 'PT6H')")


def availability_ratio(value: object, unit: str | None = None) -> float:
    """Availability as a ratio: ``"99.9%"``, ``99.9`` (above 1 means percent) and ``0.999`` give 0.999."""
    percent = bool(unit) and str(unit).strip().lower() in ("%", "percent")
    if unit and not percent:
        raise ValueError(f"unit {unit!r} is not a percentage unit (use '%' or 'percent', or no unit)")
    number_part = value
    if isinstance(value, str) and value.strip().endswith("%"):
        number_part, percent = value.strip()[:-1], True
    number = _number(number_part, "a percentage such as '99.9%' or a ratio such as 0.999")
    ratio = round(number / 100, 12) if percent or number > 1 else number  # 99.9 / 100 → 0.999, not 0.99900…01
    if not 0 < ratio <= 1:
        raise ValueError(f"value {value!r} is not an availability between 0 and 100%")
    return ratio


# --- parsing ----------------------------------------------------------------------------------------


def _parse(text: str, warnings: list[str]) -> OpenDataContractStandard:
    try:
        doc = yaml.load(text, Loader=_YamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = (
            f" ({exc.context}, line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else ""
        )
        raise _Invalid(f"YAML syntax error{where}: {exc.problem or exc.context}{context}") from None
    except yaml.YAMLError as exc:
        raise _Invalid(f"YAML syntax error: {exc}") from None
    if doc is None:
        raise _Invalid("empty document: not an ODCS v3 contract")
    if not isinstance(doc, dict):
        raise _Invalid(f"not an ODCS v3 document: the top level is {_kind(doc)}, expected a mapping")
    api_version = doc.get("apiVersion")
    if api_version is None:
        hint = (
            " (this is a datacontract.com Data Contract Specification file, not ODCS)"
            if "dataContractSpecification" in doc
            else ""
        )
        raise _Invalid(f"not an ODCS v3 document: apiVersion is missing{hint}")
    if not str(api_version).startswith("v3."):
        raise _Invalid(f"not an ODCS v3 document: apiVersion {api_version!r} is not supported, use v3.x")
    if doc.get("kind") is None:
        raise _Invalid("missing required key 'kind' (must be 'DataContract')")
    if doc["kind"] != "DataContract":
        raise _Invalid(f"kind {doc['kind']!r} is not supported, must be 'DataContract'")
    for key in ("id", "version", "status"):
        if doc.get(key) in (None, ""):
            raise _Invalid(f"missing required key {key!r}")
    sla = doc.get("slaProperties")
    if isinstance(sla, dict):
        doc = {**doc, "slaProperties": _sla_map_to_list(sla)}
        warnings.append(
            "slaProperties is written as a map keyed by property (not ODCS); read as a list of "
            "{property, value, ...} items — write it as a list"
        )
    return OpenDataContractStandard.model_validate(doc)


def _sla_map_to_list(sla: dict[Any, Any]) -> list[dict[str, Any]]:
    """``{freshness: {value: PT6H, element: x}, availability: "99.9%"}`` → ODCS list items."""
    items: list[dict[str, Any]] = []
    for name, spec in sla.items():
        if isinstance(spec, dict):
            if "value" in spec:  # groups such as ``quality: {completeness: 99%}`` are not SLA properties
                items.append({**spec, "property": str(name)})
        else:
            items.append({"property": str(name), "value": spec})
    return items


def _describe(exc: ValidationError) -> str:
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        where = _location(err["loc"])
        if err["type"] == "extra_forbidden":
            problem = f"unknown top-level key {where!r}: not an ODCS v3 field"
        elif err["type"] == "string_type":
            problem = f"{where}: expected a string, got {err['input']!r}"
        elif isinstance(err["input"], str | int | float):
            problem = f"{where}: {err['msg']}, got {err['input']!r}"
        else:
            problem = f"{where}: {err['msg']}"
        if problem not in problems:
            problems.append(problem)
    return "; ".join(problems[:3])


def _location(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _UNION_MEMBER.match(part):
            out += f".{part}" if out else part
    return out


# --- building the monitoring view -------------------------------------------------------------------


def _build(doc: OpenDataContractStandard, source: str, warnings: list[str]) -> LoadedContract:
    contract_id = _required(doc.id, "", "id")
    name = doc.name or contract_id
    version = _required(doc.version, "", "version")
    status = _required(doc.status, "", "status")
    objects: list[SchemaObject] = doc.schema_ or []
    if not objects:
        warnings.append("no schema objects: the contract describes no tables, so it has no monitored assets")
    tables: list[str] = []
    for i, obj in enumerate(objects):
        tables.append(_required(obj.name, f"schema[{i}]", "name"))
        if obj.logicalType not in (None, "object", "table"):
            raise _Invalid(
                f"schema[{i}] ({obj.name}): logicalType {obj.logicalType!r} is not a table; use 'object'"
            )

    freshness, availability = _slas(doc, objects, warnings)
    notes: list[str] = []
    sla_targets = _all_sla_targets(doc, objects, warnings, notes)
    team, owner = _team_and_owner(doc.team, doc.customProperties)
    contract_floe, _ = _floe(doc.customProperties, "customProperties", warnings)
    shared: dict[str, Any] = {
        "contract_id": contract_id,
        "contract_name": name,
        "contract_version": version,
        "contract_status": status,
        "owner": owner,
        "team": team,
        "domain": doc.domain,
        "servers": tuple(
            _server(server, f"servers[{n}]", warnings) for n, server in enumerate(doc.servers or [])
        ),
    }

    assets: list[MonitoredAsset] = []
    first_use: dict[str, int] = {}
    for i, (obj, table) in enumerate(zip(objects, tables, strict=True)):
        where = f"schema[{i}] ({table})"
        table_floe, _ = _floe(obj.customProperties, f"schema[{i}].customProperties", warnings)
        floe = {**contract_floe, **table_floe}
        consumers = _unique([*contract_floe.get("consumers", []), *table_floe.get("consumers", [])])
        typed = _typed_floe({**floe, "consumers": list(consumers)}, f"schema[{i}] floe")
        asset_id: str = typed.asset or obj.physicalName or table
        if asset_id.lower() in first_use:
            other = first_use[asset_id.lower()]
            raise _Invalid(
                f"{where}: asset id {asset_id!r} is already used by schema[{other}] ({tables[other]}); "
                "set a distinct 'asset' in its floe customProperty"
            )
        first_use[asset_id.lower()] = i
        aliases = {table, f"{name}.{table}", *typed.aliases}
        if obj.physicalName:
            aliases.add(obj.physicalName)
        aliases.discard(asset_id)
        columns, rules, nested = _columns_and_rules(obj, f"schema[{i}]", table, warnings)
        more = _more_slas(doc, sla_targets, i, typed, freshness.get(i), availability.get(i), warnings)
        assets.append(
            MonitoredAsset(
                **shared,
                asset_id=asset_id,
                aliases=frozenset(aliases),
                table=table,
                physical_name=obj.physicalName,
                columns=columns,
                nested=nested,
                freshness=freshness.get(i),
                availability=availability.get(i),
                **more,
                quality_rules=rules,
                tags=_unique([*(doc.tags or []), *(obj.tags or [])]),
                consumers=consumers,
                overrides=floe,
                floe=typed,
            )
        )
    for asset in assets:
        _compact(asset)
    return LoadedContract(
        contract_id=contract_id,
        name=name,
        version=version,
        status=status,
        source=source,
        assets=tuple(assets),
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def _columns_and_rules(
    obj: SchemaObject, path: str, table: str, warnings: list[str]
) -> tuple[tuple[ColumnSpec, ...], tuple[QualityRule, ...], dict[str, tuple[ColumnSpec, ...]]]:
    columns: list[ColumnSpec] = []
    nested: dict[str, tuple[ColumnSpec, ...]] = {}
    rules = _quality_rules(obj.quality, path, table, None, warnings)
    declared: dict[str, int] = {}
    for j, prop in enumerate(obj.properties or []):
        where = f"{path}.properties[{j}]"
        column = _column(prop, where, table)
        if column.name in declared:
            raise _Invalid(
                f"{where} ({table}.{column.name}): column declared twice (also properties[{declared[column.name]}])"
            )
        declared[column.name] = j
        columns.append(column)
        _nested(prop, column.name, where, table, nested)
        rules += _quality_rules(prop.quality, where, f"{table}.{column.name}", column.name, warnings)
    seen: dict[str, int] = {}
    named: list[QualityRule] = []
    for rule in rules:  # rule names identify a rule within its asset: number repeats
        seen[rule.name] = seen.get(rule.name, 0) + 1
        named.append(
            rule
            if seen[rule.name] == 1
            else rule.model_copy(update={"name": f"{rule.name}#{seen[rule.name]}"})
        )
    return tuple(columns), tuple(named), nested


def _column(prop: SchemaProperty, where: str, table: str) -> ColumnSpec:
    name = _required(prop.name, f"{where} ({table})", "name")
    logical = prop.logicalType
    if logical is not None and logical not in LOGICAL_TYPES:
        hint = _LOGICAL_TYPE_HINTS.get(logical.lower())
        use = f"use {hint!r}" if hint else f"use one of {', '.join(LOGICAL_TYPES)}"
        raise _Invalid(
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
    for child, at in children:
        spec = _column(child, at, f"{table}.{path}")
        specs.append(spec)
        _nested(child, f"{path}.{spec.name}", at, table, out)
    out[path] = tuple(specs)


def _quality_rules(
    items: list[DataQuality] | None, path: str, label: str, column: str | None, warnings: list[str]
) -> list[QualityRule]:
    rules: list[QualityRule] = []
    for k, item in enumerate(items or []):
        where = f"{path}.quality[{k}] ({label})"
        _, floe = _floe(item.customProperties, f"{path}.quality[{k}].customProperties", warnings)
        kind = (item.type or "library").lower()
        if kind in _NOT_EVALUATED_QUALITY_TYPES:
            warnings.append(f"{where}: '{kind}' quality checks are not evaluated by floe; skipped")
            continue
        if kind != "library":
            raise _Invalid(
                f"{where}: type {item.type!r} is not an ODCS quality type (library, text, sql, custom)"
            )
        metric = item.metric
        if metric is None and item.rule is not None:  # deprecated spelling, possibly with a v3.0 name
            metric = _LEGACY_RULES.get(item.rule, item.rule)
            if metric not in _METRICS:
                warnings.append(
                    f"{where}: rule {item.rule!r} is not an ODCS library metric floe knows; skipped"
                )
                continue
        if metric is None:
            raise _Invalid(f"{where}: library quality check needs a metric ({', '.join(_METRICS)})")
        if metric not in _METRICS:
            raise _Invalid(
                f"{where}: metric {metric!r} is not an ODCS library metric ({', '.join(_METRICS)})"
            )
        operators = [op for op in _OPERATORS if getattr(item, op) is not None]
        if len(operators) != 1:
            found = f"{len(operators)} ({', '.join(operators)})" if operators else "none"
            raise _Invalid(f"{where}: needs exactly one operator ({', '.join(_OPERATORS)}); found {found}")
        operator = operators[0]
        unit = _QUALITY_UNITS.get((item.unit or "rows").lower())
        if unit is None:
            warnings.append(f"{where}: unit {item.unit!r} is not evaluated by floe (rows, percent); skipped")
            continue
        rules.append(
            QualityRule(
                name=item.name or f"{column or label}.{metric}",
                column=column,
                metric=metric,
                operator=operator,
                threshold=_threshold(operator, getattr(item, operator), where),
                unit=unit,
                severity=item.severity,
                weight=float(floe.weight),
                dimension=item.dimension,
            )
        )
    return rules


def _threshold(operator: str, value: Any, where: str) -> float | tuple[float, float]:
    if operator in ("mustBeBetween", "mustNotBeBetween"):
        low, high = (float(v) for v in value)  # the ODCS model checks: a list of two numbers
        if low > high:
            raise _Invalid(f"{where}: {operator} must list the smaller number first, got [{low:g}, {high:g}]")
        return (low, high)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"{where}: {operator} must be a number, got {value!r}")
    return float(value)


# --- SLAs -------------------------------------------------------------------------------------------


def _slas(
    doc: OpenDataContractStandard, objects: list[SchemaObject], warnings: list[str]
) -> tuple[dict[int, FreshnessSla], dict[int, AvailabilitySla]]:
    """Freshness and availability SLAs per table index."""
    freshness: dict[int, list[tuple[bool, int, FreshnessSla]]] = {}
    availability: dict[int, list[tuple[bool, int, AvailabilitySla]]] = {}
    for n, sla in enumerate(doc.slaProperties or []):
        prop = (sla.property or "").strip()
        if not prop:
            raise _Invalid(f"slaProperties[{n}]: missing required key 'property'")
        where = f"slaProperties[{n}] {prop}"
        element = sla.element or doc.slaDefaultElement
        specific = sla.element is not None  # names its tables, so it beats an SLA for every table
        try:
            if prop.lower() in _FRESHNESS_PROPERTIES:
                fresh = FreshnessSla(threshold_s=duration_seconds(sla.value, sla.unit), source_property=prop)
                for index, column in _sla_targets(element, objects, where, warnings):
                    freshness.setdefault(index, []).append(
                        (specific, n, fresh.model_copy(update={"element": column}))
                    )
            elif prop.lower() in _AVAILABILITY_PROPERTIES:
                avail = AvailabilitySla(target_ratio=availability_ratio(sla.value, sla.unit))
                for index, _ in _sla_targets(element, objects, where, warnings):
                    availability.setdefault(index, []).append((specific, n, avail))
            # every other SLA property (retention, frequency, timeOfAvailability, ...) is not monitored
        except ValueError as exc:
            raise _Invalid(f"{where}: {exc}") from None
    return (
        _strictest(freshness, lambda f: f.threshold_s, "freshness", objects, warnings),
        _strictest(availability, lambda a: -a.target_ratio, "availability", objects, warnings),
    )


def _all_sla_targets(
    doc: OpenDataContractStandard, objects: list[SchemaObject], warnings: list[str], notes: list[str]
) -> dict[int, dict[int, str | None]]:
    """SLA item index → {table index: column} for the properties beyond freshness/availability; unknown
    property names are warned about here (with a "did you mean")."""
    out: dict[int, dict[int, str | None]] = {}
    for n, sla in enumerate(doc.slaProperties or []):
        prop = (sla.property or "").strip()
        known = canonical_property(prop)
        if known is None:
            names = [p.name for p in SLA_PROPERTIES]
            warnings.append(
                f"slaProperties[{n}]: unknown SLA property {prop!r}{did_you_mean(prop, names)} "
                "(not an ODCS SLA property; not evaluated)"
            )
            continue
        # freshness/availability already warned about an element naming no table; the others say it to lint
        targets = _sla_targets(
            sla.element or doc.slaDefaultElement,
            objects,
            f"slaProperties[{n}] {prop}",
            [] if known.name in ("latency", "freshness", "availability") else notes,
        )
        out[n] = dict(targets)
    return out


def _more_slas(
    doc: OpenDataContractStandard,
    targets: dict[int, dict[int, str | None]],
    index: int,
    floe: FloeExtension,
    freshness: FreshnessSla | None,
    availability: AvailabilitySla | None,
    warnings: list[str],
) -> dict[str, Any]:
    """frequency, timeOfAvailability, lifecycle dates, response targets and the per-property notes of one table."""
    items = doc.slaProperties or []
    notes: list[SlaNote] = []
    frequency: FrequencySla | None = None
    toa: list[TimeOfAvailabilitySla] = []
    life: dict[str, datetime] = {}
    response: dict[str, float] = {}
    retention: RetentionSla | None = None
    for n, column_of in targets.items():
        if index not in column_of:
            continue
        sla = items[n]
        known = canonical_property(sla.property or "")
        assert known is not None
        where = f"slaProperties[{n}] {sla.property}"
        shown = f"{sla.value}{' ' + sla.unit if sla.unit else ''}"
        evaluated_by, detail = known.evaluated_by, known.reason
        try:
            if known.name in ("latency", "freshness"):
                if freshness is None or freshness.source_property != sla.property:
                    detail = (
                        f"{detail} (another {known.name} SLA for this table is stricter or more specific)"
                    )
            elif known.name == "availability":
                pass
            elif known.name == "frequency":
                frequency = _frequency(sla, column_of[index], floe)
                detail = (
                    f"a cron run ({frequency.cron}, {frequency.timezone}) without an update within 10 % of the period"
                    if frequency.cron
                    else f"no update for more than 110 % of {_fmt_s(frequency.interval_s or 0)}"
                )
            elif known.name == "timeOfAvailability":
                one = _time_of_availability(sla, column_of[index], floe)
                toa.append(one)
                detail = f"an update between the previous deadline and {one.deadline.isoformat('minutes')} ({one.timezone}) each day"
            elif known.name in ("generalAvailability", "endOfSupport", "endOfLife"):
                life[_LIFECYCLE_FIELDS[known.name]] = parse_datetime(sla.value)
            elif known.name == "retention":
                retention = RetentionSla(
                    period_s=duration_seconds(sla.value, sla.unit), element=column_of[index]
                )
            elif known.name in ("timeToDetect", "timeToNotify", "timeToRepair"):
                response[_RESPONSE_FIELDS[known.name]] = duration_seconds(sla.value, sla.unit)
        except ValueError as exc:
            warnings.append(f"{where}: {exc}; not evaluated")
            evaluated_by, detail = None, f"not evaluated: {exc}"
        notes.append(
            SlaNote(
                index=n, property=str(sla.property), value=shown, evaluated_by=evaluated_by, detail=detail
            )
        )
    del availability
    return {
        "frequency": frequency,
        "time_of_availability": tuple(toa),
        "lifecycle": LifecycleSla(**life, notice_days=floe.lifecycle.notice_days) if life else None,
        "response": ResponseSla(**response) if response else None,
        "retention": retention,
        "sla_notes": tuple(notes),
    }


_LIFECYCLE_FIELDS = {
    "generalAvailability": "general_availability",
    "endOfSupport": "end_of_support",
    "endOfLife": "end_of_life",
}
_RESPONSE_FIELDS = {
    "timeToDetect": "time_to_detect_s",
    "timeToNotify": "time_to_notify_s",
    "timeToRepair": "time_to_repair_s",
}


def _frequency(sla: Any, column: str | None, floe: FloeExtension) -> FrequencySla:
    zone = floe.timezone or "UTC"
    if (sla.scheduler or "").strip().lower() == "cron" or sla.schedule:
        expr = str(sla.schedule or sla.value or "").strip()
        from croniter import croniter

        if not croniter.is_valid(expr):
            raise ValueError(f"schedule {expr!r} is not a cron expression (e.g. '0 6 * * *')")
        return FrequencySla(cron=expr, timezone=zone, element=column)
    return FrequencySla(interval_s=duration_seconds(sla.value, sla.unit), timezone=zone, element=column)


_TIME_WITH_OFFSET = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(Z|[+-]\d{2}:?\d{2})?$")


def _time_of_availability(sla: Any, column: str | None, floe: FloeExtension) -> TimeOfAvailabilitySla:
    text = str(sla.value).strip()
    m = _TIME_WITH_OFFSET.match(text)
    if not m:
        raise ValueError(f"value {text!r} is not a time of day such as '09:00', '09:00-08:00' or '09:00Z'")
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"value {text!r} is not a time of day")
    offset = m.group(4)
    if offset:  # a fixed offset in the value wins (no DST)
        zone = "UTC" if offset == "Z" else (offset if ":" in offset else f"{offset[:3]}:{offset[3:]}")
    elif isinstance(sla.valueExt, str) and sla.valueExt.strip():
        zone = FloeExtension.model_validate({"timezone": sla.valueExt}).timezone or "UTC"
    else:
        zone = floe.timezone or "UTC"
    return TimeOfAvailabilitySla(deadline=time(hour, minute, second), timezone=zone, element=column)


def _fmt_s(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _strictest(
    candidates: dict[int, list[tuple[bool, int, _Sla]]],
    strictness: Callable[[_Sla], float],
    kind: str,
    objects: list[SchemaObject],
    warnings: list[str],
) -> dict[int, _Sla]:
    """One SLA per table: those naming the table beat those for every table; among equals the strictest."""
    chosen: dict[int, _Sla] = {}
    for index, found in candidates.items():
        specific = any(c[0] for c in found)
        top = [c for c in found if c[0] == specific]
        if len(top) > 1:
            sources = ", ".join(f"slaProperties[{c[1]}]" for c in top)
            warnings.append(
                f"table {objects[index].name!r} has {len(top)} {kind} SLAs ({sources}); the strictest is kept"
            )
        chosen[index] = min(top, key=lambda c: strictness(c[2]))[2]
    return chosen


def _sla_targets(
    element: str | None, objects: list[SchemaObject], where: str, warnings: list[str]
) -> list[tuple[int, str | None]]:
    """(table index, column) pairs an SLA element names; no element means every table."""
    if element is None:
        return [(i, None) for i in range(len(objects))]
    targets: list[tuple[int, str | None]] = []
    for part in (p.strip() for p in element.split(",")):
        if not part:
            continue
        found = _find_element(part, objects)
        if not found:
            tables = ", ".join(str(obj.name) for obj in objects) or "none"
            warnings.append(
                f"{where}: element {part!r} names no table of this contract (tables: {tables}); SLA not attached"
            )
        for index, column in found:
            if column and objects[index].properties and column not in _column_names(objects[index]):
                warnings.append(
                    f"{where}: column {column!r} is not a property of table {objects[index].name!r}"
                )
        targets += found
    return targets


def _find_element(part: str, objects: list[SchemaObject]) -> list[tuple[int, str | None]]:
    best: tuple[int, int, str | None] | None = None  # (length of the matched table name, index, column)
    for i, obj in enumerate(objects):
        for table in (obj.name, obj.physicalName):
            if not table:
                continue
            if part == table:
                match: tuple[int, int, str | None] = (len(table), i, None)
            elif part.startswith(f"{table}."):
                match = (len(table), i, part[len(table) + 1 :])
            else:
                continue
            if best is None or match[0] > best[0]:
                best = match
    if best is not None:
        return [(best[1], best[2])]
    if "." in part:
        return []
    holders = [i for i, obj in enumerate(objects) if part in _column_names(obj)]
    if not holders and len(objects) == 1:
        holders = [0]
    return [(i, part) for i in holders]


def _column_names(obj: SchemaObject) -> set[str]:
    return {name for prop in obj.properties or [] for name in (prop.name, prop.physicalName) if name}


# --- memory (bench/state.py: one processor holding 100,000 assets) ----------------------------------

# Most tables of a contract (and of many contracts) declare the same columns, SLAs and notes, and every
# instance of a model built by the loader sets the same fields: equal frozen sub-objects and equal
# ``__pydantic_fields_set__`` sets are shared between assets instead of being held once per asset (the
# fields set of a MonitoredAsset alone is ~2.2 KB). Frozen models are never mutated in place (pydantic's
# ``model_copy`` copies the fields set before updating it), so sharing changes no behaviour; equality and
# hashing of models look at field values only. Bounded: cleared when it grows past _SHARED_MAX entries
# (a long-running processor that reloads edited contracts keeps only what the current ones share).
_SHARED: dict[Any, Any] = {}
_SHARED_MAX = 200_000
_INTERNED_FIELDS = (
    "columns",
    "freshness",
    "availability",
    "quality_rules",
    "frequency",
    "time_of_availability",
    "lifecycle",
    "retention",
    "response",
    "sla_notes",
    "servers",
    "tags",
    "consumers",
)


def _shared(value: _T) -> _T:
    if len(_SHARED) > _SHARED_MAX:
        _SHARED.clear()
    try:
        return cast(_T, _SHARED.setdefault(value, value))
    except TypeError:  # unhashable (a dict inside): keep this one
        return value


def _share_fields_set(value: Any) -> None:
    """Share the fields sets of ``value`` and of every model inside it (tuples, dict values)."""
    if isinstance(value, BaseModel):
        fields = value.__pydantic_fields_set__
        key = ("fields set", type(value), frozenset(fields))
        object.__setattr__(value, "__pydantic_fields_set__", _shared_key(key, fields))
        for item in value.__dict__.values():
            _share_fields_set(item)
    elif isinstance(value, tuple):
        for item in value:
            _share_fields_set(item)
    elif isinstance(value, dict):
        for item in value.values():
            _share_fields_set(item)


def _shared_key(key: Any, value: _T) -> _T:
    if len(_SHARED) > _SHARED_MAX:
        _SHARED.clear()
    return cast(_T, _SHARED.setdefault(key, value))


def _compact(asset: MonitoredAsset) -> None:
    _share_fields_set(asset)
    fields = asset.__dict__
    for name in _INTERNED_FIELDS:  # equal values only: the asset's fields keep their values
        fields[name] = _shared(fields[name])


# --- people, servers, custom properties -------------------------------------------------------------


def _team_and_owner(
    team: Team | list[TeamMember] | None, custom: list[CustomProperty] | None
) -> tuple[str | None, str | None]:
    """(team name, owner): v3.1 ``team`` is an object with members, v3.0 a bare list of members."""
    team_name, members = (team.name, team.members or []) if isinstance(team, Team) else (None, team or [])
    current = [m for m in members if not m.dateOut] or members
    member = next(
        (m for m in current if m.role and "owner" in m.role.lower()), current[0] if current else None
    )
    owner = (member.username or member.name) if member else None
    for prop in custom or []:
        if prop.property == "owner" and isinstance(prop.value, str) and prop.value.strip():
            owner = prop.value.strip()
    return team_name, owner


def _server(server: Server, where: str, warnings: list[str]) -> ServerRef:
    port: int | None = None
    if isinstance(server.port, int):
        port = server.port
    elif isinstance(server.port, str) and server.port.strip().isdigit():
        port = int(server.port)
    elif server.port is not None:
        warnings.append(f"{where}.port: {server.port!r} is not a port number; ignored")
    return ServerRef(
        server=_required(server.server, where, "server"),
        type=_required(server.type, where, "type"),
        host=server.host,
        port=port,
        database=server.database,
        schema_name=server.schema_,
        url=server.endpointUrl or server.location,
    )


def _floe(
    props: list[CustomProperty] | None, where: str, warnings: list[str] | None = None
) -> tuple[dict[str, Any], FloeExtension]:
    """The raw mapping under the ``floe`` custom property and its typed, validated form."""
    found = [(j, p.value) for j, p in enumerate(props or []) if p.property == "floe"]
    if not found:
        return {}, FloeExtension()
    if len(found) > 1:
        raise _Invalid(f"{where}: the 'floe' custom property appears {len(found)} times; merge them into one")
    j, value = found[0]
    at = f"{where}[{j}] floe"
    if value is None:
        return {}, FloeExtension()
    if not isinstance(value, dict):
        raise _Invalid(f"{at}: value must be a mapping of floe settings, got {_kind(value)}")
    if warnings is not None:
        warnings.extend(f"{at}: {w}" for w in unknown_keys(value))
    return dict(value), _typed_floe(value, at)


def _typed_floe(value: dict[str, Any], at: str) -> FloeExtension:
    try:
        return FloeExtension.model_validate(value)
    except ValidationError as exc:
        key, problem = extension_problem(exc)
        raise _Invalid(f"{at}.{key}: {problem}") from None


def _required(value: str | None, where: str, key: str) -> str:
    if not value:
        raise _Invalid(f"{where}: missing required key {key!r}" if where else f"missing required key {key!r}")
    return value


def _number(value: object, expected: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"value {value!r} is not {expected}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise ValueError(f"value {value!r} is not {expected}") from None


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
