"""Renderings of the SLA reports: rich tables, JSON (the library models), CSV and self-contained HTML."""

from __future__ import annotations

import csv
import html
import io

from rich.console import Console
from rich.table import Table

from floe_stream.reporting.compliance import CheckSeries, ComplianceReport


# --- the compliance report (floe sla report) ------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}%"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172_800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


_TREND_ARROW = {"improving": "↑ improving", "degrading": "↓ degrading", "stable": "→ stable"}


def render_table(report: ComplianceReport, console: Console | None = None) -> None:
    """Rich tables: per asset and check type, then totals and violations."""
    console = console or Console()
    flt = ", ".join(f"{k}={v}" for k, v in report.filters.items())
    title = (
        f"SLA compliance, last {report.window} ({report.window_start:%Y-%m-%d %H:%M} → "
        f"{report.window_end:%Y-%m-%d %H:%M} UTC){' — ' + flt if flt else ''}"
    )
    table = Table(title=title)
    for col, just in (("asset", "left"), ("owner", "left"), ("check", "left"), ("compliance", "right"),
                      ("basis", "left"), ("checks", "right"), ("coverage", "right"), ("violations", "right"),
                      ("MTTR", "right"), ("now", "left"), (f"trend by {report.bucket}", "left")):  # fmt: skip
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for a in report.assets:
        for i, c in enumerate(a.checks):
            style = "" if c.compliance_pct is None or c.compliance_pct >= 99 else "red"
            pct = _pct(c.compliance_pct)
            table.add_row(
                a.asset if i == 0 else "", (a.owner or a.team or "") if i == 0 else "", c.check_type,
                f"[{style}]{pct}[/]" if style else pct, c.basis, str(c.checks_run), _pct(c.coverage_pct),
                str(c.violations), _dur(c.mttr_s), c.current_status or "", _TREND_ARROW[c.trend],
            )  # fmt: skip
    console.print(table)
    totals = Table(title="All assets")
    for col in ("check", "compliance", "checks", "coverage", "violations", "resolved", "MTTR", "trend"):
        totals.add_column(col, justify="left" if col in ("check", "trend") else "right")
    for c in report.totals:
        totals.add_row(
            c.check_type, _pct(c.compliance_pct), str(c.checks_run), _pct(c.coverage_pct), str(c.violations),
            str(c.episodes_resolved), _dur(c.mttr_s), _TREND_ARROW[c.trend],
        )  # fmt: skip
    console.print(totals)
    for kind in ("contract", "team", "owner"):
        groups = [g for g in report.groups if g.kind == kind]
        if len(groups) < 2:
            continue
        g_table = Table(title=f"By {kind}")
        for col in (kind, "assets", "compliance", "checks", "violations", "lowest asset"):
            g_table.add_column(col, justify="left" if col in (kind, "lowest asset") else "right")
        for g in groups:
            low = f"{g.lowest_asset} ({_pct(g.lowest_pct)})" if g.lowest_asset else ""
            g_table.add_row(
                g.name, str(g.assets), _pct(g.compliance_pct), str(g.checks_run), str(g.violations), low
            )
        console.print(g_table)
    if report.violations:
        v = Table(title="Violation episodes opened, by type and severity")
        for col in ("type", "severity", "episodes"):
            v.add_column(col, justify="right" if col == "episodes" else "left")
        for row in report.violations:
            v.add_row(row.check_type, row.severity, str(row.episodes))
        console.print(v)
    console.print(
        f"overall compliance {_pct(report.compliance_pct)} · {report.checks_run} checks · coverage "
        f"{_pct(report.coverage_pct)} · {report.episodes_opened} episodes opened, {report.episodes_resolved} "
        f"resolved, MTTR {_dur(report.mttr_s)}"
    )


def render_json(report: ComplianceReport) -> str:
    return report.model_dump_json(indent=2)


CSV_COLUMNS = (
    "asset", "contract_id", "owner", "team", "check_type", "period", "start", "end", "compliance_pct",
    "checks_run", "passed", "failed", "minutes_observed", "minutes_within_sla", "coverage_pct", "violations",
    "mttr_s", "trend",
)  # fmt: skip


