"""PostgreSQL edges: connection pool and versioned SQL migrations (``migrations/NNNN_name.sql``)."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import asyncpg

from floe_stream.settings import DatabaseSettings

log = logging.getLogger(__name__)
_LOCK_ID = 0x0F10E5  # advisory lock: one migrator at a time across replicas / hook jobs


class DatabaseUnavailable(Exception):
    pass


async def create_pool(cfg: DatabaseSettings) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            cfg.dsn.get_secret_value(),
            min_size=cfg.pool_min_size,
            max_size=cfg.pool_max_size,
            timeout=cfg.connect_timeout_s,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from None
    assert pool is not None
    return pool


async def connect(cfg: DatabaseSettings) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(cfg.dsn.get_secret_value(), timeout=cfg.connect_timeout_s)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from None


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) in version order."""
    out = []
    for entry in resources.files("floe_stream.runtime.migrations").iterdir():
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
