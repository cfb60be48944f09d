"""A generated SLA history where a few assets are in real trouble among healthy ones (issue 16's "done").

Written through the sink's write path (``store.write_history``) with registered contracts (owners, targets):

* ``finance.revenue_daily_snapshot`` — freshness fails one hour in five over the last five days (≈ 96.7 %
  against the default 99 %): breaching since five days ago.
* ``ops.payment_events_stream`` — availability 99.58 %: fine by the default, but its contract says
  ``availability: 99.9%``, so it breaches *its* target.
* ``marketing.campaign_attribution`` — quality passes 90 % of evaluations; its floe ``slo`` says 98 %.
* ``sales.orders_enriched`` — freshness 99.17 % against 99 %: above target, the error budget almost spent (at risk).
* nine healthy assets (≥ 99.8 %), one of them with a 2-hour blip.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from floe_stream.contracts.loader import load_contract_text
from floe_stream.reporting import store
from floe_stream.topics.check_result import CheckResult

AS_OF = datetime(2026, 5, 20, 9, 30, tzinfo=UTC)
DAYS = 30
BREACHING = (
    "marketing.campaign_attribution",
    "finance.revenue_daily_snapshot",
    "ops.payment_events_stream",
)  # worst first
AT_RISK = "sales.orders_enriched"
HEALTHY = tuple(f"warehouse.dim_table_{i:02d}" for i in range(9))
ASSETS = (*BREACHING, AT_RISK, *HEALTHY)
OWNERS = {
    "finance.revenue_daily_snapshot": "fin-data",
    "ops.payment_events_stream": "payments-oncall",
    "marketing.campaign_attribution": "growth-analytics",
    "sales.orders_enriched": "sales-eng",
}

CONTRACT = """
apiVersion: v3.1.0
kind: DataContract
id: c-{i}
name: c-{i}
version: 1.0.0
status: active
team:
  name: {owner}
  members:
    - username: {owner}
      role: owner
schema:
  - name: t{i}
    physicalType: table
    customProperties:
      - property: floe
        value:
          asset: {asset}
{slo}
    properties:
      - name: id
        logicalType: integer
      - name: updated_at
        logicalType: timestamp
    quality:
      - metric: nullValues
        column: id
        mustBe: 0
slaProperties:
  - property: latency
    value: 1
    unit: h
    element: t{i}.updated_at
{availability}
"""


def contract_text(i: int, asset: str) -> str:
    availability = (
        "  - property: availability\n    value: 99.9%" if asset == "ops.payment_events_stream" else ""
    )
    slo = "          slo:\n            quality: 98%" if asset == "marketing.campaign_attribution" else ""
    return CONTRACT.format(
        i=i, asset=asset, owner=OWNERS.get(asset, "warehouse-team"), slo=slo, availability=availability
    )


def _status(asset: str, check: str, hour: int) -> str:
    """hour 0 = the first hour of the history, DAYS*24-1 the last."""
    total = DAYS * 24
    if asset == "finance.revenue_daily_snapshot" and check == "freshness":
        return "fail" if hour >= total - 5 * 24 and hour % 5 == 0 else "pass"
    if asset == "ops.payment_events_stream" and check == "availability":
        return "fail" if hour in (100, 350, 600) else "pass"
    if asset == "sales.orders_enriched" and check == "freshness":
        return "fail" if hour in (40, 41, 300, 301, 650, 651) else "pass"
    if asset == HEALTHY[3] and check == "freshness":
        return "fail" if hour in (200, 201) else "pass"
    return "pass"


def generate() -> list[CheckResult]:
    start = AS_OF - timedelta(days=DAYS)
    out: list[CheckResult] = []
    for i, asset in enumerate(ASSETS):
        checks = ["freshness", "schema_drift", "quality"]
        if asset == "ops.payment_events_stream":
            checks.append("availability")
        for check in checks:
            every = 6 if check == "quality" else 1
            for hour in range(0, DAYS * 24, every):
                if check == "quality":
                    # 12 of the last 40 evaluations fail (last 10 days) → 90 % pass over 120 evaluations
                    n = hour // 6
                    status = (
                        "fail"
                        if asset == "marketing.campaign_attribution" and n >= 80 and n % 10 < 3
                        else "pass"
                    )
                else:
                    status = _status(asset, check, hour)
                out.append(CheckResult(
                    result_id=f"{asset}/{check}/{hour:04d}", asset=asset, contract_id=f"c-{i}",
                    contract_version="1.0.0", check_type=check, status=status,  # type: ignore[arg-type]
                    severity="error" if status == "fail" else None,  # type: ignore[arg-type]
                    evaluated_at=start + timedelta(hours=hour, minutes=3), metric=1.0,
                ))  # fmt: skip
    return out


async def load_trouble(dsn: str) -> list[CheckResult]:
    results = generate()
    conn = await asyncpg.connect(dsn)
    try:
        contracts = [load_contract_text(contract_text(i, a), f"c-{i}.yaml") for i, a in enumerate(ASSETS)]
        await store.register_contracts(conn, contracts)
        results.sort(key=lambda r: r.evaluated_at)
        for k in range(0, len(results), 2000):
            async with conn.transaction():
                await store.write_history(conn, results[k : k + 2000])
    finally:
        await conn.close()
    return results
