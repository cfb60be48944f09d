"""Retention: rows younger than the ODCS ``retention`` period must still be there. Pure, on updates.

Judged only on updates whose producer reports the oldest row still in the table (a materialization's
``oldest_data_timestamp``); Iceberg commit summaries and OpenLineage events say what was added or removed,
not the oldest row kept, so they yield no result. The state keeps the oldest row ever reported. A row the
retention promised to keep is gone when the oldest row now reported is newer than both the oldest row
reported before and ``now - retention`` (plus 1 % of the period as tolerance): ERROR, until a report shows
the rows back (e.g. a restore). Rows older than the period still present are not a breach (ODCS retention
is how long data is available, not a deletion deadline).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.durations import format_duration
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.topics.enums import CheckStatus, CheckType, Severity

KEY = "retention"
TOLERANCE = 0.01


class RetentionCheck:
    check_type = CheckType.RETENTION

    def applies(self, asset: MonitoredAsset) -> bool:
        return asset.retention is not None

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        sla = asset.retention
        oldest = update.oldest_data_time
        if sla is None or oldest is None:
            return []
        raw = state.checks.get(KEY, {}).get("first_oldest")
        first = datetime.fromisoformat(raw) if raw else oldest
        keep_from = max(first, ctx.now - timedelta(seconds=sla.period_s))  # rows from here on must be present
        slack = timedelta(seconds=TOLERANCE * sla.period_s + ctx.clock_skew_s)
        gone = oldest > keep_from + slack
        expected = (
            f"rows since {keep_from.isoformat()} kept (retention {format_duration(sla.period_s, 'exact')})"
        )
        actual = f"oldest row {oldest.isoformat()}"
        message = (
            f"rows younger than the {format_duration(sla.period_s, 'exact')} retention are gone: oldest row is {oldest.isoformat()}, "
            f"expected rows since {keep_from.isoformat()}"
            if gone
            else "within retention"
        )
        finding = Finding(KEY, Severity.ERROR if gone else None, message, sla.element, expected, actual)
        return [
            Evaluation(
                check_type=CheckType.RETENTION,
                status=CheckStatus.FAIL if gone else CheckStatus.PASS,
                findings=(finding,),
                scope=KEY,
                severity=finding.severity,
                metric=round((ctx.now - oldest).total_seconds(), 3),
                expected=expected,
                actual=actual,
                message=message,
                state_update={"first_oldest": min(first, oldest).isoformat()},
            )
        ]

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        if asset.retention is None:
            return []
        return [
            {
                "check": "retention",
                "evaluates": f"retention {format_duration(asset.retention.period_s, 'exact')}",
                "measured": "the oldest row a producer reports (oldest_data_timestamp): rows younger than the period "
                "must still be there; no result for inputs that do not report it",
                "severity": "rows gone early ERROR",
            }
        ]

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        return []
