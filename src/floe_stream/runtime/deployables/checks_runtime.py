"""The processor's side jobs for the checks: contract lifecycle and availability pings (thin I/O).

* contracts: the contracts feed (runtime/framework/contracts_feed.py, shared with the sinks that use
  contracts) reads the whole compacted ``contracts`` topic at start-up on top of the contracts directory,
  then tails the topic and re-scans the directory. Changes land in the live registry at once; here the
  changed contracts' probe targets are forgotten and the assets that are gone are handed to the
  processor loop (:meth:`ChecksRuntime.take_gone`), which resolves their open episodes and deletes their
  state under the batch lock.
* pings: on each tick of a partition it owns, the processor calls :meth:`ChecksRuntime.schedule_pings`;
  due assets (availability SLA + probe target, per-asset ``ping_interval_s``) get a background ping
  (bounded concurrency, per-ping timeout). A publisher task sends each outcome as a ``ProbeResult`` to the
  co-partitioned ``probe-results`` topic, which the processor consumes and judges purely. Pings are
  samples: one lost in a crash is simply not counted (the next tick pings again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from floe_stream.contracts.compiled import COMPILED_HEADER, ContractCache, compile_contract
from floe_stream.contracts.models import MonitoredAsset
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.contracts.runtime_registry import Change, LiveRegistry
from floe_stream.probes.base import ProbeTarget
from floe_stream.probes.credentials import ProbeCredentials
from floe_stream.probes.guard import ProbeGuard
from floe_stream.probes.registry import load_probes
from floe_stream.probes.runner import ProbeRunner
from floe_stream.probes.targets import target_for
from floe_stream.processors.engine import Engine
from floe_stream.runtime.framework.contracts_feed import ContractsFeed
from floe_stream.runtime.framework.kafka import (
    BatchProducer,
    OutRecord,
    make_producer,
    start_client,
)
from floe_stream.runtime.framework.supervision import cancel_all, supervise
from floe_stream.settings import Settings
from floe_stream.telemetry.metrics import Instruments
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for

log = logging.getLogger(__name__)


def probe_guard(settings: Settings) -> ProbeGuard:
    """The operator's allow-list of probe targets (validated with the settings)."""
    return ProbeGuard.from_settings(settings.checks.probe_allow, settings.checks.probe_allow_public)


