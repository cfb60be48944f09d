"""timeToDetect / timeToNotify / timeToRepair: floe's own response, measured per episode, against the
contract's ODCS targets. (``floe sla report --response``.)

Per violation episode opened in the window (first ``floe.contract.violation`` event of a correlation key
and episode start):

* **detect** = the violation's ``detected_at`` − the moment the SLA was breached (``context.breached_at``,
  stamped by the checks that know it: freshness = data time + SLA, frequency = run due + grace,
  timeOfAvailability = the deadline). Episodes without it (drift, quality, availability: detected on the
  input that revealed them) are not measured for detection.
* **notify** = the first successful delivery of that violation on any channel (alert ledger
  ``alert_deliveries.delivered_at``) − ``detected_at``. Never delivered: not within target.
* **repair** = the resolved event's ``open_duration_s``; an episode still open counts as not within target
  once it is older than the target (its age so far is its repair time).

Compliance = episodes within target / episodes measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from floe_stream.contracts.models import ResponseSla
from floe_stream.durations import format_duration

__all__ = ["ResponseRow", "ResponseStat", "fetch_response_rows", "render_response", "summarize_response"]


@dataclass(frozen=True)
class ResponseRow:
    asset: str
    detect_s: float | None
    notify_s: float | None
    delivered: bool
    repair_s: float | None
    resolved: bool


@dataclass(frozen=True)
class ResponseStat:
    asset: str
    measure: str  # detect | notify | repair
    target_s: float | None
    episodes: int
    within: int | None
    p50_s: float | None
    max_s: float | None

    @property
    def compliance_pct(self) -> float | None:
        if self.within is None or not self.episodes:
            return None
        return round(100.0 * self.within / self.episodes, 2)


_FIELDS = {"detect": "time_to_detect_s", "notify": "time_to_notify_s", "repair": "time_to_repair_s"}


def summarize_response(rows: Iterable[ResponseRow], targets: Mapping[str, ResponseSla]) -> list[ResponseStat]:
    """Pure: per asset and measure, episodes measured, how many within the contract's target, p50, max."""
    by_asset: dict[str, list[ResponseRow]] = {}
    for r in rows:
        by_asset.setdefault(r.asset, []).append(r)
    out: list[ResponseStat] = []
    for asset in sorted(by_asset):
        sla = targets.get(asset)
        for measure, field in _FIELDS.items():
            target = getattr(sla, field) if sla is not None else None
            values: list[float] = []
            within = 0
            for r in by_asset[asset]:
                if measure == "detect":
                    if r.detect_s is None:
                        continue
                    value, ok = r.detect_s, True
                elif measure == "notify":
                    if not r.delivered:
                        values.append(float("inf"))
                        continue
                    value, ok = r.notify_s or 0.0, True
                else:
                    if r.repair_s is None:
                        continue
                    value, ok = r.repair_s, r.resolved
                    if not ok and target is not None and value <= target:
                        continue  # still open, not yet beyond its target: no verdict yet
                values.append(value)
                if ok and target is not None and value <= target:
                    within += 1
            finite = [v for v in values if v != float("inf")]
            out.append(
                ResponseStat(
                    asset=asset,
                    measure=measure,
                    target_s=target,
                    episodes=len(values),
                    within=within if target is not None else None,
                    p50_s=round(statistics.median(finite), 3) if finite else None,
                    max_s=round(max(finite), 3) if finite else None,
                )
            )
    return out


RESPONSE_SQL = """
WITH opened AS (
    SELECT DISTINCT ON (correlation_key, episode_started_at)
           event_id, asset, correlation_key, episode_started_at, occurred_at,
           (payload->'data'->'context'->>'breached_at')::timestamptz AS breached_at
    FROM violation_events
    WHERE event_type = 'floe.contract.violation' AND episode_started_at >= $1 AND episode_started_at < $2
      AND ($3::text[] IS NULL OR asset = ANY($3))
    ORDER BY correlation_key, episode_started_at, occurred_at
)
SELECT o.asset,
       EXTRACT(EPOCH FROM o.occurred_at - o.breached_at)::float8 AS detect_s,
       (SELECT EXTRACT(EPOCH FROM min(d.delivered_at) - o.occurred_at)::float8 FROM alert_deliveries d
         WHERE d.event_id = o.event_id AND d.status = 'delivered') AS notify_s,
       r.open_duration_s AS resolved_s,
       EXTRACT(EPOCH FROM $2 - o.episode_started_at)::float8 AS open_s
FROM opened o
LEFT JOIN LATERAL (
    SELECT open_duration_s FROM violation_events r
    WHERE r.event_type = 'floe.contract.violation.resolved' AND r.correlation_key = o.correlation_key
      AND r.episode_started_at = o.episode_started_at
    LIMIT 1
) r ON true
"""


async def fetch_response_rows(
    conn: asyncpg.Connection, start: datetime, end: datetime, assets: Sequence[str] | None = None
) -> list[ResponseRow]:
    rows = await conn.fetch(RESPONSE_SQL, start, end, list(assets) if assets else None)
    return [
        ResponseRow(
            asset=r["asset"],
            detect_s=max(0.0, r["detect_s"]) if r["detect_s"] is not None else None,
            notify_s=max(0.0, r["notify_s"]) if r["notify_s"] is not None else None,
            delivered=r["notify_s"] is not None,
            repair_s=r["resolved_s"] if r["resolved_s"] is not None else r["open_s"],
            resolved=r["resolved_s"] is not None,
        )
        for r in rows
    ]


def _human(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds, "decimal")


def render_response(stats: Sequence[ResponseStat]) -> str:
    """Plain text table (one line per asset and measure); no width assumptions."""
    if not stats:
        return "response (timeToDetect/Notify/Repair): no violation episodes in the window"
    lines = ["response (timeToDetect / timeToNotify / timeToRepair)"]
    lines.append("asset | measure | target | episodes | within target | p50 | max")
    for s in stats:
        pct = f"{s.compliance_pct:.1f} %" if s.compliance_pct is not None else "-"
        lines.append(
            f"{s.asset} | {s.measure} | {_human(s.target_s)} | {s.episodes} | {pct} | {_human(s.p50_s)} | {_human(s.max_s)}"
        )
    return "\n".join(lines)
