"""CLI commands of the alert path: ``floe silence add|list|expire`` and ``floe alerts replay``
(registered in :mod:`floe_stream.cli.main`; ``floe run sink alerts`` runs :class:`~.sink.AlertSink`)."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from floe_stream.settings import ConfigError, Settings, load_settings

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_until(value: str, now: datetime | None = None) -> datetime:
    """``2h`` / ``30m`` / ``1d`` from now, or an ISO 8601 time (UTC when no offset is given)."""
    now = now or datetime.now(UTC)
    m = _DURATION.match(value.strip())
    if m:
        return now + timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use a duration like 2h / 30m / 1d or an ISO 8601 time"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _with_store(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    from floe_stream.runtime.database import DatabaseUnavailable, create_pool
    from floe_stream.sinks.alerts.store import AlertStore

    async def go() -> T:
        pool = await create_pool(settings.database)
        try:
            return await fn(AlertStore(pool))
        finally:
            await pool.close()

    try:
        return asyncio.run(go())
    except DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        if "alert_silences" in str(exc) and "does not exist" in str(exc):
            raise click.ClickException("the database has no alert tables: run `floe db migrate`") from None
        raise


@click.group("silence")
def silence() -> None:
    """Mute firing alerts of a contract and/or asset until a time (honoured by every alerts-sink replica)."""


@silence.command("add")
@click.option("--contract", default=None, help="contract id or name")
@click.option("--asset", default=None, help="asset id")
@click.option("--until", "until", required=True, help="duration (2h, 30m, 1d) or ISO 8601 time")
@click.option("--comment", default="", help="why")
@click.option("--by", "created_by", default=None, help="who (default: the current user)")
def silence_add(
    contract: str | None, asset: str | None, until: str, comment: str, created_by: str | None
) -> None:
    """Add a silence; prints its id."""
    if not contract and not asset:
        raise click.UsageError("give --contract and/or --asset")
    now = datetime.now(UTC)
    ends = parse_until(until, now)
    if ends <= now:
        raise click.BadParameter(f"{until!r} is in the past", param_hint="--until")
    by = created_by or getpass.getuser()
    s = _with_store(_settings(), lambda st: st.add_silence(
        contract=contract, asset=asset, starts_at=now, ends_at=ends, comment=comment, created_by=by))  # fmt: skip
    click.echo(f"{s.silence_id}  silences {_what(s)} until {s.ends_at.isoformat()}")


def _what(s: Any) -> str:
    parts = []
    if s.contract:
        parts.append(f"contract {s.contract}")
    if s.asset:
        parts.append(f"asset {s.asset}")
    return " / ".join(parts)


@silence.command("list")
@click.option("--all", "include_all", is_flag=True, help="include expired and ended silences")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def silence_list(include_all: bool, fmt: str) -> None:
    """List active silences."""
    items = _with_store(_settings(), lambda st: st.list_silences(include_inactive=include_all))
    if fmt == "json":
        click.echo(json.dumps([s.model_dump(mode="json") for s in items], indent=2))
        return
    if not items:
        click.echo("no active silences")
    now = datetime.now(UTC)
    for s in items:
        state = "active" if s.active(now) else ("expired" if s.expired_at else "ended")
        click.echo(
            f"{s.silence_id}  {state:7}  {_what(s)}  until {s.ends_at.isoformat()}  by {s.created_by}  {s.comment}"
        )


@silence.command("expire")
@click.argument("silence_id")
def silence_expire(silence_id: str) -> None:
    """End a silence now."""
    ok = _with_store(_settings(), lambda st: st.expire_silence(silence_id))
    if not ok:
        raise click.ClickException(f"no active silence {silence_id}")
    click.echo(f"expired {silence_id}")


@click.group("alerts")
def alerts() -> None:
    """Alert delivery."""


@alerts.command("replay")
def alerts_replay() -> None:
    """Re-send the notifications of the alerts dead-letter topic (skips what was delivered since)."""
    from floe_stream.runtime.database import DatabaseUnavailable
    from floe_stream.sinks.alerts.replay import replay_dead_letters

    settings = _settings()
    try:
        report = asyncio.run(replay_dead_letters(settings))
    except (ConfigError, DatabaseUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"read {report.read} dead letter(s): {report.delivered} delivered, {report.skipped} already delivered, "
        f"{report.dead_lettered} failed again, {report.invalid} invalid"
    )
    for r in report.reasons:
        click.echo(f"  failed: {r}", err=True)
    if report.dead_lettered:
        raise SystemExit(1)
