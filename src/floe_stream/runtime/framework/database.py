"""PostgreSQL edges: connection pool and versioned SQL migrations (``migrations/NNNN_name.sql``)."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import asyncpg

from floe_stream.settings import ConfigError, DatabaseSettings

log = logging.getLogger(__name__)
_LOCK_ID = 0x0F10E5  # advisory lock: one migrator at a time across replicas / hook jobs


class DatabaseUnavailable(Exception):
    pass


_LIBPQ_KEYS = {"host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "connect_timeout",
               "application_name", "options", "sslrootcert", "sslcert", "sslkey", "target_session_attrs"}  # fmt: skip


def dsn_url(raw: str) -> str:
    """The PostgreSQL URL asyncpg takes. A libpq keyword/value string (``host=db dbname=floe user=u``) is
    converted; anything malformed raises :class:`ConfigError` naming FLOE_DATABASE__DSN and what to fix."""
    from urllib.parse import quote, urlsplit

    text = raw.strip()
    if "://" not in text and "=" in text:
        import shlex

        try:
            pairs = [item.partition("=") for item in shlex.split(text)]
        except ValueError as exc:
            raise ConfigError(f"FLOE_DATABASE__DSN: cannot parse the keyword/value string: {exc}") from None
        kv = {k.strip().lower(): v for k, sep, v in pairs if sep}
        bad = [k for k, sep, _ in pairs if not sep] + [k for k in kv if k not in _LIBPQ_KEYS]
        if bad:
            raise ConfigError(
                f"FLOE_DATABASE__DSN: unknown keyword(s) {', '.join(map(repr, bad))} "
                f"(use host, port, dbname, user, password, sslmode … or postgresql://user@host:5432/db)"
            )
        auth = ""
        if "user" in kv:
            auth = (
                quote(kv.pop("user"), safe="")
                + (":" + quote(kv.pop("password"), safe="") if "password" in kv else "")
                + "@"
            )
        host = kv.pop("host", "127.0.0.1")
        port = kv.pop("port", "")
        db = kv.pop("dbname", "")
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in kv.items())
        text = f"postgresql://{auth}{host}{':' + port if port else ''}/{quote(db, safe='')}" + (
            f"?{query}" if query else ""
        )
    parts = urlsplit(text)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            "FLOE_DATABASE__DSN: expected postgresql://user@host:5432/dbname or 'host=… dbname=…', "
            f"got scheme {parts.scheme or 'none'!r}"
        )
    try:
        port_no = parts.port
    except ValueError:
        raise ConfigError(
            f"FLOE_DATABASE__DSN: the port in {parts.netloc.rpartition('@')[2]!r} is not a number "
            "between 1 and 65535"
        ) from None
    if port_no is not None and not 0 < port_no < 65536:
        raise ConfigError(f"FLOE_DATABASE__DSN: port {port_no} is not between 1 and 65535")
    return text


async def create_pool(cfg: DatabaseSettings) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            dsn_url(cfg.dsn.get_secret_value()),
            min_size=cfg.pool_min_size,
            max_size=cfg.pool_max_size,
            timeout=cfg.connect_timeout_s,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from None
    except (asyncpg.exceptions.ClientConfigurationError, ValueError, OverflowError) as exc:
        raise ConfigError(f"FLOE_DATABASE__DSN: {exc}") from None
    assert pool is not None
    return pool


async def connect(cfg: DatabaseSettings) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn_url(cfg.dsn.get_secret_value()), timeout=cfg.connect_timeout_s)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from None
    except (asyncpg.exceptions.ClientConfigurationError, ValueError, OverflowError) as exc:
        raise ConfigError(f"FLOE_DATABASE__DSN: {exc}") from None


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) in version order."""
    out = []
    for entry in resources.files("floe_stream.runtime.framework.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text()))
    return sorted(out)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations in one transaction each; returns the names applied."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS floe_schema_migrations ("
        " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM floe_schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO floe_schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(name)
            log.info("applied migration %s", name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied


async def ping(pool: asyncpg.Pool) -> bool:
    try:
        async with pool.acquire(timeout=2) as conn:
            value: Any = await conn.fetchval("SELECT 1")
            return bool(value == 1)
    except Exception:
        return False
