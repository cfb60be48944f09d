"""Human renderings of reports (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from floe_stream.reporting.sla import SlaReport


def render_report(report: SlaReport, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(
        title=f"SLA compliance {report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%Y-%m-%d %H:%M} UTC"
    )
    for col in ("asset", "check", "compliance", "basis", "evaluations", "passed", "failed", "violations"):
        table.add_column(col, justify="right" if col not in ("asset", "check", "basis") else "left")
    for r in report.rows:
        pct = "n/a" if r.compliance_pct is None else f"{r.compliance_pct:.2f}%"
        style = "" if r.compliance_pct is None or r.compliance_pct >= 99 else "red"
        table.add_row(
            r.asset, r.check_type, f"[{style}]{pct}[/]" if style else pct, r.basis,
            str(r.evaluations), str(r.passed), str(r.failed), str(r.violations),
        )  # fmt: skip
    if not report.rows:
        console.print("[yellow]no check results in this window[/yellow]")
    else:
        console.print(table)
