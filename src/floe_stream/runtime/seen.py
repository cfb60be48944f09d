"""``floe contracts coverage --seen``: the assets the input traffic talks about in a recent window that no
contract covers — the coverage gap, read from the topics themselves (materializations, OpenLineage, commits)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.structs import TopicPartition

from floe_stream.contracts.identity import Suggestion, suggest
from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import Ambiguous, ContractRegistry
from floe_stream.processors.normalize import dataset_ref
from floe_stream.runtime.kafka import make_consumer
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.decode import DecodeError, decode_commit, decode_materialization
from floe_stream.topics.materialization import MaterializationEvent

__all__ = ["SeenAsset", "identifiers_of", "seen_assets", "uncovered"]


@dataclass(frozen=True)
class SeenAsset:
    identifier: str
    topic: str
    events: int
    last_seen: datetime
    ambiguous: tuple[str, ...] = ()
    """The assets the identifier names when it names several (refused by the processor)."""
    suggestions: tuple[Suggestion, ...] = ()
    """The contract tables it most likely is, with what to add (contracts/identity.suggest)."""


Seen = tuple[str, str, tuple[tuple[str, str], ...]] | str
"""An OpenLineage dataset (namespace, name, symlinks), or the one identifier of floe's own events / commits."""


def identifiers_of(topic_key: TopicKey, value: bytes | None) -> list[Seen]:
    """The datasets / identifiers an input record talks about (pure)."""
    try:
        if topic_key == TopicKey.CATALOG_COMMITS:
            return [decode_commit(value).table]
        ev = decode_materialization(value)
    except Exception:  # bad input is the dead-letter path's business, not coverage's
        return []
    if isinstance(ev, MaterializationEvent):
        return [ev.asset]
    try:
        return [dataset_ref(ds) for ds in [*ev.outputs, *ev.inputs]]
    except DecodeError:  # a facet the processor dead-letters
        return []


def uncovered(
    records: Iterable[tuple[TopicKey, str, bytes | None, datetime]], registry: ContractRegistry
) -> list[SeenAsset]:
    """The seen identifiers that resolve to no asset (or to several), busiest first, each with the contract
    tables it most likely is (pure)."""
    found: dict[str, tuple[str, int, datetime, tuple[str, ...], Seen]] = {}
    for key, topic, value, at in records:
        for seen in identifiers_of(key, value):
            if isinstance(seen, str):
                hit = registry.lookup(seen)
                shown = seen
            else:
                hit = registry.resolve_dataset(*seen)
                shown = f"{seen[0]}/{seen[1]}"
            if isinstance(hit, MonitoredAsset):
                continue
            ambiguous = hit.assets if isinstance(hit, Ambiguous) else ()
            _, n, last, _, _ = found.get(shown, (topic, 0, at, (), seen))
            found[shown] = (topic, n + 1, max(last, at), ambiguous, seen)
    assets = registry.assets()
    out = []
    for k, (t, n, last, ambiguous, seen) in found.items():
        ns, name = ("", seen) if isinstance(seen, str) else (seen[0], seen[1])
        out.append(
            SeenAsset(
                identifier=k,
                topic=t,
                events=n,
                last_seen=last,
                ambiguous=ambiguous,
                suggestions=() if ambiguous else tuple(suggest(ns, name, assets)),
            )
        )
    return sorted(out, key=lambda s: (-s.events, s.identifier))


async def read_recent(
    settings: Settings, since: datetime, max_records: int = 200_000
) -> list[tuple[TopicKey, str, bytes | None, datetime]]:
    """The input records of the window, from every partition (no consumer group, nothing committed)."""
    keys = {
        topic_name(settings.kafka.topic_prefix, k): k
        for k in (TopicKey.MATERIALIZATIONS, TopicKey.CATALOG_COMMITS)
    }
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in keys for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        ends = await consumer.end_offsets(tps)
        pending = {}
        for tp in tps:
            found = starts.get(tp)
            if found is None:
                continue  # nothing in the window
            consumer.seek(tp, found.offset)
            pending[tp] = ends[tp]
        out: list[tuple[TopicKey, str, bytes | None, datetime]] = []
        while pending and len(out) < max_records:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            if not batch:
                break
            for tp, recs in batch.items():
                for r in recs:
                    out.append(
                        (keys[tp.topic], tp.topic, r.value, datetime.fromtimestamp(r.timestamp / 1000, UTC))
                    )
                if recs and recs[-1].offset + 1 >= pending.get(tp, 0):
                    pending.pop(tp, None)
        return out
    finally:
        await consumer.stop()


async def seen_assets(settings: Settings, registry: ContractRegistry, since: datetime) -> list[SeenAsset]:
    return uncovered(await read_recent(settings, since), registry)
