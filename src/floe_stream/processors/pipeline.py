"""The one pipeline: input records in → outputs out, for the processor and for ``floe replay`` alike. Pure.

    record → route (decode, resolve, dedupe ticks: processors/router.py) → engine (checks, episodes)
           → enrich (processors/enrich.py) → ``emit(record, outputs)``

``feed(kind, partition, records, emit)`` hands ``emit`` the :class:`~floe_stream.processors.model.Outputs` of each
input record as soon as it is evaluated — check results, violations and resolutions, dead letters (undecodable,
too large, an internal error) and forwards (an event on another asset's partition) — so what one input
produces is known before anything is written anywhere. The processor encodes them for Kafka
(runtime/deployables/outputs.py); replay collects them for PostgreSQL; a test lists them (tests/unit/test_pipeline.py).
State changes (dirty asset states, tombstones of retired assets, per-partition checkpoints) are taken
when the caller commits: :meth:`Pipeline.take_changes`.

An input whose outputs would not fit a record (``emit`` raises :class:`OutputTooLarge`; or the state of an
asset it updated would not fit the changelog) is dead-lettered with the reason and its state changes are undone:
never a process exit. (Outputs are bounded by construction — processors/bounds.py, episodes.py — this is the
net under that.) A tick is never dead-lettered: an output of it that does not fit is dropped and logged.

No Kafka, no clock: "now" is the record's timestamp or the tick's time (a retired contract's resolution
takes the caller's time). The pipeline owns the engine and the per-partition checkpoints (the last offset
fed per topic, the last tick applied); nothing else holds the engine's states.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Literal, Protocol

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import Ambiguous, ContractRegistry
from floe_stream.processors.bounds import OutputTooLarge, admit_tick, record_time_problem
from floe_stream.processors.engine import Engine
from floe_stream.processors.enrich import Shared, ViolationEnricher
from floe_stream.processors.model import (
    AssetState,
    DeadLetter,
    Forward,
    Outputs,
    PartitionCheckpoint,
    Record,
)
from floe_stream.processors.router import (
    InputEvent,
    is_rerouted,
    route_probe,
    route_update,
    tick_is_new,
    unmonitored,
)
from floe_stream.topics.base import WIRE_UTC
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.decode import DecodeError, decode_tick
from floe_stream.topics.materialization import OpenLineageRunEvent
from floe_stream.topics.partitioning import partition_for

log = logging.getLogger(__name__)

UNMEASURED_STATE_KEYS = 32
"""An asset state with at most this many finding keys and check states is small by construction (texts, flips
and breach times are capped: processors/episodes.py) and is not measured after each update."""

Emit = Callable[[Record | None, Outputs], None]
"""Receives the outputs of one input record (``None``: of a retired contract, no input)."""


class Observer(Protocol):
    """What the pipeline lets telemetry watch (runtime: telemetry/hooks.py); both are optional."""

    def traces_records(self) -> bool:
        """Call :meth:`record` before each record of the next feed (tracing is on)."""
        ...

    def record(self, rec: Record) -> None: ...

    def watches_inputs(self) -> bool:
        """Call :meth:`input_event` with each decoded materializations event (custom metrics)."""
        ...

    def input_event(self, ev: InputEvent) -> None: ...


@dataclass(slots=True)
class StateChanges:
    """What the changelog must record since the last commit: the states evaluation changed, the assets
    whose state was removed (tombstones) and the checkpoints of the partitions fed."""

    states: list[AssetState] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    checkpoints: list[PartitionCheckpoint] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.states or self.retired or self.checkpoints)


_timestamp = attrgetter("timestamp")


def _ts(ms: int) -> datetime:
    # in the decoded inputs' own tzinfo: the engine compares "now" with their times a few times per event
    # (bench/processor_cpu.py, topics/base.py WIRE_UTC)
    return datetime.fromtimestamp(ms / 1000, tz=WIRE_UTC)


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        registry: ContractRegistry,
        partitions: int = 1,
        *,
        enricher: ViolationEnricher | None = None,
        observer: Observer | None = None,
        on_tick: Callable[[list[MonitoredAsset], datetime], object] | None = None,
        reroute: bool = True,
        select: Callable[[str], bool] | None = None,
        trigger: Literal["event", "replay"] = "event",
        max_record_bytes: int = 1_000_000,
    ) -> None:
        """``partitions``: the inputs' partition count (co-partitioned; set once known). ``enricher``: violations
        get consumers / impact / root cause (the processor; replay stores them bare). ``on_tick``: the assets of
        a partition a tick was applied to, and its time (the processor's availability pings). ``reroute``:
        an update on another asset's partition is forwarded to its owner (the processor), or applied where it
        is and the forwarded copies skipped (replay, which reads every partition). ``select``: only these asset
        ids are evaluated (``floe replay --contract``)."""
        self.engine = engine
        self.registry = registry
        self.partitions = partitions
        self.enricher = enricher
        self.observer = observer
        self.on_tick = on_tick
        self.reroute = reroute
        self.select = select
        self.trigger = trigger
        self.max_record_bytes = max_record_bytes
        self.checkpoints: dict[int, PartitionCheckpoint] = {}
        self._touched: set[int] = set()  # partitions whose checkpoint moved since take_changes
        self.unmonitored: Counter[str] = Counter()
        """Assets named by inputs that no contract monitors, by topic (``floe_events_unmonitored_total``)."""
        self.ambiguous: Counter[str] = Counter()
        """Identifiers refused because they name several assets, by topic (``floe_events_ambiguous_total``)."""
        self._refused: list[Ambiguous] = []  # the router's refusals of the current record
        self._ambiguous_logged: set[str] = set()  # each ambiguous identifier is logged once per process
        self.applied: Counter[str] = Counter()
        """Inputs evaluated: ``updates`` (asset updates), ``probes``; ticks go to ``on_tick``."""
        self.not_after_ms: int | None = None
        """A record whose own timestamp (epoch ms) is later than this is dead-lettered, not evaluated: its time
        would be "now" for the core. Set by the processor before each batch from its clock + limits.max_future_s
        (the pipeline has no clock); None: no bound."""

    # --- the step --------------------------------------------------------------------------------------
    def feed(self, kind: TopicKey, partition: int, records: Sequence[Record], emit: Emit) -> None:
        """Evaluate ``records`` of one input topic (``kind``) and partition, in order; ``emit`` gets each
        record's outputs. Moves the partition's checkpoint to the last record."""
        for _ in self.feed_steps(kind, partition, records, emit):
            pass

    def feed_steps(
        self, kind: TopicKey, partition: int, records: Sequence[Record], emit: Emit
    ) -> Iterator[None]:
        """:meth:`feed`, pausing (yielding) between the slices of a tick's sweep (:meth:`Engine.tick_steps`):
        the processor lets its event loop run there. Same results as :meth:`feed`; the caller must not feed the
        pipeline anything else until this is exhausted."""
        if not records:
            return
        cp = self.checkpoints.get(partition) or PartitionCheckpoint(partition=partition)
        last_tick = cp.last_tick
        todo = records
        bound = self.not_after_ms
        # rare: a producer's clock (max over attrgetter: no generator step per record, bench/processor_cpu.py)
        if bound is not None and max(map(_timestamp, records)) > bound:
            todo = self._plausible(records, bound, emit)
        if kind == TopicKey.TICKS:
            last_tick = yield from self._ticks(partition, todo, last_tick, emit)
        elif kind == TopicKey.PROBE_RESULTS:
            self._probes(partition, todo, emit)
        else:
            self._updates(kind, partition, todo, emit)
        self.checkpoints[partition] = cp.evolve(
            offsets={**cp.offsets, records[-1].topic: records[-1].offset}, last_tick=last_tick
        )
        self._touched.add(partition)

    def _plausible(self, records: Sequence[Record], bound: int, emit: Emit) -> list[Record]:
        """The records whose timestamp is not beyond ``bound``; the others are dead-lettered."""
        kept: list[Record] = []
        for rec in records:
            if rec.timestamp <= bound:
                kept.append(rec)
                continue
            reason = record_time_problem(rec.timestamp, bound, self.engine.limits)
            log.warning("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)
            emit(rec, Outputs(dead_letters=[DeadLetter(rec, reason)]))
        return kept

    def _traced(self) -> Callable[[Record], None] | None:
        obs = self.observer
        return obs.record if obs is not None and obs.traces_records() else None

    def _ticks(
        self, p: int, records: Sequence[Record], last_tick: datetime | None, emit: Emit
    ) -> Generator[None, None, datetime | None]:
        trace = self._traced()
        for rec in records:
            if trace is not None:
                trace(rec)
            out = Outputs()
            try:
                if not self._too_large(rec, out):
                    tick = decode_tick(rec.value)
                    admit_tick(
                        tick.tick_time, _ts(rec.timestamp), self.engine.limits
                    )  # before it moves anything
                    if not tick_is_new(last_tick, tick.tick_time):
                        continue  # a duplicate tick (second ticker, re-delivery): no effect twice
                    last_tick = tick.tick_time
                    # a snapshot: a contract applied while the sweep pauses changes the registry's lists
                    owned = list(self.registry.assets_in_partition(p, self.partitions))
                    if self.select is not None:
                        owned = [a for a in owned if self.select(a.asset_id)]
                    swept = Outputs()
                    yield from self.engine.tick_steps(owned, tick.tick_time, swept)
                    out = swept
                    self._enrich(out)
                    if self.on_tick is not None:
                        self.on_tick(owned, tick.tick_time)
                    if self.enricher is not None:
                        self.enricher.on_tick(tick.tick_time)  # the lineage graph's clock (edges expire)
            except Exception as exc:
                self._dead(rec, exc, out)
            self._emit_each(rec, out, emit)
        return last_tick

    def _probes(self, p: int, records: Sequence[Record], emit: Emit) -> None:
        trace = self._traced()
        for rec in records:
            if trace is not None:
                trace(rec)
            out = Outputs()
            touched: list[tuple[str, AssetState | None]] = []
            try:
                if not self._too_large(rec, out):
                    probe, asset = route_probe(rec.value, self.registry.get, p, self.partitions)
                    if asset is not None and (self.select is None or self.select(asset.asset_id)):
                        touched = [(asset.asset_id, self.engine.states.get(asset.asset_id))]
                        out = self.engine.apply_probe(asset, probe, _ts(rec.timestamp))
                        self._enrich(out)
                        self.applied["probes"] += 1
            except Exception as exc:
                self._dead(rec, exc, out)
            self._emit_or_refuse(rec, out, touched, emit)

    def _updates(self, kind: TopicKey, p: int, records: Sequence[Record], emit: Emit) -> None:
        # Locals for attributes: once per event (bench/processor_cpu.py, bench/versus.py throughput).
        engine, enricher, registry, refused = self.engine, self.enricher, self.registry, self._refused
        n, reroute, select, trigger = self.partitions, self.reroute, self.select, self.trigger
        trace = self._traced()
        obs = self.observer
        inputs = obs.input_event if obs is not None and obs.watches_inputs() else None
        if kind != TopicKey.MATERIALIZATIONS:
            inputs = None  # custom metrics are fed by materializations
        ts_ms, now = -1, _ts(0)
        updates = 0
        states = engine.states
        max_bytes = self.max_record_bytes
        for rec in records:
            if trace is not None:
                trace(rec)
            out = Outputs()
            touched: list[tuple[str, AssetState | None]] = []  # (asset, its state before): undone if refused
            try:
                value = rec.value
                # the size test inline, the dead letter in a call: once per event (bench/processor_cpu.py)
                if value is not None and len(value) > max_bytes and self._too_large(rec, out):
                    emit(rec, out)
                    continue
                if not reroute and is_rerouted(rec.headers):
                    continue  # replay: the processor's copy of an input that is in the topic already
                if rec.timestamp != ts_ms:  # records of a batch often share their millisecond
                    ts_ms = rec.timestamp
                    now = _ts(ts_ms)
                ev, routed = route_update(kind, rec.value, rec.topic, p, rec.offset, registry, refused)
                n_refused = 0
                if refused:  # rare: identifiers naming several assets are refused, counted and logged
                    n_refused = self._note_refused(rec.topic, refused)  # (no len() per event: processor_cpu)
                # the exact type, once: isinstance on a pydantic model class goes through
                # ABCMeta.__instancecheck__, ~0.35 µs per negative answer (bench/versus.py, throughput)
                lineage = ev.__class__ is OpenLineageRunEvent
                if lineage and enricher is not None:
                    enricher.observe_openlineage(ev)  # type: ignore[arg-type]  # lineage edges
                if inputs is not None:
                    inputs(ev)
                if not routed or lineage:  # assets it names that no contract covers
                    missing = unmonitored(ev, len(routed) + n_refused)
                    if missing:
                        self.unmonitored[rec.topic] += missing
                forward: dict[int, str] | None = None
                for asset, update in routed:
                    aid = asset.asset_id
                    if reroute:
                        q = partition_for(aid, n)
                        if q != p:  # another partition owns it: forward the input once (never a copy)
                            if not is_rerouted(rec.headers):
                                forward = forward or {}
                                forward.setdefault(q, aid)
                            continue
                    if select is not None and not select(aid):
                        continue
                    touched.append((aid, states.get(aid)))
                    if enricher is None:
                        engine.update_into(asset, update, now, out, trigger)
                    else:
                        enricher.note_update(asset, update)
                        nv = len(out.violations)
                        engine.update_into(asset, update, now, out, trigger)
                        if len(out.violations) > nv:
                            self._enrich(out, nv)
                    updates += 1
                if forward:
                    out.forwards.extend(Forward(rec, q, aid) for q, aid in forward.items())
            except Exception as exc:
                self._dead(rec, exc, out)
            # _emit_or_refuse inline, its state test too: once per event (bench/versus.py, throughput)
            try:
                for aid, _ in touched:
                    st = states.get(aid)
                    if (
                        st is not None
                        and len(st.open) + len(st.tracks) + len(st.checks) > UNMEASURED_STATE_KEYS
                    ):
                        self._state_fits([(aid, None)])
                emit(rec, out)
            except OutputTooLarge as exc:
                self._refuse(rec, exc, touched, emit)
        if updates:
            self.applied["updates"] += updates

    def _note_refused(self, topic: str, refused: list[Ambiguous]) -> int:
        """Count and log (once per identifier) the router's refusals of one record; how many there were."""
        n = len(refused)
        self.ambiguous[topic] += n
        for amb in refused:
            if amb.identifier not in self._ambiguous_logged and len(self._ambiguous_logged) < 10_000:
                self._ambiguous_logged.add(amb.identifier)
                log.warning(
                    "refused an input on %s: %s; give the dataset's exact identity to one contract "
                    "(servers, or a floe alias) — see `floe contracts coverage --seen`",
                    topic,
                    amb.describe(),
                )
        refused.clear()
        return n

    def _too_large(self, rec: Record, out: Outputs) -> bool:
        """A record over ``max_record_bytes`` is never decoded, forwarded or copied whole."""
        size = len(rec.value or b"")
        if size <= self.max_record_bytes:
            return False
        reason = f"record too large: {size} bytes > kafka.max_record_bytes={self.max_record_bytes}"
        log.warning("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        out.dead_letters.append(DeadLetter(rec, reason))
        return True

    def _emit_or_refuse(
        self, rec: Record, out: Outputs, touched: list[tuple[str, AssetState | None]], emit: Emit
    ) -> None:
        """``emit(rec, out)``; when an output (or the new state of an asset the record updated) would not fit a
        record, the record's state changes are undone and it is dead-lettered instead."""
        try:
            if touched:
                self._state_fits(touched)
            emit(rec, out)
        except OutputTooLarge as exc:
            self._refuse(rec, exc, touched, emit)

    def _refuse(
        self, rec: Record, exc: OutputTooLarge, touched: list[tuple[str, AssetState | None]], emit: Emit
    ) -> None:
        """The record's state changes undone, the record dead-lettered with ``exc``'s reason."""
        states = self.engine.states
        for aid, before in reversed(touched):
            if before is None:
                states.pop(aid, None)
            else:
                states[aid] = before
        log.warning("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, exc.reason)
        emit(rec, Outputs(dead_letters=[DeadLetter(rec, exc.reason)]))

    def _state_fits(self, touched: list[tuple[str, AssetState | None]]) -> None:
        """Raise OutputTooLarge when the state of an asset the record updated would not fit the changelog. A
        state with few finding keys is small by construction (episodes.py) and not measured."""
        states = self.engine.states
        for aid, _ in touched:
            st = states.get(aid)
            if st is None or len(st.open) + len(st.tracks) + len(st.checks) <= UNMEASURED_STATE_KEYS:
                continue
            # bytes, as the changelog writes it (UTF-8: non-ASCII text is longer than its length), its tracks'
            # remembered (7 KB at 40 keys, ~30 KB at max_tracked_keys: bench/processor_cpu.py drift)
            size = st.json_size()
            if size > self.max_record_bytes:
                raise OutputTooLarge(
                    f"outputs too large: the state of {aid} would be {size} bytes "
                    f"> kafka.max_record_bytes={self.max_record_bytes}"
                )

    def _emit_each(self, rec: Record | None, out: Outputs, emit: Emit) -> None:
        """``emit(rec, out)`` for an input that is never dead-lettered (a tick, a retired contract): an output
        that would not fit a record is dropped and logged; the others are written."""
        try:
            emit(rec, out)
            return
        except OutputTooLarge:
            pass
        emit(rec, Outputs(dead_letters=out.dead_letters, forwards=out.forwards))
        for one in (
            *(Outputs(check_results=[r]) for r in out.check_results),
            *(Outputs(violations=[v]) for v in out.violations),
        ):
            try:
                emit(rec, one)
            except OutputTooLarge as exc:
                log.error("output dropped: %s", exc.reason)

    @staticmethod
    def _dead(rec: Record, exc: Exception, out: Outputs) -> None:
        """Bad input (DecodeError: its reason), or a bug on one record (it must not stop the stream)."""
        if isinstance(exc, DecodeError):
            reason = exc.reason
            log.warning("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        else:
            reason = f"internal error: {type(exc).__name__}: {exc}"
            log.exception(
                "dead-lettered %s[%d]@%d after an internal error", rec.topic, rec.partition, rec.offset
            )
        out.dead_letters.append(DeadLetter(rec, reason))

    def _enrich(self, out: Outputs, start: int = 0) -> None:
        """Violations from ``start`` on get consumers, impact and root-cause context (as they are made)."""
        enricher = self.enricher
        if enricher is not None:
            vs = out.violations
            for i in range(start, len(vs)):
                vs[i] = enricher.enrich(vs[i])

    # --- contracts retired ------------------------------------------------------------------------------
    def retire(self, asset: MonitoredAsset, now: datetime, emit: Emit) -> bool:
        """``asset``'s contract is gone: resolve its open episodes (reason 'contract retired') and forget its
        state (a tombstone at the next commit). False, and nothing done, when a contract monitors it again."""
        if self.registry.get(asset.asset_id) is not None:
            return False
        out = self.engine.retire(asset, now)
        self._enrich(out)  # resolutions pass unchanged; their asset's health is shared
        self._emit_each(None, out, emit)
        return True

    # --- state -------------------------------------------------------------------------------------------
    def measure(self, updates: int) -> None:
        """The next ``updates`` updates go through the measured checks (duration histogram, spans), the rest
        skip the measuring wrapper (bench/processor_cpu.py, fresh)."""
        self.engine.timed_updates = updates

    def take_changes(self) -> StateChanges:
        """The state changes since the last call (states and checkpoints are immutable: later records
        replace them, so what is taken now can be serialized later)."""
        touched, self._touched = self._touched, set()
        return StateChanges(
            self.engine.take_dirty(),
            self.engine.take_retired(),
            [self.checkpoints[p] for p in sorted(touched) if p in self.checkpoints],
        )

    def take_shared(self) -> list[Shared]:
        """Lineage edges learnt and asset health changed since the last call (shared with other instances)."""
        return self.enricher.take_shared() if self.enricher is not None else []

    def owns(self, partition: int) -> bool:
        return partition in self.checkpoints

    def done(self, partition: int, topic: str) -> int | None:
        """The last offset of ``topic`` fed in ``partition`` (restored from the changelog, or since)."""
        cp = self.checkpoints.get(partition)
        return cp.offsets.get(topic) if cp is not None else None

    def restore(
        self,
        partitions: Iterable[int],
        states: Iterable[AssetState],
        checkpoints: Iterable[PartitionCheckpoint],
    ) -> None:
        """Take ``partitions`` over with the states and checkpoints read from the changelog."""
        for p in partitions:
            self.checkpoints[p] = PartitionCheckpoint(partition=p)
        for cp in checkpoints:
            self.checkpoints[cp.partition] = cp
        self.engine.load(states)

    def drop(self, partitions: Iterable[int]) -> int:
        """Give ``partitions`` up: their checkpoints and the states of their assets. Returns the assets."""
        gone = set(partitions)
        for p in gone:
            self.checkpoints.pop(p, None)
            self._touched.discard(p)
        n = self.partitions
        drop = [a for a in self.engine.states if partition_for(a, n) in gone]
        self.engine.drop(drop)
        return len(drop)

    def asset_ids(self) -> list[str]:
        return list(self.engine.states)

    def data_times(self) -> Iterator[tuple[str, datetime | None]]:
        """(asset id, time its data is fresh as of) of every asset owned (the data-age gauge)."""
        for aid, st in list(self.engine.states.items()):
            yield aid, st.last_update_at

    def take_counts(self) -> tuple[Counter[str], Counter[str], dict[str, int]]:
        """(unmonitored assets by topic, ambiguous identifiers by topic, the engine's ``late_data`` /
        ``not_new_data`` counts) since the last call (telemetry reports them)."""
        unmon, self.unmonitored = self.unmonitored, Counter()
        ambiguous, self.ambiguous = self.ambiguous, Counter()
        counters = dict(self.engine.counters)
        self.engine.counters.clear()
        return unmon, ambiguous, counters
