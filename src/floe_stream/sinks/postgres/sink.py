"""PostgreSQL sink: check results and violation events into the history tables.

One ``executemany`` per table per fetched batch, ``ON CONFLICT DO NOTHING`` on the event id, then the
offsets are committed. Replays and a second replica insert nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from floe_stream.processors.decode import DecodeError
from floe_stream.runtime.database import create_pool, ping
from floe_stream.runtime.kafka import OutRecord, dead_letter, partition_counts
from floe_stream.runtime.service import Batch, ConsumerService
from floe_stream.runtime.telemetry import instruments
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.violation import ResolvedData, ViolationCloudEvent, decode_violation

log = logging.getLogger(__name__)

INSERT_RESULT = """
INSERT INTO check_results (result_id, asset, contract_id, contract_version, check_type, status, severity,
    evaluated_at, trigger, metric, sla_consumed, expected, actual, message, source_event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (result_id) DO NOTHING
"""

INSERT_VIOLATION = """
INSERT INTO violation_events (event_id, event_type, correlation_key, asset, contract_id, contract_name,
    contract_version, violation_type, drift_kind, severity, message, element, expected_value, actual_value,
    occurred_at, episode_started_at, open_duration_s, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::jsonb)
ON CONFLICT (event_id) DO NOTHING
"""


def result_row(r: CheckResult) -> tuple[Any, ...]:
    return (
        r.result_id, r.asset, r.contract_id, r.contract_version, r.check_type.value, r.status.value,
        r.severity.value if r.severity else None, r.evaluated_at, r.trigger, r.metric, r.sla_consumed,
        r.expected, r.actual, r.message, r.source_event_id,
    )  # fmt: skip


def violation_row(ev: ViolationCloudEvent) -> tuple[Any, ...]:
    d = ev.data
    if isinstance(d, ResolvedData):
        occurred, started, duration = d.resolved_at, d.opened_at, d.open_duration_s
        drift, element, expected, actual = None, None, None, None
    else:
        occurred, started, duration = d.detected_at, d.episode_started_at, None
        drift = d.drift_kind.value if d.drift_kind else None
        element, expected, actual = d.element, d.expected_value, d.actual_value
    return (
        ev.id, ev.type, d.correlation_key, d.asset, d.contract_id, d.contract_name, d.contract_version,
        d.violation_type.value, drift, d.severity.value, d.message, element, expected, actual,
        occurred, started, duration, ev.model_dump_json(),
    )  # fmt: skip


class PostgresSink(ConsumerService):
    name = "sink-postgres"

    def __init__(self, settings: Settings, pool: asyncpg.Pool | None = None) -> None:
        k = settings.kafka
        self.t_results = topic_name(k.topic_prefix, TopicKey.CHECK_RESULTS)
        self.t_viol = topic_name(k.topic_prefix, TopicKey.VIOLATIONS)
        self.t_dlq = topic_name(k.topic_prefix, TopicKey.DLQ)
        super().__init__(settings, [self.t_results, self.t_viol], f"{k.group_prefix}-sink-postgres")
        self.pool = pool
        self._own_pool = pool is None
        self.dlq_partitions = 1
        self.rows_written = 0
        self.degraded = False

    async def setup(self) -> None:
        if self.pool is None:
            self.pool = await create_pool(self.settings.database)
        self.dlq_partitions = (await partition_counts(self.settings.kafka, [self.t_dlq]))[self.t_dlq]

    async def teardown(self) -> None:
        if self.pool is not None and self._own_pool:
            await self.pool.close()

    async def readiness(self) -> dict[str, bool]:
        checks = await super().readiness()
        checks["database"] = not self.degraded and self.pool is not None and await ping(self.pool)
        return checks

    async def _write(self, results: list[tuple[Any, ...]], violations: list[tuple[Any, ...]]) -> None:
        """Write in one transaction; while the database is down, retry with backoff (offsets stay put)."""
        assert self.pool is not None
        delay = 0.2
        while True:
            try:
                async with self.pool.acquire(timeout=5) as conn, conn.transaction():
                    if results:
                        await conn.executemany(INSERT_RESULT, results)
                    if violations:
                        await conn.executemany(INSERT_VIOLATION, violations)
                self.degraded = False
                return
            except (OSError, TimeoutError, asyncpg.exceptions.ConnectionDoesNotExistError,
                    asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.InterfaceError) as exc:
                self.degraded = True
                if self._stopping.is_set():
                    raise
                log.warning("database unavailable, retrying in %.1fs (offsets not committed): %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def handle(self, batch: Batch) -> None:
        results: list[tuple[Any, ...]] = []
        violations: list[tuple[Any, ...]] = []
        dead: list[OutRecord] = []
        for tp, recs in batch.items():
            for rec in recs:
                try:
                    if tp.topic == self.t_results:
                        if not rec.value:
                            raise DecodeError("empty message")
                        results.append(result_row(CheckResult.model_validate_json(rec.value)))
                    else:
                        violations.append(violation_row(decode_violation(dict(rec.headers or ()), rec.key, rec.value or b"")))
                except Exception as exc:
                    reason = exc.reason if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
                    dead.append(dead_letter(self.t_dlq, rec, reason[:500], self.dlq_partitions))
                    instruments().dead_lettered.add(1, {"topic": tp.topic, "reason": type(exc).__name__})
                    log.warning("dead-lettered %s[%d]@%d: %s", tp.topic, tp.partition, rec.offset, reason[:200])
        await self._write(results, violations)
        if dead:
            await self.produce(dead)
        self.rows_written += len(results) + len(violations)
        instruments().sink_writes.add(len(results) + len(violations), {"sink": "postgres"})
