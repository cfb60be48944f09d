"""PostgreSQL sink: check results and violation events into the SLA history.

Per fetched batch, in ONE transaction (:func:`floe_stream.reporting.store.write_history`): raw rows inserted with
``ON CONFLICT DO NOTHING RETURNING``; only the rows actually inserted update the daily aggregates, the current
SLA status and the violation episodes. Then (the runtime) commits the offsets. Replays and a second replica change
nothing twice.

The sink also reads the ticks topic: a tick is its clock for the automatic daily prune of raw rows older than
``FLOE_HISTORY__RETENTION_DAYS`` (once per UTC day across replicas, advisory lock). Aggregates are never pruned.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime

import asyncpg

from floe_stream.reporting import store
from floe_stream.reporting.timeline import day_of
from floe_stream.runtime.framework.database import create_pool, ping
from floe_stream.runtime.framework.sink_runtime import (
    Input,
    Sink,
    SinkBatch,
    SinkContext,
    SinkRecord,
    is_transient,
)
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.decode import DecodeError, decode_tick
from floe_stream.topics.violation import ViolationCloudEvent, decode_violation

log = logging.getLogger(__name__)


def _result(headers: dict[str, bytes], key: bytes | None, value: bytes | None) -> CheckResult:
    if not value:
        raise DecodeError("empty message")
    return CheckResult.model_validate_json(value)


def _violation(headers: dict[str, bytes], key: bytes | None, value: bytes | None) -> ViolationCloudEvent:
    return decode_violation(headers, key, value or b"")


def _tick(headers: dict[str, bytes], key: bytes | None, value: bytes | None) -> datetime:
    return decode_tick(value).tick_time


ContractRecord = tuple[bytes | None, bytes | None]
"""A contracts-topic record: its YAML (None: a tombstone) and its compiled form (the ``floe-compiled`` header)."""


def _contract_record(headers: dict[str, bytes], key: bytes | None, value: bytes | None) -> ContractRecord:
    from floe_stream.contracts.compiled import COMPILED_HEADER

    return value, headers.get(COMPILED_HEADER)


class PostgresSink(Sink):
    """A :class:`~floe_stream.runtime.framework.sink_runtime.Sink`: check results and violations into the SLA history."""

    name = "sink-postgres"

    def __init__(self, settings: Settings, pool: asyncpg.Pool | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self._own_pool = pool is None
        self.ctx: SinkContext | None = None
        self.rows_written = 0
        self.degraded = False
        self.seen_contracts: set[tuple[str, str]] = set()
        self.pruned_on: date | None = None
        self.last_prune: dict[str, int] | None = None

    def inputs(self) -> list[Input]:
        out = [
            Input("results", TopicKey.CHECK_RESULTS, _result),
            Input("violations", TopicKey.VIOLATIONS, _violation),
        ]
        if self.settings.history.auto_prune:  # the processor dead-letters bad ticks; not our input
            out.append(Input("ticks", TopicKey.TICKS, _tick, on_error="skip"))
        if self.settings.history.register_contracts:
            out.append(Input("contracts", TopicKey.CONTRACTS, _contract_record))
        return out

    async def start(self, ctx: SinkContext) -> None:
        self.ctx = ctx
        if self.pool is None:
            self.pool = await create_pool(self.settings.database)
        if self.settings.history.register_contracts:
            await self._register_contracts()

    async def close(self) -> None:
        if self.pool is not None and self._own_pool:
            await self.pool.close()

    async def readiness(self) -> dict[str, bool]:
        return {"database": not self.degraded and self.pool is not None and await ping(self.pool)}

    async def _register_contracts(self) -> None:
        """Best effort: the owner/team filters of `floe sla report` need asset → owner, team."""
        path = self.settings.contracts_dir
        if not path.is_dir():
            return
        from floe_stream.contracts.loader import load_directory

        contracts, errors = load_directory(path)
        for e in errors:
            log.warning("contract not registered: %s", e)
        if contracts:
            assert self.pool is not None
            async with self.pool.acquire(timeout=10) as conn:
                n_c, n_a = await store.register_contracts(conn, contracts, by="sink")
            log.info("registered %d contract(s), %d asset(s) from %s", n_c, n_a, path)

    async def _register_docs(self, docs: dict[str, ContractRecord]) -> None:
        """Contracts published on the contracts topic (``floe contracts publish``): record owner/team/versions,
        read as the processors read them (contracts/runtime_registry.load_record: the compiled form when this floe
        reads it, else the YAML), so the history registers the asset ids, owners and teams the processors monitor,
        even where a compiled header and its YAML disagree. Refused compiled forms and invalid documents are the
        processor's business (it reports them): here a refused form's YAML is read without a line, an invalid
        document is skipped with a debug line."""
        from floe_stream.contracts.models import ContractError
        from floe_stream.contracts.runtime_registry import load_record

        loaded = []
        retired = []
        for cid, (value, compiled) in docs.items():
            if not value:
                retired.append(cid)
                continue
            try:
                loaded.append(load_record(value.decode(), compiled, f"topic:{cid}", warn=False))
            except (ContractError, UnicodeDecodeError) as exc:
                log.debug("contract %s from the topic not registered: %s", cid, exc)
            except Exception as exc:  # a loader bug: skip this record, never the sink's batch
                log.warning(
                    "contract %s from the topic not registered: unexpected %s: %s",
                    cid,
                    type(exc).__name__,
                    exc,
                )
        assert self.pool is not None
        async with self.pool.acquire(timeout=10) as conn:
            if loaded:
                await store.register_contracts(conn, loaded, by="topic")
            if retired:
                await conn.execute(
                    "UPDATE registered_contracts SET status = 'retired', updated_at = now() WHERE contract_id = ANY($1)",
                    retired,
                )

    async def write_history(
        self, results: Sequence[CheckResult], violations: Sequence[ViolationCloudEvent]
    ) -> tuple[int, int]:
        """Write in one transaction; while the database is down, retry with backoff (offsets stay put)."""
        assert self.pool is not None and self.ctx is not None
        pool = self.pool

        async def attempt() -> tuple[int, int]:
            seen = set(self.seen_contracts)  # adopted only once the transaction committed
            async with pool.acquire(timeout=5) as conn, conn.transaction():
                counts = await store.write_history(conn, results, violations, seen_contracts=seen)
            self.seen_contracts = seen
            return counts

        return await self.ctx.retry(attempt, "database", on_state=self._set_degraded)

    def _set_degraded(self, degraded: bool) -> None:
        self.degraded = degraded

    async def maybe_prune(self, now: datetime) -> None:
        """Once per UTC day (per replica cheaply, across replicas via the database)."""
        if not self.settings.history.auto_prune or self.pruned_on == day_of(now):
            return
        assert self.pool is not None
        try:
            async with self.pool.acquire(timeout=5) as conn:
                counts = await store.daily_prune(conn, now, self.settings.history.retention_days)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("daily prune postponed: %s", exc)
            return
        self.pruned_on = day_of(now)
        if counts is not None:
            self.last_prune = counts

    async def _write_one(
        self,
        results: list[CheckResult],
        violations: list[ViolationCloudEvent],
        rec: SinkRecord,
        batch: SinkBatch,
    ) -> None:
        try:
            await self.write_history(results, violations)
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise
            batch.reject_exc(rec, exc)

    async def write(self, batch: SinkBatch) -> None:
        results: list[CheckResult] = []
        violations: list[ViolationCloudEvent] = []
        latest_tick: datetime | None = None
        contract_docs: dict[str, ContractRecord] = {}
        sources: list[SinkRecord] = []
        v_sources: list[SinkRecord] = []
        for rec in batch.records:
            if rec.input == "contracts":
                if rec.key:
                    contract_docs[rec.key.decode(errors="replace")] = rec.value  # the newest per id wins
            elif rec.input == "ticks":
                t: datetime = rec.value
                latest_tick = t if latest_tick is None else max(latest_tick, t)
            elif rec.input == "results":
                results.append(rec.value)
                sources.append(rec)
            else:
                violations.append(rec.value)
                v_sources.append(rec)
        if results or violations:
            try:
                await self.write_history(results, violations)
            except asyncpg.PostgresError as exc:  # not transient: one row the database refuses
                if is_transient(exc):
                    raise  # stopping while the database is down: leave the offsets for the next owner
                log.warning("batch refused by PostgreSQL (%s): writing record by record", exc)
                for r, rec in zip(results, sources, strict=True):
                    await self._write_one([r], [], rec, batch)
                for v, rec in zip(violations, v_sources, strict=True):
                    await self._write_one([], [v], rec, batch)
        if contract_docs:
            await self._register_docs(contract_docs)
        if latest_tick is not None:
            await self.maybe_prune(latest_tick)
        self.rows_written += len(results) + len(violations)
        assert self.ctx is not None
        self.ctx.metrics.sink_writes.add(len(results) + len(violations), {"sink": "postgres"})