def render_csv(report: ComplianceReport) -> str:
    """One row per (asset, check type) for the window (period=window), then one per bucket (period=day|week|month)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for a in report.assets:
        for c in a.checks:
            w.writerow([
                a.asset, a.contract_id or "", a.owner or "", a.team or "", c.check_type, "window",
                report.window_start.isoformat(), report.window_end.isoformat(), _num(c.compliance_pct),
                c.checks_run, c.passed, c.failed, c.minutes_observed, c.minutes_within_sla, _num(c.coverage_pct),
                c.violations, _num(c.mttr_s), c.trend,
            ])  # fmt: skip
        for s in a.series:
            for p in s.points:
                w.writerow([
                    a.asset, a.contract_id or "", a.owner or "", a.team or "", s.check_type, report.bucket,
                    p.start.isoformat(), p.end.isoformat(), _num(p.compliance_pct), p.checks_run, p.passed,
                    p.failed, p.minutes_observed, p.minutes_within_sla, "", p.violations, "", "",
                ])  # fmt: skip
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else repr(x)


# --- HTML: one self-contained file, inline SVG charts -----------------------------------------------------
_COLORS = {"freshness": "#2563eb", "schema_drift": "#9333ea", "quality": "#059669", "availability": "#d97706"}
_SEV_COLORS = {"info": "#93c5fd", "warning": "#fbbf24", "error": "#f87171", "critical": "#b91c1c"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#111827;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:1.2rem 0 .3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #e5e7eb;padding:.3rem .6rem;text-align:right}th{background:#f9fafb}
td.l,th.l{text-align:left}.bad{color:#b91c1c;font-weight:600}.kpi{display:inline-block;margin-right:2rem}
.kpi b{display:block;font-size:1.6rem}.muted{color:#6b7280;font-size:.85rem}svg text{font-size:11px;fill:#374151}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _line_chart(series: list[CheckSeries], width: int = 720, height: int = 220) -> str:
    pad_l, pad_r, pad_t, pad_b = 44, 110, 10, 28
    n = max((len(s.points) for s in series), default=0)
    if n == 0:
        return ""
    vals = [p.compliance_pct for s in series for p in s.points if p.compliance_pct is not None]
    lo = min([*vals, 100.0]) if vals else 0.0
    lo = max(0.0, min(lo, 100.0) - 1.0)
    lo = float(int(lo // 5 * 5))
    iw, ih = width - pad_l - pad_r, height - pad_t - pad_b

    def x(i: int) -> float:
        return pad_l + (iw * i / (n - 1) if n > 1 else iw / 2)

    def y(v: float) -> float:
        return pad_t + ih * (1 - (v - lo) / (100.0 - lo if lo < 100 else 1))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="compliance over time">']  # fmt: skip
    for v in (lo, (lo + 100) / 2, 100.0):
        parts.append(
            f'<line x1="{pad_l}" x2="{pad_l + iw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e7eb"/>'
        )
        parts.append(f'<text x="{pad_l - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}%</text>')
    labels = series[0].points
    step = max(1, -(-70 * (n - 1) // max(1, iw)))  # labels at least ~70 px apart
    for i in range(0, n, step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle">{_e(labels[i].label)}</text>'
        )
    for k, s in enumerate(series):
        color = _COLORS.get(s.check_type, "#374151")
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
    parts.append("</svg>")
    return "".join(parts)


def _bar_chart(report: ComplianceReport, width: int = 520, height: int = 200) -> str:
    by_type: dict[str, dict[str, int]] = {}
    for v in report.violations:
        by_type.setdefault(v.check_type, {})[v.severity] = v.episodes
    if not by_type:
        return '<p class="muted">No violation episodes in this window.</p>'
    pad_l, pad_b, pad_t = 110, 20, 10
    top = max(sum(s.values()) for s in by_type.values())
    bar_h = max(12, min(30, (height - pad_t - pad_b) // max(1, len(by_type)) - 8))
    iw = width - pad_l - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{pad_t + pad_b + len(by_type) * (bar_h + 8)}" '
             f'role="img" aria-label="violations by type">']  # fmt: skip
    for i, (ct, sevs) in enumerate(sorted(by_type.items())):
        yy = pad_t + i * (bar_h + 8)
        parts.append(f'<text x="{pad_l - 6}" y="{yy + bar_h / 2 + 4:.1f}" text-anchor="end">{_e(ct)}</text>')
        xx = float(pad_l)
        for sev in ("info", "warning", "error", "critical"):
            n = sevs.get(sev, 0)
            if not n:
                continue
            w = iw * n / top
            parts.append(f'<rect x="{xx:.1f}" y="{yy}" width="{w:.1f}" height="{bar_h}" fill="{_SEV_COLORS[sev]}">'
                         f"<title>{_e(ct)} {sev}: {n}</title></rect>")  # fmt: skip
            xx += w
        parts.append(f'<text x="{xx + 6:.1f}" y="{yy + bar_h / 2 + 4:.1f}">{sum(sevs.values())}</text>')
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="display:inline-block;width:10px;height:10px;background:{c}"></span> {s}'
        for s, c in _SEV_COLORS.items()
    )
    return "".join(parts) + f'<p class="muted">{legend}</p>'


def _td(value: object, field: str, cls: str = "") -> str:
    shown = _pct(value) if field.endswith("_pct") and not isinstance(value, str) else value  # type: ignore[arg-type]
    raw = "" if value is None else value
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-field="{field}" data-value="{_e(raw)}">{_e(shown if shown is not None else "—")}</td>'


def render_html(report: ComplianceReport) -> str:
    """One self-contained HTML file (no scripts, no external resources): KPIs, tables and inline SVG charts.

    Every number cell carries ``data-field`` and ``data-value`` (the exact figure from the JSON model).
    """
    flt = ", ".join(f"{k}={v}" for k, v in report.filters.items()) or "all assets"
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>SLA compliance — last {_e(report.window)}</title><style>{_CSS}</style></head><body>",
        f"<h1>SLA compliance — last {_e(report.window)} ({_e(flt)})</h1>",
        f'<p class="muted">{report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%Y-%m-%d %H:%M} UTC · '
        f"generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC by floe-stream</p>",
        '<div id="kpis">',
    ]  # fmt: skip
    for label, field, value in (
        ("overall compliance", "compliance_pct", _pct(report.compliance_pct)),
        ("checks run", "checks_run", report.checks_run),
        ("coverage", "coverage_pct", _pct(report.coverage_pct)),
        ("episodes opened", "episodes_opened", report.episodes_opened),
        ("MTTR", "mttr_s", _dur(report.mttr_s)),
    ):
        raw = getattr(report, field)
        out.append(f'<div class="kpi" data-field="{field}" data-value="{_e("" if raw is None else raw)}">'
                   f"<b>{_e(value)}</b>{_e(label)}</div>")  # fmt: skip
    out.append("</div>")
    out.append('<h2>By check type</h2><table id="totals"><tr><th class="l">check</th><th>compliance</th>'
               "<th>checks</th><th>coverage</th><th>violations</th><th>MTTR (s)</th><th class=\"l\">trend</th></tr>")  # fmt: skip
    for c in report.totals:
        out.append(
            f'<tr data-check="{_e(c.check_type)}"><td class="l">{_e(c.check_type)}</td>'
            + _td(c.compliance_pct, "compliance_pct") + _td(c.checks_run, "checks_run")
            + _td(c.coverage_pct, "coverage_pct") + _td(c.violations, "violations") + _td(c.mttr_s, "mttr_s")
            + _td(c.trend, "trend", "l") + "</tr>"
        )  # fmt: skip
    out.append("</table>")
    groups = [g for g in report.groups if g.kind in ("contract", "team")]
    if groups:
        out.append('<h2>By contract and team</h2><table id="groups"><tr><th class="l">kind</th><th class="l">name</th>'
                   "<th>assets</th><th>compliance</th><th>checks</th><th>violations</th><th class=\"l\">lowest asset</th></tr>")  # fmt: skip
        for g in groups:
            out.append(
                f'<tr data-group="{_e(g.kind)}:{_e(g.name)}"><td class="l">{_e(g.kind)}</td><td class="l">{_e(g.name)}</td>'
                + _td(g.assets, "assets") + _td(g.compliance_pct, "compliance_pct") + _td(g.checks_run, "checks_run")
                + _td(g.violations, "violations") + f'<td class="l">{_e(g.lowest_asset or "")}</td></tr>'
            )  # fmt: skip
        out.append("</table>")
    out.append("<h2>Violations by type</h2>")
    out.append(_bar_chart(report))
    out.append('<h2>Assets</h2><table id="assets"><tr><th class="l">asset</th><th class="l">owner</th>'
               '<th class="l">check</th><th>compliance</th><th>checks</th><th>passed</th><th>failed</th>'
               "<th>min within SLA</th><th>coverage</th><th>violations</th><th>MTTR (s)</th>"
               '<th class="l">trend</th></tr>')  # fmt: skip
    for a in report.assets:
        for c in a.checks:
            bad = "bad" if c.compliance_pct is not None and c.compliance_pct < 99 else ""
            out.append(
                f'<tr data-asset="{_e(a.asset)}" data-check="{_e(c.check_type)}"><td class="l">{_e(a.asset)}</td>'
                f'<td class="l">{_e(a.owner or a.team or "")}</td><td class="l">{_e(c.check_type)}</td>'
                + _td(c.compliance_pct, "compliance_pct", bad) + _td(c.checks_run, "checks_run")
                + _td(c.passed, "passed") + _td(c.failed, "failed")
                + _td(c.minutes_within_sla, "minutes_within_sla") + _td(c.coverage_pct, "coverage_pct")
                + _td(c.violations, "violations") + _td(c.mttr_s, "mttr_s") + _td(c.trend, "trend", "l") + "</tr>"
            )  # fmt: skip
    out.append("</table>")
    out.append(f"<h2>Compliance over time (by {_e(report.bucket)})</h2>")
    for a in report.assets:
        if not a.series:
            continue
        out.append(f'<section class="asset" data-asset="{_e(a.asset)}"><h3>{_e(a.asset)}</h3>')
        out.append(_line_chart(a.series))
        out.append(f'<table class="series"><tr><th class="l">{_e(report.bucket)}</th>'
                   + "".join(f"<th>{_e(s.check_type)}</th>" for s in a.series) + "</tr>")  # fmt: skip
        for i, p in enumerate(a.series[0].points):
            out.append(f'<tr data-bucket="{p.start.isoformat()}"><td class="l">{_e(p.label)}</td>')
            for s in a.series:
                q = s.points[i]
                out.append(_td(q.compliance_pct, f"{s.check_type}.compliance_pct"))
            out.append("</tr>")
        out.append("</table></section>")
    out.append("</body></html>")
    return "\n".join(out)
