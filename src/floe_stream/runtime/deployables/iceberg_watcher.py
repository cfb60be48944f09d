"""`floe run source iceberg`: poll an Iceberg catalog, publish one catalog-commit event per new snapshot.

Per poll: list the watched tables (SQL catalog: one query returning every metadata location), load only tables
whose metadata location moved or is unknown (``load_concurrency`` at a time, in threads), compute new events
(:func:`~floe_stream.sources.iceberg.snapshots.new_events`), produce them keyed by table and wait for the
broker's acknowledgement, and only then advance the in-memory marks.

Restart: the marks are rebuilt from the catalog-commits topic itself — every record this watcher publishes
carries the ``floe-iceberg-mark`` header (metadata location, snapshot id, sequence number, schema id), and the
last one per table wins. A crash between produce and acknowledgement republishes the same events with the same
deterministic ids; nothing older than a published snapshot is ever published again.

Replicas: every watcher of a catalog joins the consumer group ``<group_prefix>-source-iceberg-<catalog>`` on the
catalog-commits topic (its partitions paused: the membership is all it wants) and watches only the tables whose
key falls in the partitions it is assigned, restoring their marks from those partitions when it gets them. A
revocation waits for the poll in flight (its events acknowledged, its marks moved) before the partitions move,
so two replicas never publish the same snapshot; one replica alone owns every table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from floe_stream.backoff import Backoff
from floe_stream.runtime.framework.health import start_health
from floe_stream.runtime.framework.kafka import (
    DLQ_TRUNCATED_BYTES,
    BatchProducer,
    OutRecord,
    make_consumer,
    make_producer,
    partition_counts,
)
from floe_stream.settings import Settings
from floe_stream.sources.iceberg.catalog import list_tables, load_metadata, open_catalog
from floe_stream.sources.iceberg.snapshots import Refused, TableMark, new_events
from floe_stream.telemetry.metrics import Instruments
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for

log = logging.getLogger(__name__)

MARK_HEADER = "floe-iceberg-mark"
SOURCE_HEADER = "floe-source"


@dataclass
class PollStats:
    tables: int = 0
    loaded: int = 0
    published: int = 0
    vanished: int = 0
    failed: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


class _Metrics:
    def __init__(self) -> None:
        from opentelemetry import metrics

        meter = metrics.get_meter("floe_stream")
        self.published = meter.create_counter(
            "floe_source_commits_published", description="catalog commits published"
        )
        self.loaded = meter.create_counter("floe_source_tables_loaded", description="table metadata reads")
        self.poll = meter.create_histogram(
            "floe_source_poll_seconds", unit="s", description="one catalog poll"
        )


_metrics: _Metrics | None = None


def _m() -> _Metrics:
    global _metrics
    if _metrics is None:
        _metrics = _Metrics()
    return _metrics


class _Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Which catalog-commits partitions (and so which tables) this replica watches."""

    def __init__(self, watcher: IcebergWatcher) -> None:
        self.w = watcher

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.w._poll_lock:  # the poll in flight finishes (acknowledged) before the tables move
            gone = {tp.partition for tp in revoked}
            self.w.owned -= gone
            for table in [t for t in self.w.marks if partition_for(t, self.w.partitions) in gone]:
                del self.w.marks[table]  # the next owner advances them; take them again from the topic

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.w._poll_lock:
            if self.w._group is not None and assigned:
                self.w._group.pause(*assigned)  # membership only: nothing is read through the group
            new = {tp.partition for tp in assigned} - self.w.owned
            restored = await self.w.restore(new) if new else 0
            self.w.owned |= new
            self.w.joined = True
            log.info(
                "watching the tables of catalog-commits partitions %s (%d tables restored)",
                sorted(self.w.owned), restored,
            )  # fmt: skip


