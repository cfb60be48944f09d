"""SLA report benchmark: `floe sla report` library time over 1,000 assets × 90 days of aggregates.

    .venv/bin/python -m bench.report [--assets 1000] [--days 90] [--raw-per-day 6] [--dsn postgresql://…/postgres]

Fills a scratch database (COPY) with daily aggregates for freshness + schema_drift of every asset over --days days,
raw check results for the last 30 days (--raw-per-day per asset and check type) and the SLA status, then times
build_report for each window / bucket combination and the renderers. The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from floe_stream.reporting.compliance import build_report
from floe_stream.reporting.render import render_csv, render_html, render_json, table_text
from floe_stream.runtime.framework.database import migrate

TYPES = ("freshness", "schema_drift")


async def fill(
    conn: asyncpg.Connection, assets: int, days: int, raw_per_day: int, now: datetime
) -> tuple[int, int]:
    rnd = random.Random(1)
    today = now.date()
    agg = []
    for a in range(assets):
        for ct in TYPES:
            for d in range(days):
                day = today - timedelta(days=days - 1 - d)
                run = raw_per_day
                failed = rnd.choice([0, 0, 0, 1, 2])
                within = 86400.0 - failed * 1800.0 if ct == "freshness" else 0.0
                agg.append(
                    (
                        f"bench.a{a:04d}",
                        ct,
                        day,
                        "bench",
                        run,
                        run - failed,
                        failed,
                        0,
                        0,
                        within,
                        86400.0 - within if ct == "freshness" else 0.0,
                        0.0,
                        2 if failed else None,
                        run,
                        float(run),
                        0.5,
                        1.5,
                    )
                )
    await conn.copy_records_to_table(
        "daily_aggregates",
        records=agg,
        columns=[
            "asset",
            "check_type",
            "day",
            "contract_id",
            "checks_run",
            "passed",
            "failed",
            "skipped",
            "errored",
            "within_s",
            "breached_s",
            "unknown_s",
            "worst_severity_rank",
            "metric_count",
            "metric_sum",
            "metric_min",
            "metric_max",
        ],
    )
    raw = []
    status = []
    step = 86400 / raw_per_day
    start = now - timedelta(days=30)
    for a in range(assets):
        for ct in TYPES:
            t = start
            i = 0
            last = None
            while t < now:
                st = "fail" if rnd.random() < 0.05 else "pass"
                rid = f"a{a}-{ct}-{i}"
                raw.append(
                    (
                        rid,
                        f"bench.a{a:04d}",
                        "bench",
                        "1.0.0",
                        ct,
                        st,
                        None,
                        t,
                        "event",
                        1.0,
                        None,
                        None,
                        None,
                        "",
                        None,
                    )
                )
                last = (f"bench.a{a:04d}", ct, "bench", "1.0.0", rid, st, t)
                t += timedelta(seconds=step * rnd.uniform(0.5, 1.5))
                i += 1
            assert last is not None
            status.append(last)
    await conn.copy_records_to_table(
        "check_results",
        records=raw,
        columns=[
            "result_id",
            "asset",
            "contract_id",
            "contract_version",
            "check_type",
            "status",
            "severity",
            "evaluated_at",
            "trigger",
            "metric",
            "sla_consumed",
            "expected",
            "actual",
            "message",
            "source_event_id",
        ],
    )
    await conn.copy_records_to_table(
        "sla_status",
        records=status,
        columns=[
            "asset",
            "check_type",
            "contract_id",
            "contract_version",
            "last_result_id",
            "last_status",
            "last_evaluated_at",
        ],
    )
    await conn.execute("ANALYZE")
    return len(agg), len(raw)


async def timed(label: str, fn, repeat: int = 3) -> None:  # type: ignore[no-untyped-def]
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = await fn()
        times.append(time.perf_counter() - t0)
    extra = f"  ({len(out.assets)} assets)" if hasattr(out, "assets") else ""
    print(
        f"{label:<44} median {statistics.median(times) * 1000:8.0f} ms  min {min(times) * 1000:8.0f} ms{extra}"
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=1000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--raw-per-day", type=int, default=6)
    ap.add_argument(
        "--dsn", default=os.environ.get("FLOE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = ap.parse_args()
    name = f"floe_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = args.dsn.rpartition("/")
    conn = await asyncpg.connect(f"{base}/{name}")
    try:
        await migrate(conn)
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = time.perf_counter()
        n_agg, n_raw = await fill(conn, args.assets, args.days, args.raw_per_day, now)
        print(
            f"filled {n_agg:,} aggregate rows ({args.assets} assets × {len(TYPES)} checks × {args.days} days) and "
            f"{n_raw:,} raw results (30 days) in {time.perf_counter() - t0:.1f} s"
        )
        for window, by in (("30d", "day"), ("30d", "week"), ("30d", "month"), ("7d", "day"), ("24h", "day")):
            await timed(
                f"build_report window={window} by={by}",
                lambda w=window, b=by: build_report(conn, window=w, by=b, as_of=now),
            )
        await timed(
            "build_report window=30d --asset (one asset)",
            lambda: build_report(conn, window="30d", as_of=now, asset="bench.a0007"),
        )
        report = await build_report(conn, window="30d", by="day", as_of=now)
        for label, fn in (
            ("render json", render_json),
            ("render csv", render_csv),
            ("render html", render_html),
            ("render table (120 columns)", lambda r: table_text(r, 120)),
        ):
            t0 = time.perf_counter()
            text = fn(report)
            print(f"{label:<44} {(time.perf_counter() - t0) * 1000:8.0f} ms  ({len(text) / 1e6:.1f} MB)")
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
