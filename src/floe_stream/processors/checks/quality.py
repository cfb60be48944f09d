"""Quality: producer-reported expectations judged against the contract's ODCS ``quality`` rules. Pure.

Inputs (all normalized to :class:`QualityResult` on the update): floe's own ``quality`` list, the
OpenLineage ``dataQualityAssertions`` / ``dataQualityMetrics`` facets and dbt ``run_results.json``
(see :mod:`floe_stream.processors.normalize`). Row counts of materializations and catalog commits feed a
contract ``rowCount`` rule (volume).

* A result that matches a contract rule (same metric and column, or same name) is re-judged by the rule:
  observed value vs operator/threshold, with ``percent`` rules computed from the row count.
* A result without a matching rule counts with the producer's verdict (``passed``) and weight.
* Weighted score = Σ weight·passed / Σ weight; below the threshold (policy ``quality_threshold``, default
  0.8) the ``quality`` finding fires (ERROR). Every failed expectation is its own finding
  (``quality/<name>``) with expected vs actual: its declared severity, else ERROR when the score failed,
  else WARNING.
* An asset that declares rules but gets no result: a ``skipped`` check result, never a violation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from floe_stream.contracts.models import MonitoredAsset, QualityRule
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.enums import CheckStatus, CheckType, Severity
from floe_stream.topics.materialization import QualityResult

KEY = "quality"
LIBRARY_METRICS = frozenset({"nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount"})
_SEVERITIES = {
    "info": Severity.INFO,
    "warn": Severity.WARNING,
    "warning": Severity.WARNING,
    "error": Severity.ERROR,
    "critical": Severity.CRITICAL,
}


def severity_of(name: str | None) -> Severity | None:
    return _SEVERITIES.get(name.strip().lower()) if name else None


def judge(operator: str, threshold: float | tuple[float, float], value: float) -> bool:
    """Does ``value`` satisfy the ODCS operator?"""
    if isinstance(threshold, tuple):
        low, high = threshold
        inside = low <= value <= high
        return inside if operator == "mustBeBetween" else not inside
    t = float(threshold)
    match operator:
        case "mustBe":
            return value == t
        case "mustNotBe":
            return value != t
        case "mustBeGreaterThan":
            return value > t
        case "mustBeGreaterOrEqualTo":
            return value >= t
        case "mustBeLessThan":
            return value < t
        case "mustBeLessOrEqualTo":
            return value <= t
    raise ValueError(f"unknown operator {operator!r}")


def _num(v: float) -> str:
    return f"{v:g}"


def rule_text(rule: QualityRule) -> str:
    th = rule.threshold
    bound = f"[{_num(th[0])}, {_num(th[1])}]" if isinstance(th, tuple) else _num(th)
    unit = "%" if rule.unit == "percent" else " rows"
    return f"{rule.metric} {rule.operator} {bound}{unit if rule.metric != 'rowCount' else ''}"


@dataclass(frozen=True, slots=True)
class Expectation:
    name: str
    passed: bool
    weight: float
    column: str | None = None
    severity: Severity | None = None
    expected: str | None = None
    actual: str | None = None
    from_rule: bool = False


def _matches(rule: QualityRule, r: QualityResult) -> bool:
    if r.name == rule.name:
        return True
    return r.metric == rule.metric and (r.column or "").lower() == (rule.column or "").lower()


def _total_rows(update: AssetUpdate, results: tuple[QualityResult, ...]) -> float | None:
    if update.row_count is not None:
        return float(update.row_count)
    for r in results:
        if r.metric == "rowCount" and r.column is None and r.observed_value is not None:
            return r.observed_value
    return None


def collect(asset: MonitoredAsset, update: AssetUpdate) -> tuple[list[Expectation], list[str]]:
    """The expectations an update lets us judge, and notes on what could not be judged."""
    results = update.quality or ()
    exps: list[Expectation] = []
    notes: list[str] = []
    used: set[int] = set()
    total = _total_rows(update, results)
    for rule in asset.quality_rules:
        hit = next(((i, r) for i, r in enumerate(results) if i not in used and _matches(rule, r)), None)
        obs = hit[1] if hit else None
        value: float | None
        if hit is not None and obs is not None:
            used.add(hit[0])
            value, unit = obs.observed_value, obs.unit or "rows"
        elif rule.metric == "rowCount" and update.row_count is not None:
            value, unit = float(update.row_count), "rows"
        else:
            continue  # not observed by this update
        passed: bool | None = None
        actual: str | None = None
        if value is not None and rule.metric != "rowCount" and unit != rule.unit:
            if total is None:
                value = None
                notes.append(
                    f"{rule.name}: {unit} reported, rule in {rule.unit}, and no row count to convert"
                )
            elif rule.unit == "percent":
                value = 0.0 if total == 0 else value / total * 100
            else:
                value = value * total / 100
        if value is not None:
            passed = judge(rule.operator, rule.threshold, value)
            actual = f"{_num(round(value, 4))}{'%' if rule.unit == 'percent' and rule.metric != 'rowCount' else ''}"
        elif obs is not None and obs.passed is not None:
            passed = obs.passed  # no value to re-judge: the producer's verdict stands
            actual = "passed" if obs.passed else "failed"
        if passed is None:
            continue
        exps.append(
            Expectation(
                name=rule.name,
                passed=passed,
                weight=rule.weight,
                column=rule.column,
                severity=severity_of(rule.severity) or (severity_of(obs.severity) if obs else None),
                expected=rule_text(rule),
                actual=actual,
                from_rule=True,
            )
        )
    for i, r in enumerate(results):
        if i in used:
            continue
        if r.passed is None:
            if r.metric is not None and r.metric not in LIBRARY_METRICS:
                notes.append(f"{r.name}: unknown metric {r.metric!r} without a verdict; ignored")
            continue
        exps.append(
            Expectation(
                name=r.name,
                passed=r.passed,
                weight=r.weight,
                column=r.column,
                severity=severity_of(r.severity),
                expected=r.expected,
                actual=_num(r.observed_value)
                if r.observed_value is not None
                else ("passed" if r.passed else "failed"),
            )
        )
    return exps, notes


def score_of(exps: list[Expectation]) -> float:
    total = sum(e.weight for e in exps)
    if total <= 0:
        return 1.0 if all(e.passed for e in exps) else 0.0
    return sum(e.weight for e in exps if e.passed) / total


def evaluate_quality(asset: MonitoredAsset, update: AssetUpdate, ctx: EvalContext) -> Evaluation | None:
    if not asset.quality_rules and not update.quality:
        return None  # nothing declared, nothing reported: the check does not apply (the common fast path)
    exps, notes = collect(asset, update)
    threshold = ctx.policy.quality_threshold
    if not exps:
        if not asset.quality_rules and not update.quality:
            return None
        why = "; ".join(notes) if notes else "no quality results for the contract's rules in this update"
        return Evaluation(
            check_type=CheckType.QUALITY,
            status=CheckStatus.SKIPPED,
            expected=f"score >= {threshold:g}",
            message=f"skipped: {why}",
        )
    score = round(score_of(exps), 4)
    failed_score = score < threshold
    failed = [e for e in exps if not e.passed]
    findings: list[Finding] = []
    for e in exps:
        sev = None
        if not e.passed:
            sev = e.severity or (Severity.ERROR if failed_score else Severity.WARNING)
        findings.append(
            Finding(
                key=f"{KEY}/{e.name}",
                severity=sev,
                message=(
                    f"quality expectation {e.name} failed: expected {e.expected or 'pass'}, got {e.actual}"
                    if sev
                    else f"quality expectation {e.name} passed"
                ),
                element=e.column,
                expected=e.expected,
                actual=e.actual,
            )
        )
    summary = f"quality score {score:.2f} ({len(exps) - len(failed)}/{len(exps)} expectations passed)"
    if update.quality is not None:  # a quality report (not only a row count) judges the score
        findings.append(
            Finding(
                key=KEY,
                severity=Severity.ERROR if failed_score else None,
                message=f"{summary} is below the threshold {threshold:g}" if failed_score else summary,
                expected=f"score >= {threshold:g}",
                actual=f"{score:g}",
                context={"failed": ",".join(e.name for e in failed)[:500]} if failed else None,
            )
        )
    severities = [f.severity for f in findings if f.severity is not None]
    message = summary + (f"; failed: {', '.join(e.name for e in failed)}" if failed else "")
    if notes:
        message += f"; {'; '.join(notes)}"
    return Evaluation(
        check_type=CheckType.QUALITY,
        status=CheckStatus.FAIL if failed_score else CheckStatus.PASS,
        findings=tuple(findings),
        severity=max(severities, key=lambda s: s.rank) if severities else None,
        metric=score,
        expected=f"score >= {threshold:g}",
        actual=f"{score:g}",
        message=message,
    )


class QualityCheck:
    check_type = CheckType.QUALITY

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        ev = evaluate_quality(asset, update, ctx)
        return [ev] if ev else []

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        if not asset.quality_rules:
            return []
        return [
            {
                "check": "quality",
                "evaluates": [
                    f"{r.name}: {r.metric} {r.operator} {r.threshold} {r.unit}"
                    + (f" (severity {r.severity})" if r.severity else "")
                    + (f" weight {r.weight:g}" if r.weight != 1 else "")
                    for r in asset.quality_rules
                ],
                "measured": "producer-reported results re-judged by the rules; weighted score",
                "severity": f"score below {ex.policy.quality_threshold:.0%} ERROR; each failed rule its own episode",
            }
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        return []
