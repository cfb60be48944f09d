"""Renderings of the SLA reports: rich tables, JSON (the library models), CSV and self-contained HTML."""

from __future__ import annotations

import csv
import html
import io
import textwrap
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
from rich.console import Console

from floe_stream.durations import format_duration
from floe_stream.printable import csv_cell, printable_model
from floe_stream.reporting.compliance import AssetCompliance, CheckSeries, ComplianceReport


# --- the compliance report (floe sla report) ------------------------------------------------------------
def _pct(x: float | None) -> str:
    """Human percentages: ``98.7 %``; two decimals only where one would read as 100 %."""
    if x is None:
        return "n/a"
    if x < 100 and round(x, 1) >= 100:
        return f"{x:.2f} %"
    return f"{x:.1f} %"


def _dur(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(seconds, "report")


def _budget(x: float | None) -> str:
    if x is None:
        return "—"
    return "spent" if x <= 0 else f"{x:.0f} %"


def _since(t: datetime | None) -> str:
    return "" if t is None else f"{t:%Y-%m-%d}"


_TREND_ARROW = {"improving": "↑ improving", "degrading": "↓ degrading", "stable": "→ stable"}
_STATUS = {"breaching": "BREACH", "at_risk": "at risk", "ok": "ok", "no_data": "no data"}
_STATUS_STYLE = {"breaching": ("red", True), "at_risk": ("yellow", True), "ok": ("green", False)}


@dataclass(frozen=True, slots=True)
class _Col:
    name: str
    priority: int  # 0 = never dropped; higher numbers are dropped first when the width is short
    right: bool = False
    wrap: int = 0  # > 0: may wrap down to this width instead of being dropped


def _layout(
    cols: list[_Col], rows: list[list[str]], width: int | None, styles: list[dict[int, str]] | None = None
) -> tuple[list[str], list[str]]:
    """Plain-text table fitted to ``width`` (None = natural width): columns are dropped by priority (or wrapped),
    never truncated. Returns (lines, names of the columns dropped)."""
    gap = 2
    nat = [max([len(c.name), *(len(r[i]) for r in rows)]) for i, c in enumerate(cols)]
    widths = dict(enumerate(nat))
    keep: set[int] = set()
    used = 0
    for i in sorted(range(len(cols)), key=lambda i: (cols[i].priority, i)):
        need = nat[i] + (gap if keep else 0)
        if width is None or cols[i].priority == 0 or used + need <= width:
            keep.add(i)
            used += need
        elif cols[i].wrap and width - used - gap >= cols[i].wrap:
            widths[i] = width - used - gap
            keep.add(i)
            used = width
    order = sorted(keep)
    dropped = [c.name for i, c in enumerate(cols) if i not in keep]

    def cell(i: int, text: str) -> str:
        return text.rjust(widths[i]) if cols[i].right else text.ljust(widths[i])

    lines = ["  ".join(cell(i, cols[i].name) for i in order).rstrip()]
    lines.append("  ".join("─" * widths[i] for i in order))
    for n, r in enumerate(rows):
        wrapped = {i: (textwrap.wrap(r[i], widths[i], break_long_words=False) or [""]) for i in order}
        for k in range(max(len(w) for w in wrapped.values())):
            parts = []
            for i in order:
                text = cell(i, wrapped[i][k] if k < len(wrapped[i]) else "")
                style = (styles[n].get(i) if styles else None) if k == 0 else None
                parts.append(f"\x00{style}\x01{text}\x02" if style and text.strip() else text)
            lines.append("  ".join(parts).rstrip())
    return lines, dropped


def _paint(line: str, color: bool) -> str:
    """Apply the style markers of :func:`_layout` (ANSI on a terminal, nothing in pipes and files)."""
    while "\x00" in line:
        a, rest = line.split("\x00", 1)
        style, rest = rest.split("\x01", 1)
        text, rest = rest.split("\x02", 1)
        fg, bold = style.split(":")
        line = a + (click.style(text, fg=fg, bold=bold == "1") if color else text) + rest
    return line


def _wrap(text: str, width: int | None, indent: str = "", first: str = "") -> list[str]:
    if width is None:
        return [indent + first + text]
    return textwrap.wrap(
        text,
        max(20, width),
        initial_indent=indent + first,
        subsequent_indent=indent + " " * (len(first) + 2),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent]


def table_text(
    report: ComplianceReport, width: int | None = None, color: bool = False, attention_max: int = 15
) -> str:
    """The text report, fitted to ``width`` columns (None: as wide as the content; pipes and files get the same
    layout as a terminal of that width): a headline, "needs attention", one row per (asset, check) worst first,
    totals per check type. Asset ids are never truncated; control characters of input text are shown escaped."""
    report = printable_model(report)  # an ESC sequence in an asset id must not reach the terminal
    out: list[str] = []
    flt = ", ".join(f"{k}={v}" for k, v in report.filters.items())
    every = {x.asset for x in report.attention if x.status == "breaching"}
    out += _wrap(
        f"SLA compliance, last {report.window} ({report.window_start:%Y-%m-%d %H:%M} → "
        f"{report.window_end:%Y-%m-%d %H:%M} UTC){' — ' + flt if flt else ''}",
        width,
    )
    out += _wrap(
        f"{len(every)} of {max(report.assets_total, len(report.assets))} asset(s) breaching their target, "
        f"{len({x.asset for x in report.attention}) - len(every)} at risk · overall {_pct(report.compliance_pct)} · "
        f"{report.checks_run:,} checks · {report.episodes_opened} episodes opened · MTTR {_dur(report.mttr_s)}",
        width,
    )
    if report.attention:
        out += ["", "Needs attention"]
        for x in report.attention[:attention_max]:
            tag = _STATUS[x.status]
            st = _STATUS_STYLE[x.status]
            head = f"{tag:<7} {x.asset}  {x.check_type}"
            extra = f"  owner {x.owner}" if x.owner else ""
            if width is None or len(head) + len(extra) <= width:
                head += extra
                extra = ""
            out.append(_paint(f"\x00{st[0]}:{int(st[1])}\x01{tag:<7}\x02" + head[7:], color))
            why = (
                x.reason
                + (f", since {_since(x.since)}" if x.since else "")
                + (f"; owner {x.owner}" if extra else "")
            )
            out += _wrap(why, width, " " * 8)
            if x.last_run_failed:
                out += _wrap(f"last run failed: {x.last_run_failed}", width, " " * 8)
            out += _wrap(x.command, width, " " * 8, "→ ")
        if len(report.attention) > attention_max:
            out.append(
                f"        … and {len(report.attention) - attention_max} more (--only-failing, --top N, --format json)"
            )
    cols = [
        _Col("status", 1),
        _Col("asset", 0),
        _Col("check", 2),
        _Col("compliance", 3, right=True),
        _Col("target", 4, right=True),
        _Col("budget left", 6, right=True),
        _Col("since", 8),
        _Col("owner", 7),
        _Col("violations", 10, right=True),
        _Col("MTTR", 11, right=True),
        _Col(f"trend by {report.bucket}", 9),
        _Col("checks", 12, right=True),
        _Col("why", 5, wrap=24),
    ]
    rows: list[list[str]] = []
    styles: list[dict[int, str]] = []
    not_run: list[str] = []
    for a in report.assets:
        first = True
        ran = [c for c in a.checks if c.status != "no_data"]
        if a.status == "ok" and len(ran) > 1:  # a healthy asset reads as one row: its lowest check
            low = min(ran, key=lambda c: c.compliance_pct or 0.0)
            rows.append(
                [
                    "ok",
                    a.asset,
                    f"{len(ran)} checks",
                    _pct(low.compliance_pct),
                    _pct(low.target_pct),
                    _budget(low.error_budget_left_pct),
                    "",
                    a.owner or a.team or "",
                    str(sum(c.violations for c in ran)),
                    _dur(low.mttr_s),
                    _TREND_ARROW[low.trend],
                    str(sum(c.checks_run for c in ran)),
                    f"lowest: {low.check_type}" if (low.compliance_pct or 0) < 100 else "",
                ]
            )
            styles.append({0: "green:0"})
            not_run += [f"{a.asset} ({c.check_type})" for c in a.checks if c.status == "no_data"]
            continue
        for c in a.checks:
            if c.status == "no_data":
                not_run.append(f"{a.asset} ({c.check_type})")
                continue
            rows.append(
                [
                    _STATUS[c.status],
                    a.asset if first else "",
                    c.check_type,
                    _pct(c.compliance_pct),
                    _pct(c.target_pct),
                    _budget(c.error_budget_left_pct),
                    _since(c.since),
                    (a.owner or a.team or "") if first else "",
                    str(c.violations),
                    _dur(c.mttr_s),
                    _TREND_ARROW[c.trend],
                    str(c.checks_run),
                    c.reason if c.status != "ok" else "",
                ]
            )
            sty = _STATUS_STYLE.get(c.status)
            styles.append({0: f"{sty[0]}:{int(sty[1])}"} if sty else {})
            first = False
    out += [
        "",
        "Assets, worst first"
        + (
            f" ({len(report.assets)} of {max(report.assets_total, len(report.assets))} shown)"
            if len(report.assets) < max(report.assets_total, len(report.assets))
            else ""
        ),
    ]
    if rows:
        lines, dropped = _layout(cols, rows, width, styles)
        out += [_paint(line, color) for line in lines]
        if dropped:
            out += _wrap(
                f"(not shown at {width} columns: {', '.join(dropped)} — widen the terminal, set COLUMNS, "
                "or use --format json/csv/html)",
                width,
            )
    else:
        out.append("no check results in this window")
    if not_run:
        out += [
            "",
            *_wrap(f"expected but no result in the window ({len(not_run)}): " + ", ".join(not_run), width),
        ]
    if report.totals:
        t_cols = [
            _Col("check", 0),
            _Col("compliance", 1, right=True),
            _Col("checks", 4, right=True),
            _Col("coverage", 5, right=True),
            _Col("violations", 2, right=True),
            _Col("resolved", 6, right=True),
            _Col("MTTR", 3, right=True),
            _Col("trend", 7),
        ]
        t_rows = [
            [
                c.check_type,
                _pct(c.compliance_pct),
                str(c.checks_run),
                _pct(c.coverage_pct),
                str(c.violations),
                str(c.episodes_resolved),
                _dur(c.mttr_s),
                _TREND_ARROW[c.trend],
            ]
            for c in report.totals
        ]
        out += ["", "All assets, by check type"] + _layout(t_cols, t_rows, width)[0]
    for kind in ("contract", "team", "owner"):
        groups = [g for g in report.groups if g.kind == kind]
        if len(groups) < 2:
            continue
        g_cols = [
            _Col(kind, 0),
            _Col("assets", 2, right=True),
            _Col("compliance", 1, right=True),
            _Col("violations", 3, right=True),
            _Col("lowest asset", 4, wrap=20),
        ]
        g_rows = [
            [
                g.name,
                str(g.assets),
                _pct(g.compliance_pct),
                str(g.violations),
                f"{g.lowest_asset} ({_pct(g.lowest_pct)})" if g.lowest_asset else "",
            ]
            for g in sorted(groups, key=lambda g: (g.compliance_pct is None, g.compliance_pct or 0.0))
        ]
        out += ["", f"By {kind}, lowest first"] + _layout(g_cols, g_rows, width)[0]
    return "\n".join(out) + "\n"


def render_table(report: ComplianceReport, console: Console | None = None, width: int | None = None) -> None:
    """Print :func:`table_text` to ``console`` (default: stdout), fitted to its width."""
    console = console or Console()
    w = width or console.width
    console.out(
        table_text(report, w, color=console.is_terminal and not console.no_color), highlight=False, end=""
    )


def render_junit(report: ComplianceReport) -> str:
    """JUnit XML for CI: one test case per (asset, check); breaching = failure, no data = skipped."""
    from xml.sax.saxutils import quoteattr

    report = printable_model(report)  # control characters are not even valid XML 1.0
    cases = [(a, c) for a in report.assets for c in a.checks]
    failures = sum(1 for _, c in cases if c.status == "breaching")
    skipped = sum(1 for _, c in cases if c.status == "no_data")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="floe sla report" tests="{len(cases)}" failures="{failures}" skipped="{skipped}">',
        f'<testsuite name={quoteattr(f"SLA compliance, last {report.window}")} tests="{len(cases)}" '
        f'failures="{failures}" skipped="{skipped}" timestamp="{report.window_end.isoformat()}">',
    ]
    for a, c in cases:
        head = f"<testcase classname={quoteattr(a.asset)} name={quoteattr(c.check_type)}"
        detail = (
            f"{a.asset} {c.check_type}: {c.reason}"
            + (f", since {_since(c.since)}" if c.since else "")
            + f" (owner {a.owner or a.team or '-'}, contract {a.contract_id or '-'}); look closer: "
            f"floe sla report --asset {a.asset} --window {report.window} --by day"
        )
        if c.status == "breaching":
            out.append(f'{head}><failure message={quoteattr(detail)} type="below-target"/></testcase>')
        elif c.status == "no_data":
            out.append(f"{head}><skipped message={quoteattr(c.reason)}/></testcase>")
        elif c.status == "at_risk":
            out.append(f"{head}><system-out>{html.escape('at risk: ' + detail)}</system-out></testcase>")
        else:
            out.append(f"{head}/>")
    out += ["</testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


def render_github(report: ComplianceReport) -> str:
    """GitHub Actions workflow commands: an error annotation per breaching pair, a warning per pair at risk."""
    report = printable_model(report)  # a CI log is a terminal too
    out = []

    def esc(x: str) -> str:
        return x.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    for x in report.attention:
        level = "error" if x.status == "breaching" else "warning"
        title = f"SLA {'breach' if level == 'error' else 'at risk'}: {x.asset} {x.check_type}"
        msg = (
            f"{x.reason}"
            + (f", since {_since(x.since)}" if x.since else "")
            + (f" (owner {x.owner})" if x.owner else "")
            + f" — look closer: {x.command}"
        )
        out.append(f"::{level} title={esc(title).replace(',', '%2C').replace(':', '%3A')}::{esc(msg)}")
    n = sum(1 for x in report.attention if x.status == "breaching")
    out.append(
        f"{n} (asset, check) pair(s) below target, {len(report.attention) - n} at risk, "
        f"overall {_pct(report.compliance_pct)} over the last {report.window}"
    )
    return "\n".join(out) + "\n"


def render_json(report: ComplianceReport) -> str:
    return report.model_dump_json(indent=2)


CSV_COLUMNS = (
    "asset", "contract_id", "owner", "team", "check_type", "period", "start", "end", "compliance_pct",
    "checks_run", "passed", "failed", "minutes_observed", "minutes_within_sla", "coverage_pct", "violations",
    "mttr_s", "trend",
)  # fmt: skip


def render_csv(report: ComplianceReport) -> str:
    """One row per (asset, check type) for the window (period=window), then one per bucket (period=day|week|month).
    No cell starts a spreadsheet formula (:func:`~floe_stream.printable.csv_cell`)."""
    buf = io.StringIO()
    w = _SafeWriter(csv.writer(buf, lineterminator="\n"))
    w.writerow(CSV_COLUMNS)
    for a in report.assets:
        for c in a.checks:
            w.writerow(
                [
                    a.asset,
                    a.contract_id or "",
                    a.owner or "",
                    a.team or "",
                    c.check_type,
                    "window",
                    report.window_start.isoformat(),
                    report.window_end.isoformat(),
                    _num(c.compliance_pct),
                    c.checks_run,
                    c.passed,
                    c.failed,
                    c.minutes_observed,
                    c.minutes_within_sla,
                    _num(c.coverage_pct),
                    c.violations,
                    _num(c.mttr_s),
                    c.trend,
                ]
            )
        for s in a.series:
            for p in s.points:
                w.writerow(
                    [
                        a.asset,
                        a.contract_id or "",
                        a.owner or "",
                        a.team or "",
                        s.check_type,
                        report.bucket,
                        p.start.isoformat(),
                        p.end.isoformat(),
                        _num(p.compliance_pct),
                        p.checks_run,
                        p.passed,
                        p.failed,
                        p.minutes_observed,
                        p.minutes_within_sla,
                        "",
                        p.violations,
                        "",
                        "",
                    ]
                )
    return buf.getvalue()


class _SafeWriter:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def writerow(self, row: list[Any] | tuple[Any, ...]) -> None:
        self.inner.writerow([csv_cell(v) for v in row])


def _num(x: float | None) -> str:
    return "" if x is None else repr(x)


# --- HTML: one self-contained file, inline SVG charts -----------------------------------------------------
_COLORS = {"freshness": "#2563eb", "schema_drift": "#9333ea", "quality": "#059669", "availability": "#d97706"}
_SEV_COLORS = {"info": "#93c5fd", "warning": "#fbbf24", "error": "#f87171", "critical": "#b91c1c"}
_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;padding:1.2rem;color:#111827;
max-width:1180px;line-height:1.4}
h1{font-size:1.35rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.muted{color:#6b7280;font-size:.85rem}
#kpis{display:flex;flex-wrap:wrap;gap:.6rem;margin:1rem 0}
.kpi{flex:1 1 8rem;border:1px solid #e5e7eb;border-radius:8px;padding:.5rem .8rem;background:#f9fafb}
.kpi b{display:block;font-size:1.5rem}.kpi.breaching b{color:#b91c1c}.kpi.at_risk b{color:#b45309}
.badge{display:inline-block;min-width:4.6rem;text-align:center;border-radius:999px;padding:.05rem .5rem;
font-size:.75rem;font-weight:700;text-transform:uppercase;letter-spacing:.02em}
.badge.breaching{background:#fee2e2;color:#991b1b}.badge.at_risk{background:#fef3c7;color:#92400e}
.badge.ok{background:#dcfce7;color:#166534}.badge.no_data{background:#f3f4f6;color:#4b5563}
#attention ol{list-style:none;padding:0;margin:0}
#attention li{border:1px solid #fecaca;border-left:5px solid #dc2626;border-radius:6px;padding:.5rem .8rem;
margin:.4rem 0;background:#fff7f7}
#attention li.at_risk{border-color:#fde68a;border-left-color:#d97706;background:#fffbeb}
#attention .what{font-weight:600;overflow-wrap:anywhere}
#attention code{display:block;font-size:.8rem;white-space:nowrap;overflow-x:auto}
.asset-head{display:grid;grid-template-columns:6rem minmax(12rem,2fr) minmax(7rem,1fr) 9rem 6rem 190px;gap:.6rem;
align-items:center;padding:.25rem .5rem;font-size:.8rem;color:#6b7280;border-bottom:2px solid #e5e7eb}
details.asset{border-bottom:1px solid #e5e7eb}
details.asset>summary{display:grid;grid-template-columns:6rem minmax(12rem,2fr) minmax(7rem,1fr) 9rem 6rem 190px;
gap:.6rem;align-items:center;padding:.35rem .5rem;cursor:pointer;list-style:none}
details.asset>summary::-webkit-details-marker{display:none}
details.asset[open]>summary{background:#f9fafb}
details.asset>summary:hover{background:#f3f4f6}
.name{font-weight:600;overflow-wrap:anywhere}.name small{display:block;font-weight:400;color:#6b7280}
.num{font-variant-numeric:tabular-nums}.bad{color:#b91c1c;font-weight:600}
.detail{padding:.5rem .5rem 1rem}.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.4rem 0 .8rem;font-size:.85rem}
th,td{border:1px solid #e5e7eb;padding:.25rem .5rem;text-align:right;white-space:nowrap}th{background:#f9fafb}
td.l,th.l{text-align:left;white-space:normal}
svg text{font-size:11px;fill:#374151}svg.spark{display:block;width:190px;height:34px}
@media (max-width:700px){
 body{padding:.7rem}
 .asset-head{display:none}
 details.asset>summary{grid-template-columns:auto 1fr;grid-template-areas:"badge num" "name name" "owner owner"
 "spark spark";row-gap:.15rem}
 details.asset>summary .badge{grid-area:badge;justify-self:start}
 details.asset>summary .comp{grid-area:num;justify-self:end;text-align:right}
 details.asset>summary .name{grid-area:name}
 details.asset>summary .owner{grid-area:owner;font-size:.8rem;color:#6b7280}
 details.asset>summary .budget{display:none}
 details.asset>summary svg.spark{grid-area:spark;width:100%}
 .kpi{flex:1 1 40%}
}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _y_floor(report: ComplianceReport) -> float:
    """The one y-axis floor every chart shares: just below the lowest point or target shown, in steps of 5."""
    vals = [
        p.compliance_pct
        for a in report.assets
        for s in a.series
        for p in s.points
        if p.compliance_pct is not None
    ]
    vals += [c.target_pct for a in report.assets for c in a.checks if c.target_pct is not None]
    lo = min([*vals, 100.0]) - 1.0
    return float(max(0, int(lo // 5 * 5)))


def _sparkline(a: AssetCompliance, lo: float, width: int = 190, height: int = 34) -> str:
    """The asset's worst check over the buckets, on the shared y-axis (lo … 100 %), with its target dashed."""
    c = a.checks[0] if a.checks else None
    s = next((x for x in a.series if c is not None and x.check_type == c.check_type), None)
    if c is None or s is None or not s.points:
        return f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" aria-label="no data"></svg>'
    n = len(s.points)

    def x(i: int) -> float:
        return 2 + (width - 4) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return 2 + (height - 4) * (1 - (v - lo) / (100.0 - lo if lo < 100 else 1))

    color = {"breaching": "#dc2626", "at_risk": "#d97706"}.get(c.status, "#16a34a")
    parts = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
        f'aria-label="{_e(c.check_type)} by {_e(s.points[0].label)}…, y axis {lo:.0f}–100 %">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa"/>',
    ]
    if c.target_pct is not None:
        parts.append(
            f'<line class="target" data-target="{c.target_pct}" x1="0" x2="{width}" y1="{y(c.target_pct):.1f}" '
            f'y2="{y(c.target_pct):.1f}" stroke="#6b7280" stroke-dasharray="3 2" stroke-width="1"/>'
        )
    pts = [(x(i), y(p.compliance_pct)) for i, p in enumerate(s.points) if p.compliance_pct is not None]
    if len(pts) > 1:
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
            f'points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in pts)}"/>'
        )
    for (px, py), p in zip(pts, [p for p in s.points if p.compliance_pct is not None], strict=True):
        if c.target_pct is not None and (p.compliance_pct or 0) < c.target_pct:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="1.8" fill="{color}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _line_chart(
    series: list[CheckSeries], lo: float, targets: dict[str, float], width: int = 720, height: int = 200
) -> str:
    pad_l, pad_r, pad_t, pad_b = 44, 110, 10, 28
    n = max((len(s.points) for s in series), default=0)
    if n == 0:
        return ""
    iw, ih = width - pad_l - pad_r, height - pad_t - pad_b

    def x(i: int) -> float:
        return pad_l + (iw * i / (n - 1) if n > 1 else iw / 2)

    def y(v: float) -> float:
        return pad_t + ih * (1 - (v - lo) / (100.0 - lo if lo < 100 else 1))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" style="max-width:100%;'
        f'height:auto" width="{width}" role="img" aria-label="compliance over time">'
    ]
    for v in (lo, (lo + 100) / 2, 100.0):
        parts.append(
            f'<line x1="{pad_l}" x2="{pad_l + iw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e7eb"/>'
        )
        parts.append(f'<text x="{pad_l - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}%</text>')
    labels = series[0].points
    step = max(1, -(-70 * (n - 1) // max(1, iw)))
    for i in range(0, n, step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle">{_e(labels[i].label)}</text>'
        )
    for k, s in enumerate(series):
        color = _COLORS.get(s.check_type, "#374151")
        if s.check_type in targets:
            ty = y(targets[s.check_type])
            parts.append(
                f'<line x1="{pad_l}" x2="{pad_l + iw}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{color}" '
                'stroke-dasharray="4 3" opacity=".7"/>'
            )
        pts = [(x(i), y(p.compliance_pct)) for i, p in enumerate(s.points) if p.compliance_pct is not None]
        if len(pts) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for px, py in pts:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}"/>')
        parts.append(
            f'<rect x="{pad_l + iw + 12}" y="{pad_t + 16 * k}" width="10" height="10" fill="{color}"/>'
        )
        parts.append(f'<text x="{pad_l + iw + 26}" y="{pad_t + 9 + 16 * k}">{_e(s.check_type)}</text>')
    parts.append(f'<text x="{pad_l + iw + 12}" y="{pad_t + 16 * len(series) + 9}">- - target</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bar_chart(report: ComplianceReport, width: int = 520, height: int = 200) -> str:
    by_type: dict[str, dict[str, int]] = {}
    for v in report.violations:
        by_type.setdefault(v.check_type, {})[v.severity] = v.episodes
    if not by_type:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1" aria-hidden="true"></svg>'
            '<p class="muted">No violation episodes in this window.</p>'
        )
    pad_l, pad_b, pad_t = 110, 20, 10
    top = max(sum(s.values()) for s in by_type.values())
    bar_h = max(12, min(30, (height - pad_t - pad_b) // max(1, len(by_type)) - 8))
    iw = width - pad_l - 60
    h = pad_t + pad_b + len(by_type) * (bar_h + 8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {h}" width="{width}" '
        f'style="max-width:100%;height:auto" role="img" aria-label="violations by type">'
    ]
    for i, (ct, sevs) in enumerate(sorted(by_type.items())):
        yy = pad_t + i * (bar_h + 8)
        parts.append(f'<text x="{pad_l - 6}" y="{yy + bar_h / 2 + 4:.1f}" text-anchor="end">{_e(ct)}</text>')
        xx = float(pad_l)
        for sev in ("info", "warning", "error", "critical"):
            n = sevs.get(sev, 0)
            if not n:
                continue
            w = iw * n / top
            parts.append(
                f'<rect x="{xx:.1f}" y="{yy}" width="{w:.1f}" height="{bar_h}" fill="{_SEV_COLORS[sev]}">'
                f"<title>{_e(ct)} {sev}: {n}</title></rect>"
            )
            xx += w
        parts.append(f'<text x="{xx + 6:.1f}" y="{yy + bar_h / 2 + 4:.1f}">{sum(sevs.values())}</text>')
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="display:inline-block;width:10px;height:10px;background:{c}"></span> {s}'
        for s, c in _SEV_COLORS.items()
    )
    return "".join(parts) + f'<p class="muted">{legend}</p>'


def _td(value: object, field: str, shown: str | None = None, cls: str = "") -> str:
    """A number cell: the human figure shown, the exact one in ``data-value`` (as in the JSON model)."""
    if shown is None:
        if field.endswith("_pct") and isinstance(value, int | float | None):
            shown = _pct(value)
        else:
            shown = "—" if value is None else str(value)
    raw = "" if value is None else value
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-field="{field}" data-value="{_e(raw)}">{_e(shown)}</td>'


def render_html(report: ComplianceReport) -> str:
    """One self-contained HTML file (no scripts, no external resources), worst first: summary, "needs attention",
    one row per asset (status, owner, contract, compliance against target, error budget, a sparkline on the
    shared y-axis with the target dashed) whose details (checks, chart, buckets) are collapsed; then totals.

    Every number cell carries ``data-field`` and ``data-value`` (the exact figure from the JSON model).
    """
    flt = ", ".join(f"{k}={v}" for k, v in report.filters.items()) or "all assets"
    lo = _y_floor(report)
    counts = {
        k: sum(1 for a in report.assets if a.status == k) for k in ("breaching", "at_risk", "ok", "no_data")
    }
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>SLA compliance — last {_e(report.window)}</title><style>{_CSS}</style></head><body>",
        f"<h1>SLA compliance — last {_e(report.window)} ({_e(flt)})</h1>",
        f'<p class="muted">{report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%Y-%m-%d %H:%M} UTC · '
        f"generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC by floe-stream · "
        f"{len(report.assets)} of {max(report.assets_total, len(report.assets))} asset(s) shown</p>",
        '<section id="summary"><div id="kpis">',
    ]
    for label, key in (("breaching", "breaching"), ("at risk", "at_risk"), ("ok", "ok")):
        out.append(f'<div class="kpi {key}" data-count="{key}"><b>{counts[key]}</b>asset(s) {label}</div>')
    for label, field, value in (
        ("overall compliance", "compliance_pct", _pct(report.compliance_pct)),
        ("checks run", "checks_run", f"{report.checks_run:,}"),
        ("coverage", "coverage_pct", _pct(report.coverage_pct)),
        ("episodes opened", "episodes_opened", report.episodes_opened),
        ("MTTR", "mttr_s", _dur(report.mttr_s)),
    ):
        raw = getattr(report, field)
        out.append(
            f'<div class="kpi" data-field="{field}" data-value="{_e("" if raw is None else raw)}">'
            f"<b>{_e(value)}</b>{_e(label)}</div>"
        )
    out.append("</div></section>")

    out.append('<section id="attention"><h2>Needs attention</h2>')
    if report.attention:
        out.append("<ol>")
        for x in report.attention:
            far = (
                f"{x.below_target_pp:.1f} pp below target"
                if x.below_target_pp is not None
                else f"{_budget(x.error_budget_left_pct)} of the error budget left"
            )
            out.append(
                f'<li class="{x.status}" data-asset="{_e(x.asset)}" data-check="{_e(x.check_type)}" '
                f'data-status="{x.status}"><span class="badge {x.status}">{_STATUS[x.status]}</span> '
                f'<span class="what">{_e(x.asset)} · {_e(x.check_type)}</span>'
                + (f" · owner <b>{_e(x.owner)}</b>" if x.owner else "")
                + f'<br><span class="num">{_pct(x.compliance_pct)}</span> against target '
                f'<span class="num" data-field="target_pct" data-value="{_e(x.target_pct)}">{_pct(x.target_pct)}</span>'
                f" — {_e(far if x.status == 'breaching' else x.reason)}"
                + (f", since {_since(x.since)}" if x.since else "")
                + f"<code>{_e(x.command)}</code></li>"
            )
        out.append("</ol>")
    else:
        out.append('<p class="muted">Every asset meets its target.</p>')
    out.append("</section>")

    out.append(
        f'<section id="assets"><h2>Assets, worst first</h2><p class="muted">Sparklines: the worst check by '
        f"{_e(report.bucket)}, every one on the same scale ({lo:.0f} – 100 %); dashed = its target. "
        "Click a row for its checks.</p>"
    )
    out.append(
        '<div class="asset-head"><span>status</span><span>asset · contract</span><span>owner</span>'
        "<span>compliance / target</span><span>budget left</span><span>trend</span></div>"
    )
    for a in report.assets:
        worst = a.checks[0] if a.checks else None
        comp = (
            f'<span class="{"bad" if worst.status == "breaching" else ""}">{_pct(worst.compliance_pct)}</span>'
            f' / {_pct(worst.target_pct)}<br><small class="muted">{_e(worst.check_type)}</small>'
            if worst
            else "—"
        )
        out.append(
            f'<details class="asset" data-asset="{_e(a.asset)}" data-status="{a.status}"><summary>'
            f'<span class="badge {a.status}">{_STATUS[a.status]}</span>'
            f'<span class="name">{_e(a.asset)}<small>{_e(a.contract_id or "no contract")}</small></span>'
            f'<span class="owner">{_e(a.owner or a.team or "—")}</span><span class="num comp">{comp}</span>'
            f'<span class="num budget">{_budget(worst.error_budget_left_pct if worst else None)}</span>'
            f"{_sparkline(a, lo)}</summary>"
        )
        out.append(
            '<div class="detail"><div class="scroll"><table class="checks"><tr><th class="l">check</th>'
            '<th class="l">status</th><th>compliance</th><th>target</th><th>budget left</th><th>checks</th>'
            "<th>passed</th><th>failed</th><th>time within SLA</th><th>coverage</th><th>violations</th>"
            '<th>MTTR</th><th class="l">trend</th><th class="l">why</th></tr>'
        )
        for c in a.checks:
            bad = "bad" if c.status == "breaching" else ""
            out.append(
                f'<tr data-asset="{_e(a.asset)}" data-check="{_e(c.check_type)}"><td class="l">{_e(c.check_type)}</td>'
                f'<td class="l"><span class="badge {c.status}">{_STATUS[c.status]}</span></td>'
                + _td(c.compliance_pct, "compliance_pct", cls=bad)
                + _td(c.target_pct, "target_pct")
                + _td(c.error_budget_left_pct, "error_budget_left_pct", _budget(c.error_budget_left_pct))
                + _td(c.checks_run, "checks_run")
                + _td(c.passed, "passed")
                + _td(c.failed, "failed")
                + _td(
                    c.minutes_within_sla,
                    "minutes_within_sla",
                    format_duration(c.minutes_within_sla * 60, "report"),
                )
                + _td(c.coverage_pct, "coverage_pct")
                + _td(c.violations, "violations")
                + _td(c.mttr_s, "mttr_s", _dur(c.mttr_s))
                + _td(c.trend, "trend", _TREND_ARROW[c.trend], "l")
                + f'<td class="l">{_e(c.reason)}</td></tr>'
            )
        out.append("</table></div>")
        if a.series:
            targets = {c.check_type: c.target_pct for c in a.checks if c.target_pct is not None}
            out.append(_line_chart(a.series, lo, targets))
            out.append(
                f'<div class="scroll"><table class="series"><tr><th class="l">{_e(report.bucket)}</th>'
                + "".join(f"<th>{_e(s.check_type)}</th>" for s in a.series)
                + "</tr>"
            )
            for i, p in enumerate(a.series[0].points):
                out.append(f'<tr data-bucket="{p.start.isoformat()}"><td class="l">{_e(p.label)}</td>')
                for s in a.series:
                    q = s.points[i]
                    out.append(_td(q.compliance_pct, f"{s.check_type}.compliance_pct"))
                out.append("</tr>")
            out.append("</table></div>")
        out.append("</div></details>")
    out.append("</section>")

    out.append(
        '<section id="totals-section"><h2>All assets, by check type</h2><div class="scroll"><table id="totals">'
        '<tr><th class="l">check</th><th>compliance</th><th>checks</th><th>coverage</th><th>violations</th>'
        '<th>MTTR</th><th class="l">trend</th></tr>'
    )
    for c in report.totals:
        out.append(
            f'<tr data-check="{_e(c.check_type)}"><td class="l">{_e(c.check_type)}</td>'
            + _td(c.compliance_pct, "compliance_pct")
            + _td(c.checks_run, "checks_run")
            + _td(c.coverage_pct, "coverage_pct")
            + _td(c.violations, "violations")
            + _td(c.mttr_s, "mttr_s", _dur(c.mttr_s))
            + _td(c.trend, "trend", _TREND_ARROW[c.trend], "l")
            + "</tr>"
        )
    out.append("</table></div>")
    groups = [g for g in report.groups if g.kind in ("contract", "team")]
    if groups:
        out.append(
            '<h2>By contract and team</h2><div class="scroll"><table id="groups"><tr><th class="l">kind</th>'
            '<th class="l">name</th><th>assets</th><th>compliance</th><th>checks</th><th>violations</th>'
            '<th class="l">lowest asset</th></tr>'
        )
        for g in sorted(groups, key=lambda g: (g.compliance_pct is None, g.compliance_pct or 0.0)):
            out.append(
                f'<tr data-group="{_e(g.kind)}:{_e(g.name)}"><td class="l">{_e(g.kind)}</td><td class="l">{_e(g.name)}</td>'
                + _td(g.assets, "assets")
                + _td(g.compliance_pct, "compliance_pct")
                + _td(g.checks_run, "checks_run")
                + _td(g.violations, "violations")
                + f'<td class="l">{_e(g.lowest_asset or "")}</td></tr>'
            )
        out.append("</table></div>")
    out.append("<h2>Violations by type</h2>")
    out.append(_bar_chart(report))
    out.append("</section></body></html>")
    return "\n".join(out)
