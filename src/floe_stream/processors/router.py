"""One record router: an input record → what the engine applies to which asset. Pure; used by the processor
(runtime/deployables/processor.py) and by replay (replay/runner.py), so that both decode, resolve and deduplicate alike.

* **updates** (materializations, catalog-commits): :func:`route_update` decodes the record and returns the
  decoded event with one ``(asset, update)`` pair per monitored asset it names. An OpenLineage dataset
  resolves by its exact (namespace, name) first, then its symlinks, then its name alone
  (:meth:`~floe_stream.contracts.registry.ContractRegistry.resolve_dataset`); an identifier no contract
  monitors yields nothing, and one that names several assets (the same name from two namespaces or two
  contracts) yields nothing for that dataset and is reported in ``refused``. Whether the pair is applied here
  or forwarded to its owner's partition is the caller's business (:func:`owner`).
* **probe results**: :func:`route_probe` — applied by the partition that owns the probed asset only.
* **ticks**: one tick is applied once per *(partition, tick time)*, to the assets that partition owns (the
  key rule, :func:`~floe_stream.topics.partitioning.partition_for`). A tick whose time is not newer than the
  last one applied in its partition is a duplicate (a second ticker, a re-delivery) and has no effect
  (:func:`tick_is_new`). The processor keeps the last applied tick per partition in its checkpoint; replay
  keeps the same per-partition mark, so a replay ticks every asset exactly when its processor did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import Ambiguous
from floe_stream.processors.model import AssetUpdate
from floe_stream.processors.normalize import from_commit, from_openlineage, update_of_materialization
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.commit import CatalogCommitEvent
from floe_stream.topics.decode import decode_commit, decode_materialization, decode_probe
from floe_stream.topics.materialization import MaterializationEvent, OpenLineageRunEvent
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.probe import ProbeResult

InputEvent = MaterializationEvent | OpenLineageRunEvent | CatalogCommitEvent
Resolve = Callable[[str], MonitoredAsset | None]
Routed = list[tuple[MonitoredAsset, AssetUpdate]]


class Resolver(Protocol):
    """What the router asks the contracts (``ContractRegistry``)."""

    def resolve(self, identifier: str) -> MonitoredAsset | None: ...

    def lookup(self, identifier: str) -> MonitoredAsset | Ambiguous | None: ...

    def resolve_dataset(
        self, namespace: str, name: str, symlinks: Sequence[tuple[str, str]] = ()
    ) -> MonitoredAsset | Ambiguous | None: ...


REROUTED = "floe-rerouted"
"""Header of the processor's forwarded copy of an input that arrived on another asset's partition."""


def route_update(
    kind: TopicKey,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    resolver: Resolver,
    refused: list[Ambiguous] | None = None,
) -> tuple[InputEvent, Routed]:
    """A materializations / catalog-commits record → (decoded event, [(asset, update)]); identifiers that
    name several assets are appended to ``refused`` (when given) and route nothing.

    The update's event id is the event's own id, else ``<topic>:<partition>:<offset>`` (stable per record).
    Raises :class:`~floe_stream.topics.decode.DecodeError` on bad input."""
    if kind == TopicKey.MATERIALIZATIONS:
        ev = decode_materialization(value)
        if isinstance(ev, MaterializationEvent):  # floe's own event names one asset: the common path
            asset = resolver.resolve(ev.asset)
            if asset is None:
                _refuse(resolver.lookup(ev.asset), refused)
                return ev, []  # not monitored by any contract (or by several)
            return ev, [
                (asset, update_of_materialization(ev, ev.event_id or f"{topic}:{partition}:{offset}"))
            ]
        out: Routed = []
        for (namespace, name, symlinks), update in from_openlineage(ev):
            found = resolver.resolve_dataset(namespace, name, symlinks)
            if isinstance(found, MonitoredAsset):
                out.append((found, update))
            else:
                _refuse(found, refused)
        return ev, out
    commit = decode_commit(value)
    routed: Routed = []
    for ident, update in from_commit(commit, f"{topic}:{partition}:{offset}"):
        asset = resolver.resolve(ident)
        if asset is not None:
            routed.append((asset, update))
        else:
            _refuse(resolver.lookup(ident), refused)
    return commit, routed


def _refuse(found: MonitoredAsset | Ambiguous | None, refused: list[Ambiguous] | None) -> None:
    if refused is not None and isinstance(found, Ambiguous):
        refused.append(found)


def unmonitored(ev: InputEvent, routed: int) -> int:
    """How many of the assets an input event names no contract covers, given how many were routed (pure;
    an OpenLineage event is normalized again: the rare path)."""
    if isinstance(ev, OpenLineageRunEvent):
        return max(0, len(from_openlineage(ev)) - routed)
    return max(0, 1 - routed)


def owner(asset: MonitoredAsset, partitions: int) -> int:
    """The partition (of every co-partitioned input) whose processor owns ``asset``'s state."""
    return partition_for(asset.asset_id, partitions)


def is_rerouted(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """The record is the processor's forwarded copy of an input (see :data:`REROUTED`)."""
    return any(k == REROUTED for k, _ in headers or ())


def route_probe(
    value: bytes | None, get: Resolve, partition: int, partitions: int
) -> tuple[ProbeResult, MonitoredAsset | None]:
    """A probe-results record → (result, the asset it judges, or None when no contract monitors it or
    another partition owns it). Raises DecodeError on bad input."""
    probe = decode_probe(value)
    asset = get(probe.asset)
    if asset is not None and owner(asset, partitions) != partition:
        return probe, None
    return probe, asset


def tick_is_new(last_applied: datetime | None, tick_time: datetime) -> bool:
    """Apply this tick in its partition? Only if it is newer than the last one applied there."""
    return last_applied is None or tick_time > last_applied