class IcebergWatcher:
    name = "source-iceberg"

    def __init__(self, settings: Settings, catalog: Any | None = None, *, metrics: Instruments) -> None:
        self.settings = settings
        self.metrics = metrics  # the process's instruments, given by the composition root
        self.cfg = settings.sources.iceberg
        self.topic = topic_name(settings.kafka.topic_prefix, TopicKey.CATALOG_COMMITS)
        self.t_dlq = topic_name(settings.kafka.topic_prefix, TopicKey.DLQ)
        self.dlq_partitions = 1
        self.source_id = f"iceberg:{self.cfg.catalog_name}".encode()
        self.catalog = catalog
        self.marks: dict[str, TableMark] = {}
        self.partitions = 0
        self.polls = 0
        self.last_poll_ok: float | None = None
        self.last_stats = PollStats()
        self._stop = asyncio.Event()
        self._sender: BatchProducer | None = None
        self.owned: set[int] = set()  # catalog-commits partitions whose tables this replica watches
        self.joined = False  # the group gave this replica its first assignment (possibly empty)
        self._group: Any = None
        self._poll_lock = asyncio.Lock()
        self.group_id = f"{settings.kafka.group_prefix}-source-iceberg-{self.cfg.catalog_name}"

    def request_stop(self) -> None:
        self._stop.set()

    # --- state ------------------------------------------------------------------------------------
    async def restore(self, partitions: set[int] | None = None) -> int:
        """Rebuild the marks of the tables in ``partitions`` (all: None) from this catalog's records in the
        catalog-commits topic. Returns how many tables have a mark."""
        reader = make_consumer(self.settings.kafka, group_id=None, fetch_max_wait_ms=10)
        await reader.start()
        try:
            wanted = range(self.partitions) if partitions is None else sorted(partitions)
            tps = [TopicPartition(self.topic, p) for p in wanted]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            end = await reader.end_offsets(tps)
            remaining = {tp for tp in tps if end[tp] > 0}
            while remaining:
                batch = await reader.getmany(timeout_ms=200, max_records=10_000)
                for recs in batch.values():
                    for rec in recs:
                        headers = dict(rec.headers or ())
                        raw = headers.get(MARK_HEADER)
                        if headers.get(SOURCE_HEADER) != self.source_id or raw is None or rec.key is None:
                            continue
                        try:
                            mark = TableMark.model_validate_json(raw)
                        except ValueError:
                            continue
                        table = rec.key.decode()
                        old = self.marks.get(table)
                        if old is None or mark.order >= old.order or mark.table_uuid != old.table_uuid:
                            self.marks[table] = mark
                for tp in list(remaining):
                    if await reader.position(tp) >= end[tp]:
                        remaining.discard(tp)
        finally:
            await reader.stop()
        return len(self.marks)

    # --- one poll ---------------------------------------------------------------------------------
    async def poll_once(self) -> PollStats:
        async with self._poll_lock:
            return await self._poll()

    async def _poll(self) -> PollStats:
        assert self._sender is not None, "poll_once() runs inside run() or after start()"
        t0 = time.perf_counter()
        stats = PollStats()
        listing = await asyncio.to_thread(list_tables, self.catalog, self.cfg)
        owned = self.owned
        listing = {t: loc for t, loc in listing.items() if partition_for(t, self.partitions) in owned}
        stats.tables = len(listing)
        todo = [
            t
            for t, loc in listing.items()
            if loc is None or (mk := self.marks.get(t)) is None or mk.metadata_location != loc
        ]
        sem = asyncio.Semaphore(self.cfg.load_concurrency)

        async def load(table: str) -> tuple[str, tuple[Any, str | None] | BaseException | None]:
            async with sem:
                try:
                    return table, await asyncio.to_thread(load_metadata, self.catalog, table)
                except Exception as exc:  # one unreadable table must not stop the others
                    return table, exc

        records: list[OutRecord] = []
        new_marks: dict[str, TableMark] = {}
        for table, got in await asyncio.gather(*(load(t) for t in todo)):
            if isinstance(got, BaseException):
                stats.failed += 1
                stats.errors.append(f"{table}: {type(got).__name__}: {got}")
                log.warning("cannot load Iceberg table %s: %s: %s", table, type(got).__name__, got)
                continue
            if got is None:
                stats.vanished += 1
                continue
            stats.loaded += 1
            metadata, location = got
            try:
                events, mark = new_events(
                    table,
                    metadata,
                    location,
                    self.marks.get(table),
                    catalog=self.cfg.catalog_name,
                    backfill=self.cfg.backfill,
                    max_snapshots=self.cfg.max_snapshots_per_poll,
                    schema_changes=self.cfg.schema_changes,
                )
            except Exception as exc:  # metadata no event can be made of: this table only, retried next poll
                stats.failed += 1
                stats.errors.append(f"{table}: {type(exc).__name__}: {exc}")
                log.warning("cannot read Iceberg table %s: %s: %s", table, type(exc).__name__, exc)
                continue
            new_marks[table] = mark
            part = partition_for(table, self.partitions)
            for i, ev in enumerate(events):
                # an intermediate mark has no location: if only part of a burst was acknowledged before a
                # crash, the restarted watcher reloads the table instead of trusting an unchanged pointer
                ev_mark = (
                    mark
                    if i == len(events) - 1
                    else TableMark(
                        metadata_location=None,
                        snapshot_id=ev.snapshot_id,
                        sequence_number=ev.sequence_number,
                        timestamp_ms=ev.timestamp_ms,
                        schema_id=ev.schema_id if isinstance(ev, Refused) else ev.table_schema.schema_id,
                        table_uuid=mark.table_uuid,
                    )
                )
                if isinstance(ev, Refused):  # breaks the wire model: dead-lettered, the mark moves past it
                    records.append(self._dead_letter(table, part, ev.snapshot_id, ev.value, ev.reason))
                    stats.dead_lettered += 1
                    continue
                value = ev.model_dump_json(by_alias=True).encode()
                limit = self.settings.kafka.max_record_bytes
                if len(value) > limit:  # the processor would refuse it (the broker might, failing the poll)
                    reason = f"record too large: {len(value)} bytes > kafka.max_record_bytes={limit}"
                    records.append(self._dead_letter(table, part, ev.snapshot_id, value, reason))
                    stats.dead_lettered += 1
                    continue
                headers = [(SOURCE_HEADER, self.source_id), (MARK_HEADER, ev_mark.model_dump_json().encode())]
                records.append(OutRecord(self.topic, part, table.encode(), value, headers))
        await self._sender.send_all(records)  # acknowledged by the broker before the marks move
        self.marks.update(new_marks)
        for gone in set(self.marks) - set(listing):
            if self.marks[gone].snapshot_id is None:
                self.marks.pop(gone)  # never published: nothing to remember
        stats.published = len(records) - stats.dead_lettered
        stats.seconds = time.perf_counter() - t0
        m = _m()
        m.published.add(stats.published, {"catalog": self.cfg.catalog_name})
        m.loaded.add(stats.loaded, {"catalog": self.cfg.catalog_name})
        m.poll.record(stats.seconds, {"catalog": self.cfg.catalog_name})
        self.polls += 1
        self.last_poll_ok = time.time()
        self.last_stats = stats
        if records or stats.failed:
            log.info(
                "poll: %d tables, %d loaded, %d commits published, %d dead-lettered, %d failed in %.3fs",
                stats.tables,
                stats.loaded,
                stats.published,
                stats.dead_lettered,
                stats.failed,
                stats.seconds,
            )
        return stats

    def _dead_letter(
        self, table: str, partition: int, snapshot_id: int, value: bytes, reason: str
    ) -> OutRecord:
        """The dead letter of a snapshot the watcher cannot publish (the headers of the processor's dead letters;
        no offset: it never reached its topic), with one log line and the dead-letter metric."""
        log.warning("dead-lettered Iceberg table %s snapshot %s: %s", table, snapshot_id, reason)
        self.metrics.dead_lettered.add(1, {"topic": self.topic, "reason": reason.split(":", 1)[0]})
        headers = [
            ("floe-dlq-reason", reason[:1000].encode()),
            ("floe-dlq-topic", self.topic.encode()),
            ("floe-dlq-partition", str(partition).encode()),
            (SOURCE_HEADER, self.source_id),
        ]
        limit = self.settings.kafka.max_record_bytes
        if len(value) > limit:
            headers.append(("floe-dlq-truncated", str(len(value)).encode()))
            value = value[: min(DLQ_TRUNCATED_BYTES, limit)]
        return OutRecord(self.t_dlq, partition % self.dlq_partitions, table.encode(), value, headers)

    # --- lifecycle --------------------------------------------------------------------------------
    async def _readiness(self) -> dict[str, bool]:
        return {"polled": self.last_poll_ok is not None}

    async def _liveness(self) -> dict[str, bool]:
        stale = (
            self.last_poll_ok is not None
            and time.time() - self.last_poll_ok > 5 * self.cfg.poll_interval_s + 60
        )
        return {"polling": not stale}

    async def start(self) -> Any:
        """Open the catalog, start the producer and restore the marks; return the producer (None: stopped first)."""
        backoff = Backoff(1.0, 60.0)
        while self.catalog is None:
            try:
                self.catalog = await asyncio.to_thread(open_catalog, self.cfg)
            except OSError as exc:
                # unreachable catalog: wait for it (a bad configuration raises ConfigError)
                delay = backoff.next()
                log.warning(
                    "Iceberg catalog %r unreachable (retrying in %.0fs): %s",
                    self.cfg.catalog_name,
                    delay,
                    exc,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    return None
        counts = await partition_counts(self.settings.kafka, [self.topic, self.t_dlq])
        self.partitions, self.dlq_partitions = counts[self.topic], counts[self.t_dlq]
        producer = make_producer(self.settings.kafka)
        await producer.start()
        self._sender = BatchProducer(producer)
        self._group = make_consumer(self.settings.kafka, group_id=self.group_id)
        self._group.subscribe([self.topic], listener=_Ownership(self))
        await self._group.start()
        while not self.joined and not self._stop.is_set():  # the first assignment (maybe none: a standby)
            await self._group.getmany(timeout_ms=200)
        log.info(
            "watching Iceberg catalog %r (group %s on %s)", self.cfg.catalog_name, self.group_id, self.topic
        )
        return producer

    async def leave(self) -> None:
        """Leave the group (after :meth:`start`): the other replicas take this one's tables at once."""
        group, self._group = self._group, None
        if group is not None:
            await group.stop()
        self.owned.clear()

    async def _keep_membership(self, seconds: float) -> None:
        """Wait ``seconds`` (or until stopped) while polling the group: its rebalances run meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stop.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            await self._group.getmany(timeout_ms=int(min(left, 1.0) * 1000))

    async def run(self) -> None:
        health = await start_health(self.settings, liveness=self._liveness, readiness=self._readiness)
        producer = None
        try:
            producer = await self.start()
            while producer is not None and not self._stop.is_set():
                started = time.monotonic()
                await self._group.getmany(timeout_ms=0)  # rebalances happen here and in the waits below
                if not self.owned:  # a standby replica (more replicas than partitions): healthy, idle
                    self.last_poll_ok = time.time()
                    await self._keep_membership(min(self.cfg.poll_interval_s, 1.0))
                    continue
                try:
                    await self.poll_once()
                except Exception as exc:  # the catalog or the broker is down: retry next interval
                    log.warning(
                        "Iceberg poll failed (retrying in %.1fs): %s: %s",
                        self.cfg.poll_interval_s,
                        type(exc).__name__,
                        exc,
                    )
                await self._keep_membership(max(0.0, self.cfg.poll_interval_s - (time.monotonic() - started)))
        finally:
            await self.leave()
            if producer is not None:
                await producer.stop()
            if health is not None:
                await health.stop()
