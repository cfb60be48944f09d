"""Replay the processor's retained inputs through a fresh, pure :class:`Engine` and rewrite the SLA history.

1. Read the input topics (materializations, catalog-commits, ticks, probe-results) of every partition between
   the ``--from`` and ``--to`` positions (a time → ``offsets_for_times``; an integer → that offset in each
   partition; ``earliest``).
2. Sort all records by event time (the record timestamp the processor uses as "now"), then topic, partition,
   offset — a total, deterministic order.
3. Feed them to the processor's pipeline (processors/pipeline.py) with a FRESH engine (empty state at
   ``--from``, like a new deployment) and the given contracts: a tick is applied once per (partition, tick
   time) to the selected assets that partition owns; an update is evaluated where it was read and the
   processor's re-routed copies are skipped (replay reads every partition); bad input is counted, skipped.
4. In ONE transaction: delete the replayed range (``evaluated_at``/``occurred_at``/``opened_at`` in
   [from, to)) of the selected assets from check_results, violation_events and violation_episodes; insert the
   new results (trigger ``replay``) and violation events; recompute those assets' daily aggregates from the
   first replayed day onwards and their SLA status from raw.

Nothing is produced to Kafka: no violation reaches the violations topic, so no channel is notified. Ids are
deterministic, so running the same replay twice leaves identical tables.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.durations import parse_duration
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import Outputs, Record
from floe_stream.processors.pipeline import Pipeline
from floe_stream.reporting import store
from floe_stream.reporting.timeline import day_of
from floe_stream.runtime.framework.database import connect
from floe_stream.runtime.framework.kafka import existing_partition_counts, make_consumer, start_client
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.violation import (
    RESOLVED_TYPE,
    SOURCE,
    VIOLATION_TYPE,
    ResolvedData,
    ViolationCloudEvent,
    ViolationData,
)

log = logging.getLogger(__name__)

Position = datetime | int | str  # a time, an offset in every partition, or "earliest" / "latest"
Progress = Callable[[str, int, int], None]  # (phase, done, total)


def parse_position(text: str, now: datetime | None = None) -> Position:
    """``earliest``/``latest``, an integer offset, an ISO 8601 time, or a duration ago (``7d``, ``12h``)."""
    t = text.strip()
    if t.lower() in ("earliest", "latest"):
        return t.lower()
    if t.isdigit():
        return int(t)
    try:
        return (now or datetime.now(UTC)) - parse_duration(t)  # a duration ago: 7d, 12h, 2w, PT6H …
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (ISO 8601), a duration ago (7d, 12h, PT6H), an offset, 'earliest' or 'latest'"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class ReplaySummary:
    records: int = 0
    skipped: int = 0
    updates: int = 0
    ticks: int = 0
    probes: int = 0
    results: int = 0
    violations: int = 0
    assets: list[str] = field(default_factory=list)
    from_time: datetime | None = None
    to_time: datetime | None = None
    read_s: float = 0.0
    eval_s: float = 0.0
    write_s: float = 0.0


_TOPIC_RANK = {
    TopicKey.CATALOG_COMMITS: 0,
    TopicKey.MATERIALIZATIONS: 1,
    TopicKey.PROBE_RESULTS: 2,
    TopicKey.TICKS: 3,
}


async def _read(
    settings: Settings, start: Position, end: Position | None, progress: Progress | None
) -> tuple[list[tuple[TopicKey, ConsumerRecord[bytes, bytes]]], int]:
    """The records in range, and the inputs' partition count (they are co-partitioned)."""
    k = settings.kafka
    names = {topic_name(k.topic_prefix, key): key for key in _TOPIC_RANK}
    consumer = make_consumer(k, group_id=None, fetch_max_wait_ms=20)
    await start_client(consumer, k.bootstrap_servers)
    try:
        counts = await existing_partition_counts(k, list(names))
        tps = [TopicPartition(name, p) for name in names for p in range(counts.get(name, 0))]
        partitions = max(counts.values(), default=0)
        if not tps:
            return [], partitions
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        latest = await consumer.end_offsets(tps)

        async def offsets(pos: Position, default: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
            if pos == "earliest":
                return dict(begin)
            if pos == "latest":
                return dict(latest)
            if isinstance(pos, int):
                return {tp: min(max(pos, begin[tp]), latest[tp]) for tp in tps}
            assert isinstance(pos, datetime)
            found = await consumer.offsets_for_times({tp: int(pos.timestamp() * 1000) for tp in tps})
            return {tp: (found[tp].offset if found.get(tp) is not None else default[tp]) for tp in tps}

        lo = await offsets(start, latest)
        hi = await offsets(end, latest) if end is not None else dict(latest)
        total = sum(max(0, hi[tp] - lo[tp]) for tp in tps)
        out: list[tuple[TopicKey, ConsumerRecord[bytes, bytes]]] = []
        pending = {tp for tp in tps if hi[tp] > lo[tp]}
        for tp in tps:
            consumer.seek(tp, lo[tp])
        done = 0
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
            for tp, recs in batch.items():
                for rec in recs:
                    if rec.offset < hi[tp]:
                        out.append((names[tp.topic], rec))
                        done += 1
            for tp in list(pending):
                if await consumer.position(tp) >= hi[tp]:
                    pending.discard(tp)
            if progress:
                progress("read", done, total)
        return out, partitions
    finally:
        await consumer.stop()


def _violation_event(v: ViolationData | ResolvedData) -> ViolationCloudEvent:
    resolved = isinstance(v, ResolvedData)
    return ViolationCloudEvent(
        id=v.violation_id, source=SOURCE, type=RESOLVED_TYPE if resolved else VIOLATION_TYPE,  # type: ignore[arg-type]
        subject=v.asset, time=v.resolved_at if isinstance(v, ResolvedData) else v.detected_at,
        partitionkey=v.asset, data=v,
    )  # fmt: skip


def evaluate(
    records: Iterable[tuple[TopicKey, ConsumerRecord[bytes, bytes]]],
    registry: ContractRegistry,
    assets: list[MonitoredAsset],
    engine: Engine,
    summary: ReplaySummary,
    progress: Progress | None = None,
    *,
    partitions: int,
    not_after_ms: int | None = None,
) -> Outputs:
    """Feed the records, in event-time order, through the processor's pipeline (``partitions`` = the inputs'
    partition count; a record stamped after ``not_after_ms`` is dead-lettered, as the processor does). Pure
    apart from the progress callback."""
    ordered = sorted(
        records, key=lambda kr: (kr[1].timestamp, _TOPIC_RANK[kr[0]], kr[1].partition, kr[1].offset)
    )
    wanted = {a.asset_id for a in assets}
    tick_times: set[datetime] = set()
    pipeline = Pipeline(
        engine,
        registry,
        partitions,
        reroute=False,
        select=wanted.__contains__,
        trigger="replay",
        on_tick=lambda _, t: tick_times.add(t),
    )
    pipeline.not_after_ms = not_after_ms
    out = Outputs()

    def collect(_: Record | None, o: Outputs) -> None:
        out.extend(o)

    total = len(ordered)
    for i, (key, rec) in enumerate(ordered):
        pipeline.feed(key, rec.partition, [rec], collect)
        if progress and (i % 2000 == 0 or i == total - 1):
            progress("evaluate", i + 1, total)
    summary.skipped = len(out.dead_letters)  # undecodable input
    summary.updates = pipeline.applied["updates"]
    summary.probes = pipeline.applied["probes"]
    summary.ticks = len(tick_times)  # distinct tick times applied
    return out


async def write_replay(
    conn: asyncpg.Connection,
    assets: list[str],
    start: datetime,
    end: datetime | None,
    results: list[CheckResult],
    violations: list[ViolationCloudEvent],
) -> None:
    """Replace the replayed range of ``assets`` with the new results; recompute aggregates and status."""
    upper = end or datetime.max.replace(tzinfo=UTC)
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM check_results WHERE asset = ANY($1) AND evaluated_at >= $2 AND evaluated_at < $3",
            assets, start, upper,
        )  # fmt: skip
        await conn.execute(
            "DELETE FROM violation_events WHERE asset = ANY($1) AND occurred_at >= $2 AND occurred_at < $3",
            assets, start, upper,
        )  # fmt: skip
        await conn.execute(
            "DELETE FROM violation_episodes WHERE asset = ANY($1) AND opened_at >= $2 AND opened_at < $3",
            assets, start, upper,
        )  # fmt: skip
        if results:
            unique = list({r.result_id: r for r in results}.values())
            await conn.execute(store.INSERT_RESULTS, *store.result_columns(unique))
        if violations:
            unique_v = list({v.id: v for v in violations}.values())
            inserted = {
                r["event_id"]
                for r in await conn.fetch(store.INSERT_VIOLATIONS, *store.violation_columns(unique_v))
            }
            await store.apply_episodes(conn, [v for v in unique_v if v.id in inserted])
        keys = await conn.fetch(
            "SELECT DISTINCT asset, check_type FROM check_results WHERE asset = ANY($1)", assets
        )
        floor = await store.pruned_before(conn)  # days before the prune horizon keep their aggregates
        d_from = max(day_of(start), floor) if floor else day_of(start)
        await conn.execute("DELETE FROM daily_aggregates WHERE asset = ANY($1) AND day >= $2", assets, d_from)
        if keys:
            await store.recompute_days(conn, [(k["asset"], k["check_type"], d_from) for k in keys])
        await store.rebuild_status(conn, assets)


