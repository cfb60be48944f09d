"""`floe sla report` as a real subprocess over the real PostgreSQL: every format, --fail-under, the errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import asyncpg
import pytest

from floe_stream.reporting.compliance import ComplianceReport, build_report
from floe_stream.topics.enums import CheckType
from tests.integration.test_sla_accuracy import AS_OF, ASSETS, load_history

pytestmark = [pytest.mark.postgres]

FLOE = str(Path(sys.executable).parent / "floe")


async def floe(dsn: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "FLOE_DATABASE__DSN": dsn, "FLOE_DATABASE__CONNECT_TIMEOUT_S": "2", "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        FLOE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Cells(HTMLParser):
    """Collect (asset, check, field) → value from the report's data attributes; flag anything external."""

    def __init__(self) -> None:
        super().__init__()
        self.row: dict[str, str] = {}
        self.values: dict[tuple[str, str, str], str] = {}
        self.kpis: dict[str, str] = {}
        self.external: list[str] = []
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "link", "img", "iframe") or any(
            v.startswith(("http:", "https:", "//")) for k, v in a.items() if k in ("src", "href")
        ):
            self.external.append(tag)
        if tag == "svg":
            self.svgs += 1
        if tag == "tr":
            self.row = a
        if "data-field" in a:
            if tag == "div":
                self.kpis[a["data-field"]] = a["data-value"]
            elif "data-asset" in self.row:
                self.values[(self.row["data-asset"], self.row["data-check"], a["data-field"])] = a[
                    "data-value"
                ]


