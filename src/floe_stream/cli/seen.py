"""``floe contracts coverage --seen``: the assets the input traffic talks about in a recent window that no
contract covers — the coverage gap, read from the topics themselves (materializations, OpenLineage, commits) —
and the OpenLineage datasets taken by their name alone although the asset's servers give other datasets
(another environment's table of the same name is merged into it)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.structs import TopicPartition

from floe_stream.contracts.identity import Suggestion, dataset_key, suggest
from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import Ambiguous, ContractRegistry, dataset_claims
from floe_stream.processors.normalize import dataset_ref
from floe_stream.runtime.framework.kafka import make_consumer
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.decode import DecodeError, decode_commit, decode_materialization
from floe_stream.topics.materialization import MaterializationEvent

__all__ = ["Coverage", "SeenAsset", "SeenGap", "identifiers_of", "seen_assets", "uncovered"]


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
    by_name: MonitoredAsset | None = None
    """The asset an OpenLineage dataset went to by its name alone while that asset's servers give other datasets
    (:func:`by_name_only`): covered, but perhaps another environment's table merged into it."""


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


def _platform(namespace: str) -> str:
    return namespace.partition("://")[0].lower() if "://" in namespace else namespace.lower()


def by_name_only(asset: MonitoredAsset, seen: Seen) -> bool:
    """``seen``, a dataset resolved to ``asset``, is of a platform the asset's servers name (``postgres://``)
    but matched none of the datasets they give (nor by a symlink): the processor took another instance's table
    (another environment, or a host spelled differently) by its name alone. False for an asset with no
    server-given dataset (a name is all it has), for a namespace of another kind (``dagster``, a tool naming
    the table its own way) and for floe's own events and commits (they name assets)."""
    if isinstance(seen, str) or not asset.identities:
        return False
    ns, name, symlinks = seen
    if _platform(ns) not in {_platform(n) for n, _ in asset.identities}:
        return False
    claimed = dataset_claims(asset)
    return not any((n, m) in claimed or dataset_key(n, m) in claimed for n, m in ((ns, name), *symlinks))


MAX_LISTED = 1_000
"""Distinct uncovered identifiers listed by name (each bounded by the decoder: at most 2 × 1,024 characters)."""
MAX_COUNTED = 100_000
"""Distinct identifiers beyond :data:`MAX_LISTED` counted (an 8-byte digest each); past it, "at least"."""
MAX_RECORDS = 200_000
"""Input records read per run: a busy window is read from its start up to this many (the report says so)."""


@dataclass(frozen=True)
class SeenGap:
    """What ``floe contracts coverage --seen`` reports: the uncovered identifiers listed, busiest first, and what
    was not listed."""

    assets: list[SeenAsset]
    by_name: list[SeenAsset] = field(default_factory=list)
    """Datasets resolved by their name alone to an asset whose servers give other datasets, busiest first."""
    more: int = 0
    """Distinct uncovered identifiers not listed (beyond :data:`MAX_LISTED`)."""
    more_at_least: bool = False
    """``more`` is a lower bound: more than :data:`MAX_COUNTED` were seen."""
    more_events: int = 0
    """Datasets in input records about the identifiers not listed."""
    records: int = 0
    """Input records read."""
    truncated: bool = False
    """The window held more than ``max_records`` records: only its first ones were read."""


