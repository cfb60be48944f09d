"""Violation enrichment, a pure step between the engine and the output: declared and lineage consumers,
impact, upstream root-cause context and the asset's recent history (:mod:`floe_stream.processors.context`),
looked up through the contract registry and the state of the assets this instance owns (a read-only lookup).

It also keeps what this instance shares with the others through the compacted ``lineage`` topic — the
lineage edges it learnt and the open episodes of the assets it owns — and applies what they share
(:meth:`ViolationEnricher.apply_shared`); the topic itself is read and written by
:mod:`floe_stream.runtime.deployables.lineage_view`. No I/O here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from pydantic import ValidationError

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.processors.context import (
    ImpactContext,
    OpenIssue,
    dataset_id,
    identifiers,
    open_issues,
    split_dataset_id,
)
from floe_stream.processors.model import AssetState, AssetUpdate
from floe_stream.topics.lineage import AssetHealth, LineageEdge, OpenEpisodeSummary
from floe_stream.topics.materialization import OpenLineageRunEvent
from floe_stream.topics.violation import ResolvedData, ViolationData

log = logging.getLogger(__name__)


class EdgeGone(NamedTuple):
    """An expired lineage edge: a tombstone of its key on the lineage topic."""

    edge_key: str

    def key(self) -> str:
        return self.edge_key


Shared = LineageEdge | AssetHealth | EdgeGone


class ViolationEnricher:
    def __init__(
        self, registry: ContractRegistry, state_of: Callable[[str], AssetState | None] | None = None
    ) -> None:
        self.registry = registry
        self.state_of: Callable[[str], AssetState | None] = state_of or _nothing
        """The state of an asset this instance owns, else None (``Engine.state_of``: read, never changed)."""
        self.impact = ImpactContext()
        self.remote_health: dict[str, list[OpenIssue]] = {}
        """Open issues of assets owned by other instances, as they published them."""
        self.touched: set[str] = set()
        self._pending: list[Shared] = []
        self.lineage_ignored = 0
        """OpenLineage run events that touch no monitored asset (their edges are not kept)."""
        self._published_health: dict[str, list[OpenEpisodeSummary]] = {}

    # --- inputs -------------------------------------------------------------------------------------------
    def observe_openlineage(self, ev: OpenLineageRunEvent) -> None:
        """Learn the run's lineage edges (shared after the batch) — only of a run that reads or writes a
        monitored asset: impact and root cause are about monitored assets, and a run about datasets nobody
        monitors (a START too) must not grow every processor's graph."""
        if not any(self._monitored(dataset_id(ds)) for ds in (*ev.inputs, *ev.outputs)):
            self.lineage_ignored += 1
            return
        at = self.impact.lineage.clock
        for job, ds, direction in self.impact.observe_openlineage(ev):
            self._pending.append(LineageEdge(job=job, dataset=ds, direction=direction, seen_at=at))  # type: ignore[arg-type]

    def on_tick(self, tick_time: datetime) -> None:
        """The lineage graph's clock: edges not seen for ``LINEAGE_TTL`` expire (and leave the shared topic)."""
        for job, direction, ds in self.impact.lineage.advance(tick_time):
            self._pending.append(EdgeGone(f"edge:{job}|{direction}|{ds}"))

    def _monitored(self, ds_id: str) -> bool:
        ns, name = split_dataset_id(ds_id)
        if ns and isinstance(self.registry.resolve_dataset(ns, name), MonitoredAsset):
            return True
        return any(isinstance(self.registry.resolve(i), MonitoredAsset) for i in identifiers(ds_id))

    def note_update(self, asset: MonitoredAsset, update: AssetUpdate) -> None:
        if update.run_failed is not None:  # not a materialization: the asset's "last run failed" context
            self.impact.note_run_failed(asset.asset_id, update.updated_at, update.run_failed)
            return
        self.impact.note_update(
            asset.asset_id, update.updated_at, update.event_id, update.row_count, update.run_id, update.job
        )

    # --- the step -------------------------------------------------------------------------------------------
    def upstream_health(self, dataset_id: str) -> tuple[str, Sequence[OpenIssue]] | None:
        ns, name = split_dataset_id(dataset_id)
        found = self.registry.resolve_dataset(ns, name) if ns else None
        for asset in (found, *(self.registry.resolve(i) for i in identifiers(dataset_id))):
            if not isinstance(asset, MonitoredAsset):
                continue
            st = self.state_of(asset.asset_id)
            if st is not None:  # owned here: the live state
                return asset.asset_id, open_issues(st.open)
            return asset.asset_id, self.remote_health.get(asset.asset_id, [])  # owned elsewhere: as published
        return None

    def enrich(self, v: ViolationData | ResolvedData) -> ViolationData | ResolvedData:
        """``v`` with consumers and impact / root-cause context (a resolve passes unchanged)."""
        self.touched.add(v.asset)  # its open episodes changed: publish its health after the batch
        # a resolution (half of a drift event's outputs) told by its exact class first: a negative isinstance
        # on a pydantic model class goes through ABCMeta.__instancecheck__ (bench/processor_cpu.py, drift)
        if v.__class__ is ResolvedData or not isinstance(v, ViolationData):
            return v
        asset = self.registry.get(v.asset)
        idents = [v.asset]
        declared: Sequence[str] = ()
        if asset is not None:
            idents.extend(asset.aliases)
            if asset.identities:  # lineage ids are namespace/name
                idents.extend([f"{ns}/{name}" for ns, name in asset.identities])
            declared = asset.consumers
        return self.impact.enrich_violation(
            v,
            declared_consumers=declared,
            asset_identifiers=idents,
            upstream_health=self.upstream_health,
            now=v.detected_at,
        )

    # --- shared with the other instances ----------------------------------------------------------------
    def take_shared(self) -> list[Shared]:
        """End of a batch: the edges learnt and the health of every touched asset that changed."""
        for aid in self.touched:
            st = self.state_of(aid)
            issues = open_issues(st.open) if st is not None else []
            summary = [
                OpenEpisodeSummary(check_type=i.check_type, severity=i.severity, since=i.since)
                for i in issues
            ]
            if self._published_health.get(aid) == summary:
                continue  # unchanged: nothing to tell the other instances
            self._published_health[aid] = summary
            self._pending.append(AssetHealth(asset=aid, open=summary))
        self.touched.clear()
        pending, self._pending = self._pending, []
        return pending

    def apply_shared(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the lineage topic (another instance's edge or health; a tombstone: an expired edge)."""
        if key and not value and key.startswith(b"edge:"):
            job, _, rest = key[5:].decode("utf-8", "replace").partition("|")
            direction, _, ds = rest.partition("|")
            self.impact.lineage.remove_edge(job, direction, ds)
            return
        if not key or not value:
            return
        try:
            if key.startswith(b"edge:"):
                e = LineageEdge.model_validate_json(value)
                self.impact.lineage.add_edge(e.job, e.dataset, e.direction, e.seen_at)
            elif key.startswith(b"health:"):
                h = AssetHealth.model_validate_json(value)
                self.remote_health[h.asset] = [OpenIssue(o.check_type, o.severity, o.since) for o in h.open]
        except ValidationError as exc:
            log.debug("lineage view: skipping bad record %r: %s", key, exc)


def _nothing(asset_id: str) -> None:
    return None