@pytest.mark.slow
async def test_every_format_over_the_same_history(pg_dsn: str, tmp_path: Path) -> None:
    await load_history(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        expected = await build_report(conn, window="30d", by="day", as_of=AS_OF)
    finally:
        await conn.close()
    common = ("sla", "report", "--window", "30d", "--as-of", AS_OF.isoformat())

    rc, out, err = await floe(pg_dsn, *common, "--format", "json")
    assert rc == 0, err
    got = ComplianceReport.model_validate_json(out)  # JSON = the library model
    assert got.model_dump(exclude={"generated_at"}) == expected.model_dump(exclude={"generated_at"})

    rc, out, err = await floe(pg_dsn, *common)  # rich table
    assert rc == 0, err
    for a in ASSETS:
        assert a in out
    first = next(a for a in expected.assets if a.asset == ASSETS[0]).checks[0]
    assert first.compliance_pct is not None
    assert f"{first.compliance_pct:.1f} %" in out and "overall" in out and "Needs attention" in out

    rc, out, err = await floe(pg_dsn, *common, "--format", "csv", "--by", "week")
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    window_rows = {(r["asset"], r["check_type"]): r for r in rows if r["period"] == "window"}
    assert (
        len(window_rows) == len(ASSETS) * len(CheckType) + 2
    )  # every check type generated; + idle.asset: freshness and drift expected, never ran
    for a in expected.assets:
        for c in a.checks:
            r = window_rows[(a.asset, c.check_type)]
            assert r["compliance_pct"] == ("" if c.compliance_pct is None else repr(c.compliance_pct))
            assert int(r["checks_run"]) == c.checks_run
    assert {r["period"] for r in rows} == {"window", "week"}

    html_file = tmp_path / "sla.html"
    rc, out, err = await floe(pg_dsn, *common, "--format", "html", "--output", str(html_file))
    assert rc == 0, err
    parser = Cells()
    parser.feed(html_file.read_text())
    assert parser.external == [], "the HTML must be self-contained"
    assert parser.svgs >= len(ASSETS) + 1  # compliance over time per asset + violations by type
    assert float(parser.kpis["compliance_pct"]) == expected.compliance_pct
    assert int(parser.kpis["episodes_opened"]) == expected.episodes_opened
    for a in expected.assets:
        for c in a.checks:
            value = parser.values[(a.asset, c.check_type, "compliance_pct")]
            assert (float(value) if value else None) == c.compliance_pct
            assert int(parser.values[(a.asset, c.check_type, "checks_run")]) == c.checks_run
            assert int(parser.values[(a.asset, c.check_type, "violations")]) == c.violations

    # filters and the CI gate
    rc, out, _ = await floe(pg_dsn, *common, "--format", "json", "--contract", "acc-2")
    assert rc == 0 and [a["asset"] for a in json.loads(out)["assets"]] == ["ops.events"]
    lowest = expected.lowest()
    assert lowest is not None
    rc, _, err = await floe(pg_dsn, *common, "--format", "json", "--fail-under", f"{lowest[2] + 0.01:.2f}")
    assert rc == 3 and "below target" in err and lowest[0] in err
    rc, _, _ = await floe(
        pg_dsn, *common, "--format", "json", "--fail-under", f"{max(0.0, lowest[2] - 0.01):.2f}"
    )
    assert rc == 0

    rc, _, err = await floe(pg_dsn, *common, "--contract", "nope")
    assert rc == 1 and "unknown contract 'nope'" in err and "acc-0" in err
    rc, _, err = await floe(pg_dsn, *common, "--owner", "nobody")
    assert rc == 1 and "no asset with owner 'nobody'" in err


async def test_errors_for_empty_and_unreachable_databases(pg_dsn: str) -> None:
    rc, out, err = await floe(pg_dsn, "sla", "report")
    assert rc == 1 and "SLA history is empty" in err and "Traceback" not in err + out
    rc, out, err = await floe("postgresql://postgres@127.0.0.1:1/none", "sla", "report")
    assert rc == 1 and "cannot connect to PostgreSQL" in err and "Traceback" not in err + out


@pytest.mark.slow
async def test_prune_rebuild_and_register_commands(pg_dsn: str) -> None:
    await load_history(pg_dsn)
    common = (
        "sla",
        "report",
        "--window",
        "30d",
        "--by",
        "week",
        "--as-of",
        AS_OF.isoformat(),
        "--format",
        "json",
    )
    rc, out, err = await floe(pg_dsn, *common)
    assert rc == 0, err
    before = ComplianceReport.model_validate_json(out)

    rc, out, err = await floe(pg_dsn, "db", "rebuild-aggregates")
    assert rc == 0 and "rebuilt" in out, err
    rc, out, _ = await floe(pg_dsn, *common)
    assert ComplianceReport.model_validate_json(out).model_dump(
        exclude={"generated_at"}
    ) == before.model_dump(exclude={"generated_at"})

    # the generated history is months old: pruning at 10 days removes the raw rows, the weekly history stays
    rc, out, err = await floe(pg_dsn, "db", "prune", "--older-than", "10d")
    assert rc == 0 and "aggregates and episodes kept" in out, err
    conn = await asyncpg.connect(pg_dsn)
    try:
        left = await conn.fetchval("SELECT count(*) FROM check_results")
    finally:
        await conn.close()
    assert left == len(ASSETS) * len(
        CheckType
    )  # the newest result per (asset, check type) is kept: its status still holds
    rc, out, _ = await floe(pg_dsn, *common)
    after = ComplianceReport.model_validate_json(out)
    by_asset = {b.asset: b for b in before.assets}  # rows are ordered worst first: compare by asset and check
    assert sorted(by_asset) == sorted(a.asset for a in after.assets)
    for a in after.assets:
        b = by_asset[a.asset]
        assert {s.check_type: s.model_dump() for s in a.series} == {
            s.check_type: s.model_dump() for s in b.series
        }

    rc, out, err = await floe(
        pg_dsn, "contracts", "register", str(Path(__file__).parents[1] / "fixtures" / "contracts")
    )
    assert rc == 0 and "registered 1 contract(s), 2 asset(s)" in out, err
    rc, out, err = await floe(pg_dsn, "db", "prune", "--older-than", "ninety")
    assert rc == 2 and "90d" in err
