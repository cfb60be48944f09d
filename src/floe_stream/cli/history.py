"""CLI commands over the SLA history: ``floe sla report``, ``floe db prune|rebuild-aggregates``,
``floe contracts register``, ``floe replay``. Thin: each calls the library and formats the outcome."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import click

from floe_stream.settings import ConfigError, Settings, load_settings

T = TypeVar("T")
EXIT_BELOW_TARGET = 3


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _with_conn(settings: Settings, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``fn(conn)`` with one connection; turn database problems into one readable message."""
    from floe_stream.reporting.compliance import ReportError
    from floe_stream.runtime.database import DatabaseUnavailable, connect

    async def go() -> T:
        conn = await connect(settings.database)
        try:
            return await fn(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
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


_DURATION = re.compile(r"^\s*(\d+)\s*(h|d|w)\s*$", re.IGNORECASE)


def parse_age(text: str) -> timedelta:
    m = _DURATION.match(text)
    if not m:
        raise click.BadParameter(f"{text!r}: use a number of hours, days or weeks, e.g. 90d, 36h, 12w")
    n, unit = int(m.group(1)), m.group(2).lower()
    return timedelta(hours=n) if unit == "h" else timedelta(days=n * (7 if unit == "w" else 1))


# --- floe sla report -----------------------------------------------------------------------------------
@click.command("report")
@click.option("--contract", default=None, help="contract id")
@click.option("--asset", default=None, help="asset id")
@click.option("--owner", default=None, help="contract owner (registered contracts)")
@click.option("--team", default=None, help="contract team (registered contracts)")
@click.option("--window", type=click.Choice(["24h", "7d", "30d"]), default="30d", show_default=True,
              help="rolling window ending now (or --as-of)")  # fmt: skip
@click.option("--by", "by", type=click.Choice(["day", "week", "month"]), default="day", show_default=True,
              help="calendar buckets of the series (ISO weeks)")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]), default="table",
              show_default=True)  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write to FILE instead of stdout")  # fmt: skip
@click.option("--fail-under", type=click.FloatRange(0, 100), default=None, metavar="PCT",
              help=f"exit {EXIT_BELOW_TARGET} when any asset/check compliance is below PCT")  # fmt: skip
@click.option("--as-of", default=None, help="ISO 8601 end of the window (default: now)")
@click.option("--response", is_flag=True,
              help="only floe's response: timeToDetect / timeToNotify / timeToRepair per asset vs the contracts' "
                   "targets (FLOE_CONTRACTS_DIR)")  # fmt: skip
def sla_report(
    contract: str | None, asset: str | None, owner: str | None, team: str | None, window: str, by: str,
    fmt: str, output: Path | None, fail_under: float | None, as_of: str | None, response: bool,
) -> None:  # fmt: skip
    """SLA compliance per asset and check type, with trends, from the PostgreSQL history."""
    from floe_stream.reporting.compliance import build_report
    from floe_stream.reporting.render import render_csv, render_html, render_json, render_table

    end = None
    if as_of:
        try:
            end = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not an ISO 8601 time", param_hint="--as-of") from None
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
    settings = _settings()
    if response:
        _response_report(settings, window, end, asset, fmt, output)
        return
    report = _with_conn(
        settings,
        lambda conn: build_report(
            conn,
            window=window,
            by=by,  # type: ignore[arg-type]
            as_of=end,
            contract=contract,
            asset=asset,
            owner=owner,
            team=team,
        ),
    )
    if fmt == "table":
        if output:
            from rich.console import Console

            with output.open("w", encoding="utf-8") as fh:
                render_table(report, Console(file=fh, width=160))
        else:
            render_table(report)
    else:
        text = {"json": render_json, "csv": render_csv, "html": render_html}[fmt](report)
        if output:
            output.write_text(text, encoding="utf-8")
            click.echo(f"wrote {output}", err=True)
        else:
            click.echo(text, nl=not text.endswith("\n"))
    if fail_under is not None:
        low = report.lowest()
        if low is not None and low[2] < fail_under:
            click.echo(f"below target: {low[0]} {low[1]} at {low[2]:.2f}% < {fail_under:.2f}%", err=True)
            sys.exit(EXIT_BELOW_TARGET)


def _response_report(
    settings: Settings, window: str, end: datetime | None, asset: str | None, fmt: str, output: Path | None
) -> None:
    """``floe sla report --response`` (issue 15.1): a separate section, computed by reporting/response.py."""
    import dataclasses
    import json

    from floe_stream.contracts.loader import load_directory
    from floe_stream.reporting.response import fetch_response_rows, render_response, summarize_response

    stop = end or datetime.now(UTC)
    start = stop - parse_age(window)
    contracts, _ = load_directory(settings.contracts_dir) if settings.contracts_dir.is_dir() else ([], [])
    targets = {a.asset_id: a.response for c in contracts for a in c.assets if a.response is not None}
    rows = _with_conn(
        settings, lambda conn: fetch_response_rows(conn, start, stop, [asset] if asset else None)
    )
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
@click.option("--older-than", "older_than", default=None,
              help="age of raw rows to delete, e.g. 90d (default: FLOE_HISTORY__RETENTION_DAYS)")  # fmt: skip
def db_prune(older_than: str | None) -> None:
    """Delete raw check results and violation events older than the retention (aggregates are kept)."""
    from floe_stream.reporting import store

    settings = _settings()
    age = parse_age(older_than) if older_than else timedelta(days=settings.history.retention_days)
    cutoff = datetime.now(UTC) - age
    counts = _with_conn(settings, lambda conn: store.prune(conn, cutoff))
    click.echo(
        f"pruned raw rows older than {cutoff:%Y-%m-%d %H:%M} UTC: {counts['check_results']} check result(s), "
        f"{counts['violation_events']} violation event(s); aggregates and episodes kept"
    )


@click.command("rebuild-aggregates")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="first day to rebuild (default: the oldest day with complete raw data)")  # fmt: skip
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
@click.option("--from", "from_", required=True,
              help="ISO 8601 time, a duration ago (7d, 12h), an offset (in every partition) or 'earliest'")  # fmt: skip
@click.option(
    "--to", "to", default=None, help="same forms as --from (default: the current end of the topics)"
)
@click.option("--contracts", "contracts_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="contract files to evaluate with (default FLOE_CONTRACTS_DIR)")  # fmt: skip
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
    from floe_stream.runtime.app import load_registry
    from floe_stream.runtime.database import DatabaseUnavailable

    settings = _settings()
    if contracts_dir is not None:
        settings = settings.model_copy(update={"contracts_dir": contracts_dir})
    try:
        start = parse_position(from_)
        end = parse_position(to) if to else None
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
                TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>10} rec/s"), TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as bar:  # fmt: skip
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
