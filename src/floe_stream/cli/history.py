"""CLI commands over the SLA history: ``floe sla report``, ``floe db prune|rebuild-aggregates``,
``floe contracts register``, ``floe replay``. Thin: each calls the library and formats the outcome."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import click

from floe_stream.cli.params import DURATION, FAIL_UNDER, output_width, writable
from floe_stream.durations import format_duration
from floe_stream.printable import printable
from floe_stream.reporting.compliance import SORTS
from floe_stream.settings import ConfigError, Settings, load_settings

T = TypeVar("T")
EXIT_BELOW_TARGET = 3


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _with_conn(
    settings: Settings,
    fn: Callable[[asyncpg.Connection], Awaitable[T]],
    reraise: tuple[type[Exception], ...] = (),
) -> T:
    """Run ``fn(conn)`` with one connection; turn database problems into one readable message."""
    from floe_stream.reporting.compliance import ReportError
    from floe_stream.runtime.framework.database import DatabaseUnavailable, connect

    async def go() -> T:
        conn = await connect(settings.database)
        try:
            return await fn(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except reraise:
        raise
    except DatabaseUnavailable as exc:
        raise click.ClickException(f"{exc} (FLOE_DATABASE__DSN)") from None
    except asyncpg.exceptions.UndefinedTableError:
        raise click.ClickException(
            "the database has no floe tables (or an old schema): run `floe db migrate`"
        ) from None
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


# --- floe sla report -----------------------------------------------------------------------------------
@click.command("report")
@click.option("--contract", default=None, help="contract id")
@click.option("--asset", "assets", multiple=True, help="asset id (repeatable: --asset a --asset b)")
@click.option("--owner", default=None, help="contract owner (registered contracts)")
@click.option("--team", default=None, help="contract team (registered contracts)")
@click.option(
    "--window",
    type=DURATION,
    default="30d",
    show_default=True,
    help="rolling window ending now (or --as-of): any duration, e.g. 24h, 7d, 2w, 90d, PT6H",
)
@click.option(
    "--by",
    "by",
    type=click.Choice(["day", "week", "month"]),
    default="day",
    show_default=True,
    help="calendar buckets of the series (ISO weeks)",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "html", "junit", "github"]),
    default="table",
    show_default=True,
    help="junit: JUnit XML for CI; github: GitHub Actions annotations",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write to FILE instead of stdout",
)
@click.option(
    "--sort",
    type=click.Choice(list(SORTS)),
    default="status",
    show_default=True,
    help="status: breaching, then at risk, then the rest; compliance: lowest first; budget: least left",
)
@click.option(
    "--top", type=click.IntRange(min=1), default=None, metavar="N", help="show the first N assets only"
)
@click.option("--only-failing", is_flag=True, help="show only assets with a check below its target")
@click.option(
    "--fail-under",
    type=FAIL_UNDER,
    default=None,
    metavar="PCT|target",
    help=f"exit {EXIT_BELOW_TARGET} listing every asset/check below PCT ('target': below its own "
    "target); an empty window or unknown asset fails too",
)
@click.option("--allow-empty", is_flag=True, help="with --fail-under: pass when the window has no data")
@click.option("--as-of", default=None, help="ISO 8601 end of the window (default: now)")
@click.option(
    "--response",
    is_flag=True,
    help="only floe's response: timeToDetect / timeToNotify / timeToRepair per asset vs the contracts' "
    "targets (FLOE_CONTRACTS_DIR)",
)
def sla_report(
    contract: str | None,
    assets: tuple[str, ...],
    owner: str | None,
    team: str | None,
    window: timedelta,
    by: str,
    fmt: str,
    output: Path | None,
    sort: str,
    top: int | None,
    only_failing: bool,
    fail_under: float | str | None,
    allow_empty: bool,
    as_of: str | None,
    response: bool,
) -> None:
    """SLA compliance per asset and check type, judged against each target, worst first.

    Targets: the contract's own (availability %, `slo` in the floe property), else FLOE_HISTORY__DEFAULT_TARGETS;
    --fail-under PCT replaces them. Exit 3 when the gate fails.
    """
    from floe_stream.reporting.compliance import ReportError, arrange, build_report
    from floe_stream.reporting.render import (
        render_csv,
        render_github,
        render_html,
        render_json,
        render_junit,
        table_text,
    )

    end = None
    if as_of:
        try:
            end = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not an ISO 8601 time", param_hint="--as-of") from None
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if output is not None:
        writable(output)
    gate = fail_under is not None
    settings = _settings()
    if response:
        _response_report(settings, window, end, assets, fmt, output)
        return
    label = format_duration(window, "exact")

    async def build(conn: asyncpg.Connection) -> Any:
        return await build_report(
            conn,
            window=label,
            by=by,  # type: ignore[arg-type]
            as_of=end,
            contract=contract,
            asset=list(assets),
            owner=owner,
            team=team,
            default_targets=settings.history.default_targets,
            fail_under=fail_under if isinstance(fail_under, float) else None,
            at_risk_budget_pct=settings.history.at_risk_budget_pct,
            allow_unknown=allow_empty,
        )

    try:
        report = _with_conn(settings, build, reraise=(ReportError,))
    except ReportError as exc:
        if gate and not allow_empty:
            click.echo(f"Error: {exc} — the --fail-under gate fails (--allow-empty to pass)", err=True)
            sys.exit(EXIT_BELOW_TARGET)
        raise click.ClickException(str(exc)) from None
    shown = arrange(report, sort=sort, top=top, only_failing=only_failing)
    if fmt == "table":
        text = table_text(shown, output_width(), color=output is None and sys.stdout.isatty())
    else:
        render = {
            "json": render_json,
            "csv": render_csv,
            "html": render_html,
            "junit": render_junit,
            "github": render_github,
        }[fmt]
        text = render(shown)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))
    if gate:
        failing = report.failing()
        if failing:
            what = "its target" if fail_under == "target" else f"{fail_under:.2f} %"
            click.echo(f"below target: {len(failing)} asset/check pair(s) under {what}:", err=True)
            for a, c in failing:
                click.echo(
                    f"  {printable(a.asset)} {c.check_type} {c.compliance_pct:.2f} % < {c.target_pct:.2f} %"
                    + (f" since {c.since:%Y-%m-%d}" if c.since else "")
                    + (f" (owner {printable(a.owner)})" if a.owner else ""),
                    err=True,
                )
            sys.exit(EXIT_BELOW_TARGET)
        if not report.has_data() and not allow_empty:
            click.echo(
                f"below target: no check result in the last {label}"
                + (f" for {', '.join(assets)}" if assets else "")
                + " — nothing to gate on (--allow-empty to pass)",
                err=True,
            )
            sys.exit(EXIT_BELOW_TARGET)


def _response_report(
    settings: Settings,
    window: timedelta,
    end: datetime | None,
    assets: tuple[str, ...],
    fmt: str,
    output: Path | None,
) -> None:
    """``floe sla report --response`` (issue 15.1): a separate section, computed by reporting/response.py."""
    import dataclasses
    import json

    from floe_stream.contracts.loader import load_directory
    from floe_stream.reporting.response import fetch_response_rows, render_response, summarize_response

    stop = end or datetime.now(UTC)
    start = stop - window
    contracts, _ = load_directory(settings.contracts_dir) if settings.contracts_dir.is_dir() else ([], [])
    targets = {a.asset_id: a.response for c in contracts for a in c.assets if a.response is not None}
    rows = _with_conn(settings, lambda conn: fetch_response_rows(conn, start, stop, list(assets) or None))
    stats = summarize_response(rows, targets)
    if fmt == "json":
        text = json.dumps(
            [{**dataclasses.asdict(x), "compliance_pct": x.compliance_pct} for x in stats], indent=2
        )
    else:
        text = render_response(stats)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


# --- floe db prune / rebuild-aggregates ---------------------------------------------------------------
@click.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=DURATION,
    default=None,
    help="age of raw rows to delete, any duration: 90d, 12w, PT36H (default: FLOE_HISTORY__RETENTION_DAYS)",
)
def db_prune(older_than: timedelta | None) -> None:
    """Delete raw check results and violation events older than the retention (aggregates are kept)."""
    from floe_stream.reporting import store

    settings = _settings()
    age = older_than or timedelta(days=settings.history.retention_days)
    cutoff = datetime.now(UTC) - age
    counts = _with_conn(settings, lambda conn: store.prune(conn, cutoff))
    click.echo(
        f"pruned raw rows older than {cutoff:%Y-%m-%d %H:%M} UTC: {counts['check_results']} check result(s), "
        f"{counts['violation_events']} violation event(s); aggregates and episodes kept"
    )


@click.command("rebuild-aggregates")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="first day to rebuild (default: the oldest day with complete raw data)",
)
@click.option("--asset", "assets", multiple=True, help="only these assets (repeatable)")
def db_rebuild_aggregates(since: datetime | None, assets: tuple[str, ...]) -> None:
    """Recompute daily aggregates and the SLA status from the raw check results."""
    from floe_stream.reporting import store

    settings = _settings()
    d: date | None = since.date() if since else None
    out = _with_conn(
        settings, lambda conn: store.rebuild_aggregates(conn, since=d, assets=list(assets) or None)
    )
    if out["since"] is None:
        click.echo("no raw check results: nothing to rebuild")
    else:
        click.echo(
            f"rebuilt {out['days']} daily aggregate row(s) for {out['keys']} asset/check pair(s) since {out['since']}"
        )


# --- floe contracts register ---------------------------------------------------------------------------
@click.command("register")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def contracts_register(directory: Path | None) -> None:
    """Record the contracts in DIRECTORY (default FLOE_CONTRACTS_DIR) and their assets' owner/team in PostgreSQL."""
    from floe_stream.contracts.loader import load_directory
    from floe_stream.reporting import store

    settings = _settings()
    path = directory or settings.contracts_dir
    if not path.is_dir():
        raise click.ClickException(f"contracts directory {path} does not exist")
    contracts, errors = load_directory(path)
    for e in errors:
        click.echo(f"error: {e}", err=True)
    n_c, n_a = _with_conn(settings, lambda conn: store.register_contracts(conn, contracts, by="cli"))
    click.echo(f"registered {n_c} contract(s), {n_a} asset(s)")
    if errors:
        sys.exit(1)