class ChecksRuntime:
    def __init__(
        self,
        settings: Settings,
        registry: ContractRegistry,
        engine: Engine,
        metrics: Instruments,
        cache: ContractCache | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics  # the process's instruments, given by the composition root
        self.contracts = ContractsFeed(
            settings,
            registry,
            metrics,
            load=cache.load if cache is not None else None,
            on_change=self._on_contracts,
        )
        self.engine = engine
        self.t_probe = topic_name(settings.kafka.topic_prefix, TopicKey.PROBE_RESULTS)
        cfg = settings.checks
        credentials = ProbeCredentials.from_settings(
            cfg.probe_user, cfg.probe_password, cfg.probe_credential_hosts, cfg.probe_tls_ca_file
        )
        if cfg.probe_password is not None and not cfg.probe_credential_hosts:
            log.warning(
                "checks.probe_password is set but bound to no host (checks.probe_credential_hosts): "
                "it is never sent; PostgreSQL availability needs no password"
            )
        self.runner = ProbeRunner(
            load_probes(credentials=credentials),
            concurrency=cfg.ping_concurrency,
            per_contract=cfg.ping_concurrency_per_contract,
            guard=probe_guard(settings),
            on_refused=self._probe_refused,
        )
        self.next_ping: dict[str, datetime] = {}
        self._targets: dict[str, tuple[MonitoredAsset, ProbeTarget | None]] = {}
        self._gone: list[MonitoredAsset] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.probe_partitions = 0

    # --- start / stop ----------------------------------------------------------------------------
    async def start(self, producer: BatchProducer, probe_partitions: int) -> None:
        self.probe_partitions = probe_partitions
        await self.contracts.start()
        self._tasks = [supervise(self._publish_probes(producer), "probe-publisher")]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []
        await self.runner.close()
        await self.contracts.stop()

    # --- contracts -------------------------------------------------------------------------------
    @property
    def live(self) -> LiveRegistry:
        return self.contracts.live

    @property
    def contract_changes(self) -> int:
        return self.contracts.contract_changes

    @property
    def contracts_refused(self) -> int:
        """contract documents (records, files) refused so far: invalid, or claiming another contract's names"""
        return self.contracts.contracts_refused

    def _on_contracts(self, change: Change) -> None:
        """A change the contracts feed applied: only the changed contracts' probe targets are worked out
        again; assets that are gone wait for the processor loop (:meth:`take_gone`)."""
        changed = {*change.added, *change.updated, *change.retired}
        if changed:
            for aid in [aid for aid, (a, _) in self._targets.items() if a.contract_id in changed]:
                del self._targets[aid]
        self._gone.extend(change.gone_assets)

    def find_orphans(self, asset_ids: Iterable[str]) -> int:
        """States (just rebuilt from the changelog) of assets no contract monitors any more — e.g. retired
        while no processor owned them — are queued for retirement like a live retire. Returns how many."""
        found = 0
        queued = {a.asset_id for a in self._gone}
        for aid in asset_ids:
            if aid in queued or self.live.registry.get(aid) is not None:
                continue
            asset = self.live.removed_assets.get(aid) or MonitoredAsset(
                asset_id=aid,
                contract_id="(retired)",
                contract_name="(retired)",
                contract_version="",
                table=aid,
            )
            self._gone.append(asset)
            found += 1
        if found:
            log.info(
                "%d asset state(s) without a contract: their open episodes are resolved, state deleted", found
            )
        return found

    @property
    def has_gone(self) -> bool:
        return bool(self._gone)

    def take_gone(self) -> list[MonitoredAsset]:
        out, self._gone = self._gone, []
        return out

    # --- pings -----------------------------------------------------------------------------------
    def _target(self, asset: MonitoredAsset) -> ProbeTarget | None:
        hit = self._targets.get(asset.asset_id)
        if hit is not None and hit[0] is asset:
            return hit[1]
        target: ProbeTarget | None = None
        if asset.availability is not None:
            try:
                target = target_for(asset)
            except ValueError as exc:
                log.error("contract %s, asset %s: %s; not pinged", asset.contract_id, asset.asset_id, exc)
            if target is None and asset.availability is not None and (hit is None or hit[0] is not asset):
                log.warning(
                    "asset %s has an availability SLA but no probe target (servers / floe.probe)",
                    asset.asset_id,
                )
        self._targets[asset.asset_id] = (asset, target)
        return target

    def schedule_pings(self, assets: Iterable[MonitoredAsset], tick_time: datetime) -> int:
        """Start the pings that are due at ``tick_time`` in the background; returns how many started."""
        started = 0
        lag = (datetime.now(UTC) - tick_time).total_seconds()
        for asset in assets:
            if asset.availability is None:
                continue
            if lag > 2 * self.engine.policy_for(asset).ping_interval_s + 30:
                continue  # a backlog tick (catching up after downtime): a ping now would be stamped in the past
            due = self.next_ping.get(asset.asset_id)
            if due is not None and tick_time < due:
                continue
            target = self._target(asset)
            if target is None:
                continue
            policy = self.engine.policy_for(asset)
            self.next_ping[asset.asset_id] = tick_time + timedelta(seconds=policy.ping_interval_s)
            timeout = min(policy.ping_timeout_s, self.settings.checks.ping_timeout_max_s)
            if self.runner.submit(asset.asset_id, target, tick_time, timeout, asset.contract_id):
                started += 1
        return started

    def _probe_refused(self, asset_id: str, reason: str) -> None:
        """Once per asset and reason: its availability is not evaluated (no result, no violation)."""
        log.warning("asset %s: availability not evaluated: %s", asset_id, reason)
        self.metrics.probes_refused.add(1)

    def forget(self, asset_ids: Iterable[str]) -> None:
        for aid in asset_ids:
            self.next_ping.pop(aid, None)

    async def _publish_probes(self, producer: BatchProducer) -> None:
        while True:
            await self.runner.ready.wait()
            results = self.runner.take()
            if not results:
                continue
            records = [
                OutRecord(
                    self.t_probe,
                    partition_for(r.asset, self.probe_partitions),
                    r.asset.encode(),
                    r.model_dump_json().encode(),
                )
                for r in results
            ]
            try:
                await producer.send_all(records)
            except Exception:
                log.exception(
                    "could not publish %d probe results (samples lost; next tick pings again)", len(records)
                )


# --- `floe contracts publish|retire` ---------------------------------------------------------------------
async def publish_contracts(settings: Settings, paths: list[Path]) -> list[tuple[str, str]]:
    """Validate and publish contract files to the contracts topic (key = contract id). Returns (id, file).
    Raises ContractError for the first invalid file, before anything is published."""
    from floe_stream.contracts.loader import contract_files, load_contract

    files = [f for p in paths for f in (contract_files(p) if p.is_dir() else [p])]
    loaded = [(load_contract(f), f) for f in files]
    topic = topic_name(settings.kafka.topic_prefix, TopicKey.CONTRACTS)
    producer = make_producer(settings.kafka, linger_ms=0)
    await start_client(producer, settings.kafka.bootstrap_servers)
    try:
        futures = []
        for c, f in loaded:
            # the YAML stays the value (the PostgreSQL sink and any reader keep reading it); its compiled form
            # rides in a header, so processors load it without parsing (contracts/compiled.py)
            headers = [(COMPILED_HEADER, compile_contract(c))]
            futures.append(
                await producer.send(topic, f.read_bytes(), key=c.contract_id.encode(), headers=headers)
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(c.contract_id, str(f)) for c, f in loaded]


async def retire_contracts(settings: Settings, contract_ids: list[str]) -> None:
    """Publish tombstones: every processor stops checking the contracts' assets and resolves their episodes."""
    topic = topic_name(settings.kafka.topic_prefix, TopicKey.CONTRACTS)
    producer = make_producer(settings.kafka, linger_ms=0)
    await start_client(producer, settings.kafka.bootstrap_servers)
    try:
        await asyncio.gather(*[await producer.send(topic, None, key=cid.encode()) for cid in contract_ids])
    finally:
        await producer.stop()
