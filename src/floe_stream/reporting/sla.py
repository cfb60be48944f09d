"""SLA compliance from the PostgreSQL history. Library API returning typed models; the CLI is a shell.

The full engine is :func:`floe_stream.reporting.compliance.build_report` (rolling windows, calendar buckets,
coverage, episodes, trends; docs/SLA.md), re-exported here. :func:`compliance_report` is the walking skeleton's
quick per-asset summary over an arbitrary ``[start, end)`` straight from the raw rows (used by ``floe dev``).

Freshness is time-weighted: each check result's status holds until the asset's next result, so
compliance = time within SLA / time observed in the window. Schema drift counts evaluations.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
from pydantic import BaseModel, ConfigDict

from floe_stream.reporting.compliance import ComplianceReport, ReportError, build_report

__all__ = [
    "CheckCompliance",
    "ComplianceReport",
    "ReportError",
    "SlaReport",
    "build_report",
    "compliance_report",
]

TIME_WEIGHTED = ("freshness", "availability")

_QUERY = """
WITH r AS (
    SELECT asset, contract_id, check_type, status, evaluated_at,
           LEAD(evaluated_at) OVER (PARTITION BY asset, check_type ORDER BY evaluated_at, result_id) AS next_at
    FROM check_results
    WHERE evaluated_at < $2::timestamptz AND evaluated_at >= $1::timestamptz - $3::interval
      AND ($4::text IS NULL OR contract_id = $4)
      AND ($5::text IS NULL OR asset = $5)
), s AS (
    SELECT *, GREATEST(evaluated_at, $1) AS s_from, LEAST(COALESCE(next_at, $2), $2) AS s_to FROM r
)
SELECT asset, min(contract_id) AS contract_id, check_type,
       count(*) FILTER (WHERE evaluated_at >= $1) AS evaluations,
       count(*) FILTER (WHERE evaluated_at >= $1 AND status = 'pass') AS passed,
       count(*) FILTER (WHERE evaluated_at >= $1 AND status = 'fail') AS failed,
       count(*) FILTER (WHERE evaluated_at >= $1 AND status IN ('skipped', 'error')) AS other,
       COALESCE(sum(EXTRACT(EPOCH FROM s_to - s_from)) FILTER (WHERE s_to > s_from), 0) AS observed_s,
       COALESCE(sum(EXTRACT(EPOCH FROM s_to - s_from)) FILTER (WHERE s_to > s_from AND status = 'pass'), 0) AS within_s
FROM s
GROUP BY asset, check_type
HAVING count(*) FILTER (WHERE s_to > s_from OR evaluated_at >= $1) > 0
ORDER BY asset, check_type
"""

_VIOLATIONS = """
SELECT asset, violation_type, count(*) AS n
FROM violation_events
WHERE event_type = 'floe.contract.violation' AND occurred_at >= $1 AND occurred_at < $2
GROUP BY asset, violation_type
"""


class CheckCompliance(BaseModel):
    model_config = ConfigDict(frozen=True)

    asset: str
    contract_id: str
    check_type: str
    evaluations: int
    passed: int
    failed: int
    other: int
    observed_s: float
    within_s: float
    compliance_pct: float | None
    violations: int
    basis: str


class SlaReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    window_start: datetime
    window_end: datetime
    rows: list[CheckCompliance]


async def compliance_report(
    conn: asyncpg.Connection,
    *,
    start: datetime,
    end: datetime,
    contract: str | None = None,
    asset: str | None = None,
    carry_in: timedelta = timedelta(days=30),
) -> SlaReport:
    viol = {(r["asset"], r["violation_type"]): int(r["n"]) for r in await conn.fetch(_VIOLATIONS, start, end)}
    rows = []
    for r in await conn.fetch(_QUERY, start, end, carry_in, contract, asset):
        observed, within = float(r["observed_s"]), float(r["within_s"])
        evaluations, passed, failed = int(r["evaluations"]), int(r["passed"]), int(r["failed"])
        if r["check_type"] in TIME_WEIGHTED:
            pct = 100.0 * within / observed if observed > 0 else None
            basis = "time"
        else:
            judged = passed + failed
            pct = 100.0 * passed / judged if judged else None
            basis = "evaluations"
        rows.append(
            CheckCompliance(
                asset=r["asset"],
                contract_id=r["contract_id"],
                check_type=r["check_type"],
                evaluations=evaluations,
                passed=passed,
                failed=failed,
                other=int(r["other"]),
                observed_s=round(observed, 3),
                within_s=round(within, 3),
                compliance_pct=round(pct, 3) if pct is not None else None,
                violations=viol.get((r["asset"], r["check_type"]), 0),
                basis=basis,
            )
        )
    return SlaReport(window_start=start, window_end=end, rows=rows)
