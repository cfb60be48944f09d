"""ODCS ``quality`` items → :class:`QualityRule`: the library metrics floe evaluates, the rest skipped with a warning.

Invalid ODCS (an unknown type or metric, not exactly one operator) is a :class:`DocumentProblem`; valid ODCS
that floe cannot evaluate (``text``/``sql``/``custom`` checks, a unit other than rows/percent, an unknown
legacy ``rule``) is skipped with a warning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal, get_args

from open_data_contract_standard.model import DataQuality

from floe_stream.contracts.document import DocumentProblem, Problems
from floe_stream.contracts.metadata import floe_settings
from floe_stream.contracts.models import QualityOperator, QualityRule

__all__ = ["METRICS", "named", "quality_rules"]

METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")
_LEGACY_RULES = {"duplicateCount": "duplicateValues", "validValues": "invalidValues"}  # ODCS v3.0 names
_OPERATORS: tuple[QualityOperator, ...] = get_args(QualityOperator)
_QUALITY_UNITS: dict[str, Literal["rows", "percent"]] = {"rows": "rows", "percent": "percent"}
_NOT_EVALUATED_QUALITY_TYPES = ("text", "sql", "custom")


def quality_rules(
    items: list[DataQuality] | None, path: str, label: str, column: str | None, warnings: list[str]
) -> list[QualityRule]:
    """The rules of one table's (``column`` None) or one column's ``quality`` list."""
    rules: list[QualityRule] = []
    problems = Problems()
    for k, item in enumerate(items or []):
        with problems.each():
            rule = _rule(item, f"{path}.quality[{k}]", label, column, warnings)
            if rule is not None:
                rules.append(rule)
    problems.raise_any()
    return rules


def _rule(
    item: DataQuality, at: str, label: str, column: str | None, warnings: list[str]
) -> QualityRule | None:
    """One ``quality`` item: its rule, None when floe skips it (with a warning), DocumentProblem if invalid."""
    where = f"{at} ({label})"
    _, floe = floe_settings(item.customProperties, f"{at}.customProperties", warnings)
    kind = (item.type or "library").lower()
    if kind in _NOT_EVALUATED_QUALITY_TYPES:
        warnings.append(f"{where}: '{kind}' quality checks are not evaluated by floe; skipped")
        return None
    if kind != "library":
        raise DocumentProblem(
            f"{where}: type {item.type!r} is not an ODCS quality type (library, text, sql, custom)"
        )
    metric = item.metric
    if metric is None and item.rule is not None:  # deprecated spelling, possibly with a v3.0 name
        metric = _LEGACY_RULES.get(item.rule, item.rule)
        if metric not in METRICS:
            warnings.append(f"{where}: rule {item.rule!r} is not an ODCS library metric floe knows; skipped")
            return None
    if metric is None:
        raise DocumentProblem(f"{where}: library quality check needs a metric ({', '.join(METRICS)})")
    if metric not in METRICS:
        raise DocumentProblem(
            f"{where}: metric {metric!r} is not an ODCS library metric ({', '.join(METRICS)})"
        )
    operators = [op for op in _OPERATORS if getattr(item, op) is not None]
    if len(operators) != 1:
        found = f"{len(operators)} ({', '.join(operators)})" if operators else "none"
        raise DocumentProblem(f"{where}: needs exactly one operator ({', '.join(_OPERATORS)}); found {found}")
    operator = operators[0]
    unit = _QUALITY_UNITS.get((item.unit or "rows").lower())
    if unit is None:
        warnings.append(f"{where}: unit {item.unit!r} is not evaluated by floe (rows, percent); skipped")
        return None
    return QualityRule(
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


def named(rules: Iterable[QualityRule]) -> tuple[QualityRule, ...]:
    """Rule names identify a rule within its asset: a repeated name gets ``#2``, ``#3`` …"""
    seen: dict[str, int] = {}
    out: list[QualityRule] = []
    for rule in rules:
        seen[rule.name] = seen.get(rule.name, 0) + 1
        out.append(
            rule
            if seen[rule.name] == 1
            else rule.model_copy(update={"name": f"{rule.name}#{seen[rule.name]}"})
        )
    return tuple(out)


def _threshold(operator: str, value: Any, where: str) -> float | tuple[float, float]:
    if operator in ("mustBeBetween", "mustNotBeBetween"):
        low, high = (float(v) for v in value)  # the ODCS model checks: a list of two numbers
        if low > high:
            raise DocumentProblem(
                f"{where}: {operator} must list the smaller number first, got [{low:g}, {high:g}]"
            )
        return (low, high)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DocumentProblem(f"{where}: {operator} must be a number, got {value!r}")
    return float(value)