async def replay(
    settings: Settings,
    registry: ContractRegistry,
    *,
    start: Position,
    end: Position | None = None,
    contract_ids: set[str] | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Re-evaluate the retained inputs between ``start`` and ``end`` and rewrite the history of the assets of
    ``contract_ids`` (default: every contract in ``registry``). Notifications are muted (nothing is produced)."""
    summary = ReplaySummary()
    assets = [a for a in registry.assets() if contract_ids is None or a.contract_id in contract_ids]
    assets.sort(key=lambda a: a.asset_id)
    summary.assets = [a.asset_id for a in assets]
    if not assets:
        return summary
    t0 = time.perf_counter()
    records, partitions = await _read(settings, start, end, progress)
    summary.records = len(records)
    summary.read_s = time.perf_counter() - t0
    if not records:
        return summary
    first = min(datetime.fromtimestamp(r.timestamp / 1000, tz=UTC) for _, r in records)
    summary.from_time = start if isinstance(start, datetime) else first
    summary.to_time = end if isinstance(end, datetime) else None
    t1 = time.perf_counter()
    engine = Engine(
        clock_skew_s=settings.clock_skew_s, policy=settings.checks.policy(), limits=settings.limits
    )
    not_after_ms = int((time.time() + settings.limits.max_future_s) * 1000)  # what the processor refuses
    out = evaluate(
        records, registry, assets, engine, summary, progress, partitions=partitions, not_after_ms=not_after_ms
    )
    results = [r.model_copy(update={"trigger": "replay"}) for r in out.check_results]
    events = [_violation_event(v) for v in out.violations]
    summary.results, summary.violations = len(results), len(events)
    summary.eval_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    if progress:
        progress("write", 0, 1)
    conn = await connect(settings.database)
    try:
        await store.register_contracts(
            conn, [c for c in registry.contracts.values() if contract_ids is None or c.contract_id in contract_ids],
            by="replay",
        )  # fmt: skip
        await write_replay(conn, summary.assets, summary.from_time, summary.to_time, results, events)
    finally:
        await conn.close()
    summary.write_s = time.perf_counter() - t2
    if progress:
        progress("write", 1, 1)
    return summary


def summary_dict(s: ReplaySummary) -> dict[str, Any]:
    return {
        "records": s.records, "skipped": s.skipped, "updates": s.updates, "ticks": s.ticks, "probes": s.probes,
        "results": s.results, "violations": s.violations, "assets": len(s.assets),
        "from": s.from_time.isoformat() if s.from_time else None, "to": s.to_time.isoformat() if s.to_time else None,
    }  # fmt: skip