class Coverage:
    """The coverage gap of a stream of input records, in bounded memory (pure): a record's value is decoded and
    dropped at once; per uncovered identifier only its topic, count, last time and what it resolves to are
    kept, for the first :data:`MAX_LISTED` distinct ones; later ones are counted (by digest, up to
    :data:`MAX_COUNTED`) as "N more". A busy or hostile topic (a million distinct names) grows nothing else."""

    def __init__(
        self, registry: ContractRegistry, max_listed: int = MAX_LISTED, max_counted: int = MAX_COUNTED
    ) -> None:
        self.registry = registry
        self.max_listed = max_listed
        self.max_counted = max_counted
        self.records = 0
        self.truncated = False
        self._found: dict[str, tuple[str, int, datetime, tuple[str, ...], Seen, MonitoredAsset | None]] = {}
        self._more: set[int] = set()
        self._more_full = False
        self._more_events = 0

    def add(self, key: TopicKey, topic: str, value: bytes | None, at: datetime) -> None:
        self.records += 1
        for seen in identifiers_of(key, value):
            if isinstance(seen, str):
                hit = self.registry.lookup(seen)
                shown = seen
            else:
                hit = self.registry.resolve_dataset(*seen)
                shown = f"{seen[0]}/{seen[1]}"
            by_name = hit if isinstance(hit, MonitoredAsset) and by_name_only(hit, seen) else None
            if isinstance(hit, MonitoredAsset) and by_name is None:
                continue
            known = self._found.get(shown)
            if known is None and len(self._found) >= self.max_listed:
                self._more_events += 1
                if len(self._more) < self.max_counted:
                    digest = hashlib.blake2b(shown.encode(errors="surrogatepass"), digest_size=8).digest()
                    self._more.add(int.from_bytes(digest, "big"))
                else:
                    self._more_full = True
                continue
            ambiguous = hit.assets if isinstance(hit, Ambiguous) else ()
            _, n, last, _, _, _ = known or (topic, 0, at, (), seen, None)
            self._found[shown] = (topic, n + 1, max(last, at), ambiguous, seen, by_name)

    def gap(self) -> SeenGap:
        """The identifiers that resolve to no asset (or to several), busiest first, each with the contract
        tables it most likely is."""
        assets = self.registry.assets()
        out = []
        for k, (t, n, last, ambiguous, seen, by_name) in self._found.items():
            ns, name = ("", seen) if isinstance(seen, str) else (seen[0], seen[1])
            out.append(
                SeenAsset(
                    identifier=k,
                    topic=t,
                    events=n,
                    last_seen=last,
                    ambiguous=ambiguous,
                    suggestions=() if ambiguous or by_name else tuple(suggest(ns, name, assets)),
                    by_name=by_name,
                )
            )
        out.sort(key=lambda s: (-s.events, s.identifier))
        return SeenGap(
            assets=[s for s in out if s.by_name is None],
            by_name=[s for s in out if s.by_name is not None],
            more=len(self._more),
            more_at_least=self._more_full,
            more_events=self._more_events,
            records=self.records,
            truncated=self.truncated,
        )


def uncovered(
    records: Iterable[tuple[TopicKey, str, bytes | None, datetime]], registry: ContractRegistry
) -> list[SeenAsset]:
    """The seen identifiers that resolve to no asset (or to several), busiest first (pure; see :class:`Coverage`)."""
    cov = Coverage(registry)
    for rec in records:
        cov.add(*rec)
    return cov.gap().assets


async def read_recent(
    settings: Settings, since: datetime, coverage: Coverage, max_records: int = MAX_RECORDS
) -> None:
    """The input records of the window, from every partition (no consumer group, nothing committed), each
    handed to ``coverage`` as it is read: nothing of a record is kept here."""
    keys = {
        topic_name(settings.kafka.topic_prefix, k): k
        for k in (TopicKey.MATERIALIZATIONS, TopicKey.CATALOG_COMMITS)
    }
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in keys for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return
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
        read = 0
        while pending:
            if read >= max_records:
                coverage.truncated = True
                return
            batch = await consumer.getmany(
                *pending, timeout_ms=500, max_records=min(1000, max_records - read)
            )
            if not batch:
                break
            for tp, recs in batch.items():
                for r in recs:
                    coverage.add(
                        keys[tp.topic], tp.topic, r.value, datetime.fromtimestamp(r.timestamp / 1000, UTC)
                    )
                read += len(recs)
                if recs and recs[-1].offset + 1 >= pending.get(tp, 0):
                    pending.pop(tp, None)
            del batch  # (the records' values: the next fetch does not sit beside this one)
    finally:
        await consumer.stop()


async def seen_assets(
    settings: Settings, registry: ContractRegistry, since: datetime, max_records: int = MAX_RECORDS
) -> SeenGap:
    coverage = Coverage(registry)
    await read_recent(settings, since, coverage, max_records)
    return coverage.gap()
