"""`floe` — the command line. Thin: every command calls the library."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from floe_stream.settings import ConfigError, Settings, load_settings

WINDOWS = {"24h": 24 * 3600, "7d": 7 * 86400, "30d": 30 * 86400}


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="floe-stream")
def main() -> None:
    """floe-stream: real-time data-contract monitor."""


# --- run --------------------------------------------------------------------------------------------
@main.group()
def run() -> None:
    """Run one deployable (one consumer group) until SIGTERM."""


def _run_deployable(kind: str) -> None:
    from floe_stream.runtime.app import build, run_until_signalled
    from floe_stream.runtime.telemetry import setup_logging, setup_metrics

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    setup_metrics(f"floe-{kind}")

    async def go() -> None:
        await run_until_signalled(build(kind, settings))

    _run(go())


@run.command("processor")
def run_processor() -> None:
    """Evaluate checks: materializations, commits and ticks in; results and violations out."""
    _run_deployable("processor")


@run.command("ticker")
def run_ticker() -> None:
    """Publish ticks (safe with several replicas)."""
    _run_deployable("ticker")


@run.group("sink")
def run_sink() -> None:
    """Run a sink consumer group."""


@run_sink.command("postgres")
def run_sink_postgres() -> None:
    """Write check results and violations to PostgreSQL."""
    _run_deployable("sink-postgres")


# --- db / topics -------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database administration."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations."""
    from floe_stream.runtime.database import DatabaseUnavailable, connect, migrate

    settings = _settings()

    async def go() -> list[str]:
        conn = await connect(settings.database)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    try:
        applied = _run(go())
    except DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
def topics_create() -> None:
    """Create floe's topics (idempotent)."""
    from floe_stream.runtime.kafka import ensure_topics

    settings = _settings()
    created = _run(ensure_topics(settings.kafka))
    click.echo(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else ""))


@topics.command("schemas")
@click.option("--out", type=click.Path(path_type=Path), default=Path("topics"), show_default=True)
def topics_schemas(out: Path) -> None:
    """Write the JSON Schema of every topic's payload (for publishers and subscribers)."""
    from floe_stream.topics.schemas import write_schemas

    for path in write_schemas(out):
        click.echo(str(path))


# --- contracts -----------------------------------------------------------------------------------------
@main.group()
def contracts() -> None:
    """ODCS contracts."""


@contracts.command("lint")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def contracts_lint(directory: Path) -> None:
    """Validate every contract in DIRECTORY; exit 1 on any error."""
    from floe_stream.contracts.lint import lint_directory

    report = lint_directory(directory)
    for w in report.warnings:
        click.echo(f"warning: {w}")
    for e in report.errors:
        click.echo(f"error: {e}", err=True)
    click.echo(
        f"{report.files_checked} file(s), {len(report.contracts)} contract(s), {report.assets} asset(s), "
        f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )
    if report.errors:
        sys.exit(1)


# --- sla ---------------------------------------------------------------------------------------------
@main.group()
def sla() -> None:
    """SLA compliance."""


@sla.command("report")
@click.option("--window", type=click.Choice(list(WINDOWS)), default="24h", show_default=True)
@click.option("--contract", default=None, help="contract id")
@click.option("--asset", default=None)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def sla_report(window: str, contract: str | None, asset: str | None, fmt: str) -> None:
    """Per-asset compliance over a rolling window, computed from the PostgreSQL history."""
    from floe_stream.reporting.render import render_report
    from floe_stream.reporting.sla import compliance_report
    from floe_stream.runtime.database import DatabaseUnavailable, connect

    settings = _settings()
    end = datetime.now(UTC)
    start = datetime.fromtimestamp(end.timestamp() - WINDOWS[window], tz=UTC)

    async def go() -> Any:
        conn = await connect(settings.database)
        try:
            return await compliance_report(conn, start=start, end=end, contract=contract, asset=asset)
        finally:
            await conn.close()

    try:
        report = _run(go())
    except DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        if "does not exist" in str(exc):
            raise click.ClickException("the database has no floe tables: run `floe db migrate`") from None
        raise
    if fmt == "json":
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        render_report(report)


# --- dev ---------------------------------------------------------------------------------------------
@main.command("dev")
@click.option("--demo", is_flag=True, help="publish a scripted scenario, print violations and the SLA report")
@click.option("--contracts", "contracts_dir", type=click.Path(path_type=Path), default=None)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".floe-dev"), show_default=True)
@click.option("--duration", type=float, default=None, help="seconds to run (demo default: the scenario length)")
def dev(demo: bool, contracts_dir: Path | None, data_dir: Path, duration: float | None) -> None:
    """Everything on one machine: embedded Kafka (Tansu) + PostgreSQL, ticker, processor, sink."""
    from floe_stream.runtime.dev import run_dev

    _run(run_dev(demo=demo, contracts_dir=contracts_dir, data_dir=data_dir, duration=duration))


if __name__ == "__main__":
    main()
