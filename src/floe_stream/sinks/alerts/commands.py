"""CLI commands of the alert path: ``floe silence add|list|expire`` and ``floe alerts replay``
(registered in :mod:`floe_stream.cli.main`; ``floe run sink alerts`` runs :class:`~.sink.AlertSink` on the sink runtime)."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from floe_stream.settings import ConfigError, Settings, load_settings

T = TypeVar("T")


def parse_until(value: str, now: datetime | None = None) -> datetime:
    """``2h`` / ``30m`` / ``1d`` from now, or an ISO 8601 time (UTC when no offset is given)."""
    from floe_stream.durations import parse_duration

    now = now or datetime.now(UTC)
    try:
        return now + parse_duration(value)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use a duration (2h, 30m, 1d, 2w, PT6H) or an ISO 8601 time", param_hint="--until"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _with_store(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    from floe_stream.runtime.framework.database import DatabaseUnavailable, create_pool
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
@click.option("--created-by", "created_by", default=None, help="who (default: the current user)")
@click.option("--by", "old_by", default=None, hidden=True, help="the old name of --created-by")
@click.option("--force", is_flag=True, help="add it even when no registered contract has this contract/asset")
def silence_add(
    contract: str | None,
    asset: str | None,
    until: str,
    comment: str,
    created_by: str | None,
    old_by: str | None,
    force: bool,
) -> None:
    """Add a silence; prints its id. The contract (id or name) and asset must belong to a registered contract
    (`floe contracts register`), so a typo cannot silently mute nothing (--force skips the check).
    """
    if not contract and not asset:
        raise click.UsageError("give --contract and/or --asset")
    now = datetime.now(UTC)
    ends = parse_until(until, now)
    if ends <= now:
        raise click.BadParameter(f"{until!r} is in the past", param_hint="--until")
    by = created_by or old_by or getpass.getuser()

    async def add(st: Any) -> Any:
        if not force:
            await check_known(st.pool, contract, asset)
        return await st.add_silence(
            contract=contract, asset=asset, starts_at=now, ends_at=ends, comment=comment, created_by=by
        )

    s = _with_store(_settings(), add)
    click.echo(f"{s.silence_id}  silences {_what(s)} until {s.ends_at.isoformat()}")


async def check_known(pool: Any, contract: str | None, asset: str | None) -> None:
    """Refuse a contract or asset that no registered contract has, listing the known ones (did-you-mean first)."""
    import difflib

    async with pool.acquire() as conn:
        contracts = {
            r["contract_id"]: r["name"]
            for r in await conn.fetch("SELECT DISTINCT contract_id, name FROM registered_contracts")
        }
        assets = {
            r["asset"]: r["contract_id"]
            for r in await conn.fetch("SELECT asset, contract_id FROM contract_assets")
        }
    if not contracts and not assets:
        raise click.ClickException(
            "no contracts are registered, so the silence cannot be checked: run `floe contracts register DIR` "
            "(or add --force)"
        )

    def known(kind: str, value: str, names: list[str]) -> None:
        near = difflib.get_close_matches(value, names, n=3, cutoff=0.6)
        listed = ", ".join(sorted(names)[:15]) + (" …" if len(names) > 15 else "")
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise click.BadParameter(
            f"no registered contract has {kind} {value!r} ({hint}known: {listed})", param_hint=f"--{kind}"
        )

    ids = {c for c in contracts} | {n for n in contracts.values() if n}
    if contract and contract not in ids:
        known("contract", contract, sorted(ids))
    if asset and asset not in assets:
        known("asset", asset, sorted(assets))
    if contract and asset and assets[asset] != contract and contracts.get(assets[asset]) != contract:
        raise click.BadParameter(
            f"asset {asset!r} belongs to contract {assets[asset]!r}, not {contract!r}", param_hint="--asset"
        )


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
        raise click.ClickException(f"no active silence {silence_id!r} (ids: `floe silence list`)")
    click.echo(f"expired {silence_id}")


@click.group("alerts")
def alerts() -> None:
    """Alert delivery."""


@alerts.command("replay")
def alerts_replay() -> None:
    """Re-send the notifications of the alerts dead-letter topic (skips what was delivered since)."""
    from floe_stream.runtime.framework.database import DatabaseUnavailable
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