# --- floe replay -------------------------------------------------------------------------------------------
@click.command("replay")
@click.option(
    "--from",
    "from_",
    required=True,
    help="ISO 8601 time, a duration ago (7d, 12h), an offset (in every partition) or 'earliest'",
)
@click.option(
    "--to", "to", default=None, help="same forms as --from (default: the current end of the topics)"
)
@click.option(
    "--contracts",
    "contracts_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="contract files to evaluate with (default FLOE_CONTRACTS_DIR)",
)
@click.option(
    "--contract", "contract_ids", multiple=True, help="only the assets of these contract ids (repeatable)"
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def replay_cmd(
    from_: str,
    to: str | None,
    contracts_dir: Path | None,
    contract_ids: tuple[str, ...],
    progress: bool,
    fmt: str,
) -> None:
    """Re-evaluate retained input events with new or changed contracts and rewrite the SLA history.

    Deterministic (event-time order, fresh state at --from); notifications are muted: nothing is produced to
    the violations topic. The replayed range of the selected assets is replaced.
    """
    from floe_stream.replay.runner import parse_position, replay, summary_dict
    from floe_stream.runtime.deployables.app import load_registry
    from floe_stream.runtime.framework.database import DatabaseUnavailable

    settings = _settings()
    if contracts_dir is not None:
        settings = settings.model_copy(update={"contracts_dir": contracts_dir})
    try:
        start = parse_position(from_)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None
    try:
        end = parse_position(to) if to else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    try:
        registry = load_registry(settings)
    except (ValueError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    wanted = set(contract_ids) or None
    if wanted:
        unknown = wanted - set(registry.contracts)
        if unknown:
            raise click.ClickException(
                f"unknown contract(s) {', '.join(sorted(unknown))} in {settings.contracts_dir} "
                f"(known: {', '.join(sorted(registry.contracts))})"
            )

    async def go(cb: Any) -> Any:
        return await replay(settings, registry, start=start, end=end, contract_ids=wanted, progress=cb)

    try:
        if progress:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("{task.description:<9}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>10} rec/s"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as bar:
                tasks: dict[str, Any] = {}
                started: dict[str, float] = {}

                def cb(phase: str, done: int, total: int) -> None:
                    import time

                    if phase not in tasks:
                        tasks[phase] = bar.add_task(phase, total=max(total, 1), rate="")
                        started[phase] = time.perf_counter()
                    dt = time.perf_counter() - started[phase]
                    rate = f"{done / dt:,.0f}" if dt > 0 and phase != "write" else ""
                    bar.update(tasks[phase], completed=done, total=max(total, 1), rate=rate)

                summary = asyncio.run(go(cb))
        else:
            summary = asyncio.run(go(None))
    except DatabaseUnavailable as exc:
        raise click.ClickException(f"{exc} (FLOE_DATABASE__DSN)") from None
    except asyncpg.exceptions.UndefinedTableError:
        raise click.ClickException("the database has no floe tables: run `floe db migrate`") from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    data = summary_dict(summary)
    if fmt == "json":
        click.echo(json.dumps(data))
    else:
        click.echo(
            f"replayed {data['records']} record(s) ({data['updates']} updates, {data['ticks']} ticks, "
            f"{data['skipped']} undecodable) for {data['assets']} asset(s) from {data['from'] or '-'}: "
            f"{data['results']} check result(s), {data['violations']} violation event(s) written; "
            "no notification sent"
        )
