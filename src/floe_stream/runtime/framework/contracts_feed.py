"""The contracts a deployable works with, kept current while it runs (thin I/O over the live registry).

Two sources feed one :class:`~floe_stream.contracts.runtime_registry.LiveRegistry` (pure; which source wins, the
ownership of asset names and the waiting of refused versions are decided there):

* the compacted ``contracts`` topic (``floe contracts publish`` / ``retire``): read in full at start-up (no
  consumer group) before the deployable consumes anything, then tailed by a background task;
* the contracts directory (``FLOE_CONTRACTS_DIR``, loaded by the composition root), re-scanned every
  ``checks.contracts_poll_s`` while ``checks.watch_contracts_dir``.

The processor (its checks), the alerts sink (a contract's ``floe.alerts`` routing) and the OpenLineage sink
(its datasets' namespaces) each run one. A record that cannot be read or applied is skipped with one log line
and ``floe_contracts_refused``; the previous version stays in force. ``on_change`` hears every change (after it
is applied), on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.contracts.compiled import COMPILED_HEADER
from floe_stream.contracts.models import LoadedContract
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.contracts.runtime_registry import Change, LiveRegistry, read_record
from floe_stream.runtime.framework.kafka import existing_partition_counts, make_consumer
from floe_stream.runtime.framework.supervision import cancel_all, supervise
from floe_stream.settings import Settings
from floe_stream.telemetry.metrics import Instruments
from floe_stream.topics.catalog import TopicKey, topic_name

log = logging.getLogger(__name__)

Batch = Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class ContractsFeed:
    def __init__(
        self,
        settings: Settings,
        registry: ContractRegistry,
        metrics: Instruments,
        *,
        load: Callable[[Path], LoadedContract] | None = None,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics  # the process's instruments, given by the composition root
        self.live = LiveRegistry(registry, load=load)
        """``load``: how a contract file is read (the processor: from its compiled form when cached)"""
        self.on_change = on_change
        self.topic = topic_name(settings.kafka.topic_prefix, TopicKey.CONTRACTS)
        self._reader: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.contract_changes = 0
        self.contracts_refused = 0
        """contract documents (records, files) refused so far: invalid, or claiming another contract's names"""

    @property
    def registry(self) -> ContractRegistry:
        return self.live.registry

    async def start(self) -> None:
        """Read the contracts topic to its end (the directory's contracts are in the registry already), then
        follow both sources in the background."""
        self.live.prime_directory(self.settings.contracts_dir)
        await self._open_contracts_topic()
        if self._reader is not None:
            self._tasks.append(supervise(self._tail_contracts(), "contracts-tail"))
        if self.settings.checks.watch_contracts_dir:
            self._tasks.append(supervise(self._watch_directory(), "contracts-dir"))

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader.stop()
            self._reader = None

    def _record(self, change: Change, source: str = "topic") -> None:
        if not change:
            return
        if change.errors:
            self.contracts_refused += len(change.errors)
            self.metrics.contracts_refused.add(len(change.errors), {"source": source})
        for cid in change.added:
            log.info("contract %s registered", cid)
        for cid in change.updated:
            log.info("contract %s updated", cid)
        for cid in change.retired:
            log.info("contract %s retired", cid)
        if change.added or change.updated or change.retired:
            self.contract_changes += 1
        if self.on_change is not None:
            self.on_change(change)

    async def _open_contracts_topic(self) -> None:
        """Read the contracts topic to its end before the deployable consumes anything."""
        # tailed for the whole run: contract changes are rare, a long poll keeps the idle reader cheap
        reader = make_consumer(self.settings.kafka, group_id=None, fetch_max_wait_ms=500)
        await reader.start()
        parts = reader.partitions_for_topic(self.topic)
        if not parts:  # not in the consumer's metadata yet: ask the cluster
            n = (await existing_partition_counts(self.settings.kafka, [self.topic])).get(self.topic, 0)
            parts = set(range(n))
        if not parts:
            log.warning("topic %s not found: contracts come from the directory only", self.topic)
            await reader.stop()
            return
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        end = await reader.end_offsets(tps)
        read: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        while any([await reader.position(tp) < end[tp] for tp in tps]):
            batch = await reader.getmany(timeout_ms=200, max_records=1000)
            for tp, recs in batch.items():
                read.setdefault(tp, []).extend(recs)
        self._apply_in_order(read)
        self._reader = reader

    def _apply_in_order(
        self, batch: Batch, reads: list[LoadedContract | Change | None] | None = None
    ) -> None:
        """Apply records in publication order (timestamps) across partitions, in offset order within one:
        which of two contracts claimed an asset first must not depend on which partition was fetched first,
        so every instance (and every restart) decides alike. ``reads``: what each record carries, read
        beforehand (off the event loop), in that order."""
        records = list(_in_order(batch))
        for i, rec in enumerate(records):
            self._apply(rec.key, _read(rec) if reads is None else reads[i])

    def _apply(self, key: bytes | None, read: LoadedContract | Change | None) -> None:
        if key is None or isinstance(read, Change):
            self._record(read if isinstance(read, Change) else Change(errors=["a record without a key"]))
            return
        try:
            change = self.live.apply_read(key.decode("utf-8", "replace"), read)
        except Exception as exc:  # never let one record stop the tail: it is skipped with one line
            log.error("contracts topic: record %r skipped: unexpected %s: %s", key, type(exc).__name__, exc)
            change = Change(errors=[f"{type(exc).__name__}: {exc}"])
        self._record(change)

    async def _tail_contracts(self) -> None:
        assert self._reader is not None
        while True:
            batch = await self._reader.getmany(timeout_ms=500, max_records=1000)
            if not batch:
                continue
            # read (a compiled form: milliseconds; YAML: up to seconds) off the event loop, so evaluation never
            # waits for a contract being parsed; applied here, in order (bench/state.py, a contract change)
            reads = await asyncio.to_thread(_read_all, batch)
            self._apply_in_order(batch, reads)

    async def _watch_directory(self) -> None:
        directory = self.settings.contracts_dir
        while True:
            await asyncio.sleep(self.settings.checks.contracts_poll_s)
            try:
                self._record(self.live.scan_directory(directory), "directory")
            except Exception:
                log.exception("contracts directory scan failed")


def _in_order(batch: Batch) -> Iterable[ConsumerRecord[bytes, bytes]]:
    return heapq.merge(*batch.values(), key=lambda r: r.timestamp)


def _read_all(batch: Batch) -> list[LoadedContract | Change | None]:
    return [_read(rec) for rec in _in_order(batch)]


def _read(rec: ConsumerRecord[bytes, bytes]) -> LoadedContract | Change | None:
    """What one contracts-topic record carries (runtime_registry.read_record); a Change with the error when
    it cannot be read. Touches no registry: runs off the event loop."""
    key, value = rec.key, rec.value
    if key is None:
        log.error("contracts topic: a record without a key (the contract id) was ignored")
        return Change(errors=["a record without a key"])
    try:
        text = value.decode("utf-8") if value else None
    except UnicodeDecodeError:
        log.error("contracts topic: record %r is not UTF-8 text; ignored", key)
        return Change(errors=["not UTF-8 text"])
    compiled = next((v for k, v in rec.headers or () if k == COMPILED_HEADER), None)
    try:
        return read_record(key.decode("utf-8", "replace"), text, compiled)
    except Exception as exc:  # never let one record stop the tail: it is skipped with one line
        log.error("contracts topic: record %r skipped: unexpected %s: %s", key, type(exc).__name__, exc)
        return Change(errors=[f"{type(exc).__name__}: {exc}"])
