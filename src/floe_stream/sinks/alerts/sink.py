"""The alerts sink (``floe run sink alerts``): violation CloudEvents → routed, deduplicated, grouped
notifications on every configured channel. Its own consumer group ``<group_prefix>-sink-alerts``.

Per fetched batch: wait up to ``group_wait_s`` for more records (so an asset's violations go out as one
notification) → decode (undecodable → ``dlq`` topic) → load the state, decide (pure, :mod:`.decisions`), save
(one PostgreSQL transaction under per-contract locks) → deliver (ledger, concurrent channels, retries,
``alerts-dlq``) → (the runtime) commit. Offsets are committed only
after the ledger records every outcome. A plain :class:`~floe_stream.runtime.framework.sink_runtime.Sink`.

A contract's ``floe.alerts`` replaces the routing table for its assets. The contracts are the processors' (the
contracts topic and directory, followed while running by a
:class:`~floe_stream.runtime.framework.contracts_feed.ContractsFeed`): a change routes the next batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from pydantic import ValidationError

from floe_stream.contracts.registry import ContractRegistry
from floe_stream.contracts.runtime_registry import Change
from floe_stream.runtime.framework.contracts_feed import ContractsFeed
from floe_stream.runtime.framework.database import create_pool, ping
from floe_stream.runtime.framework.sink_runtime import Input, Sink, SinkBatch, SinkContext
from floe_stream.runtime.framework.supervision import cancel_all, supervise
from floe_stream.settings import ConfigError, Settings
from floe_stream.sinks.alerts.channels import Channel, ChannelContext, channel_types
from floe_stream.sinks.alerts.config import AlertsConfig, resolve_config
from floe_stream.sinks.alerts.decisions import ContractAlerting, Decisions, Rules, decide
from floe_stream.sinks.alerts.delivery import Dispatcher
from floe_stream.sinks.alerts.metrics import AlertInstruments
from floe_stream.sinks.alerts.model import Alert
from floe_stream.sinks.alerts.store import AlertStore
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.decode import DecodeError
from floe_stream.topics.violation import decode_violation
from floe_stream.validation import describe

log = logging.getLogger(__name__)

NO_ROUTES = (
    "no alert routes configured: violations are consumed but nothing will be delivered "
    "(set alerts.channels and alerts.routes in FLOE_CONFIG_FILE, or FLOE_ALERTS__CONFIG_FILE)"
)


def build_channels(config: AlertsConfig, http: httpx.AsyncClient, public_url: str) -> dict[str, Channel]:
    """Instantiate every configured channel; any problem is one :class:`ConfigError`."""
    types = channel_types()
    ctx = ChannelContext(http=http, public_url=public_url)
    out: dict[str, Channel] = {}
    problems: list[str] = []
    for cfg in config.channels:
        cls = types.get(cfg.type)
        if cls is None:
            problems.append(f"channel {cfg.name!r}: unknown type {cfg.type!r} (known: {sorted(types)})")
            continue
        try:
            options = cls.Options.model_validate(cfg.options)
        except Exception as exc:
            detail = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            problems.append(f"channel {cfg.name!r} ({cfg.type}) options: {detail}")
            continue
        ch = cls(cfg, options, ctx)
        problem = ch.check()
        if problem:
            problems.append(problem)
        out[cfg.name] = ch
    if problems:
        raise ConfigError("invalid alert channels: " + "; ".join(problems))
    return out


def contract_overrides(
    registry: ContractRegistry | None, channels: set[str], report: Collection[str] | None = None
) -> dict[str, ContractAlerting]:
    """asset id → the contract's ``floe.alerts`` channel override. An override naming a channel that is not
    configured is dropped with an error line (that contract's alerts follow the routing table): one contract's
    typo never stops the sink for everyone. ``report``: the contract ids whose dropped overrides are logged
    (a contract change logs its own, not every other contract's again); None: all."""
    out: dict[str, ContractAlerting] = {}
    if registry is None:
        return out
    for asset in registry.assets():
        ov = asset.floe.alerts  # typed and validated when the contract loaded
        if ov is None:
            continue
        unknown = [c for c in ov.channels if c not in channels]
        if unknown:
            if report is not None and asset.contract_id not in report:
                continue
            log.error(
                "contract %s (%s): floe.alerts names unknown channel(s) %s (configured: %s); override "
                "ignored, its alerts follow the routing table",
                asset.contract_id, asset.asset_id, unknown, sorted(channels),
            )  # fmt: skip
            continue
        out[asset.asset_id] = ov
    return out


def _alert(headers: dict[str, bytes], key: bytes | None, value: bytes | None) -> Alert:
    if not value:
        raise DecodeError("empty message")
    return Alert.from_event(decode_violation(headers, key, value))


class AlertSink(Sink):
    name = "sink-alerts"
    outputs: tuple[TopicKey, ...] = (TopicKey.ALERTS_DLQ,)  # undeliverable notifications

    def __init__(
        self,
        settings: Settings,
        config: AlertsConfig | None = None,
        *,
        registry: ContractRegistry | None = None,
        contracts: ContractsFeed | None = None,
        pool: asyncpg.Pool | None = None,
        instance_id: str | None = None,
        alert_metrics: AlertInstruments | None = None,
    ) -> None:
        self.settings = settings
        self.alert_metrics = alert_metrics or AlertInstruments()  # given by the composition root
        self.config = config if config is not None else resolve_config(settings.alerts, settings.config_file)
        self.http = httpx.AsyncClient(follow_redirects=False)
        self.channels = build_channels(self.config, self.http, settings.alerts.public_url)
        self.contracts = contracts
        """keeps the contracts current while running (the contracts topic, the directory); the composition
        root gives it. Without one, ``registry`` is all the sink knows."""
        if contracts is not None:
            registry = contracts.registry
            contracts.on_change = self._contracts_changed
        self.registry = registry if registry is not None else ContractRegistry()
        self.overrides = contract_overrides(self.registry, set(self.channels))
        self.rules = Rules(
            policy=self.config.policy,
            routes=tuple(self.config.routes),
            overrides=self.overrides,
            resolve_capable=frozenset(
                n for n, c in self.channels.items() if c.supports_resolve and c.config.send_resolved
            ),
            grouping_channels=frozenset(n for n, c in self.channels.items() if c.groups),
        )
        self.pool = pool
        self._own_pool = pool is None
        self.instance_id = instance_id
        self.ctx: SinkContext | None = None
        self.store: AlertStore | None = None
        self.dispatcher: Dispatcher | None = None
        self._resend_task: asyncio.Task[None] | None = None
        self.alerts_seen = 0
        self.delivered = 0
        self.dead_lettered = 0

    @property
    def collect_s(self) -> float:
        """The group wait: the runtime collects this long after a fetch, so an asset's violations go out as one."""
        return float(self.policy.group_wait_s)

    def inputs(self) -> list[Input]:
        return [Input("violations", TopicKey.VIOLATIONS, _alert)]

    @property
    def delivering(self) -> bool:
        """Whether any violation can reach a channel (a route, or a contract's floe.alerts override)."""
        return bool(self.config.routes) or any(ov.channels for ov in self.overrides.values())

    def stall_allowance_s(self) -> float:
        # one turn collects for the group wait, then delivers within the slowest channel's retry budget
        budgets = [ch.config.budget_s() for ch in self.channels.values()]
        return float(self.policy.group_wait_s) + max(budgets, default=0.0)

    def health_details(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "routes": len(self.config.routes),
            "channels": sorted(self.channels),
            "delivering": self.delivering,
        }
        if not self.delivering:
            info["reason"] = NO_ROUTES
        return {"alerts": info}

    @property
    def policy(self) -> Any:
        return self.config.policy

    # --- lifecycle ----------------------------------------------------------------------------------------
    async def start(self, ctx: SinkContext) -> None:
        self.ctx = ctx
        if self.pool is None:
            self.pool = await create_pool(self.settings.database)
        self.store = AlertStore(self.pool, self.instance_id)
        self.dispatcher = Dispatcher(self.channels, self.store, self.policy, ctx, metrics=self.alert_metrics)
        if any(ch.resend_while_firing for ch in self.channels.values()):
            self._resend_task = supervise(self._resend_loop(), "alerts-resend")
        if self.contracts is not None:  # the contracts topic read to its end before the first decision
            await self.contracts.start()
        if not self.delivering:  # said once the contracts are known: one of them may route itself
            log.warning("sink-alerts: %s", NO_ROUTES)

    def _contracts_changed(self, change: Change) -> None:
        """A contract registered, changed or retired (topic or directory): its ``floe.alerts`` routing applies
        from the next batch on."""
        changed = {*change.added, *change.updated, *change.retired}
        if not changed:
            return
        self.overrides = contract_overrides(self.registry, set(self.channels), report=changed)
        self.rules = dataclasses.replace(self.rules, overrides=self.overrides)

    async def close(self) -> None:
        if self.contracts is not None:
            await self.contracts.stop()
        if self._resend_task is not None:
            await cancel_all([self._resend_task])
        await self.http.aclose()
        for ch in self.channels.values():
            await ch.aclose()
        if self.pool is not None and self._own_pool:
            await self.pool.close()

    async def readiness(self) -> dict[str, bool]:
        return {"database": self.pool is not None and await ping(self.pool)}

    # --- the batch: load → decide → write, then deliver ------------------------------------------------------
    async def write(self, batch: SinkBatch) -> None:
        assert self.dispatcher is not None
        alerts: list[Alert] = [rec.value for rec in batch.records]
        self.dispatcher.sources = {rec.value.violation_id: rec for rec in batch.records}
        self.alerts_seen += len(alerts)
        alerts = list({a.violation_id: a for a in alerts}.values())  # a replaying processor re-emits ids
        if not alerts:
            return
        assert self.ctx is not None
        decided = await self.ctx.retry(lambda: self._decide(alerts), "database")
        for a, d in decided.suppressed:
            self.alert_metrics.suppressed.add(1, {"reason": d.reason.split(":", 1)[0]})
            log.info(
                "suppressed %s alert %s (%s %s %s): %s",
                a.status,
                a.violation_id[:12],
                a.contract_id,
                a.asset,
                a.violation_type.value,
                d.reason,
            )
        outcomes = await self.dispatcher.deliver_all(decided.notifications)
        self.delivered += sum(o.result == "delivered" for o in outcomes)
        self.dead_lettered += sum(o.result == "dead_lettered" for o in outcomes)
        self.ctx.metrics.sink_writes.add(len(alerts), {"sink": "alerts"})  # (ctx checked above)

    async def _decide(self, alerts: list[Alert]) -> Decisions:
        """One transaction under the batch's contract locks: the state, the pure decisions, their effects."""
        assert self.store is not None
        now = datetime.now(UTC)
        async with self.store.locked(a.contract_id for a in alerts) as tx:
            state = await tx.load(alerts, now=now, rate_window_s=self.policy.rate_limit.per_s)
            decided = decide(alerts, state, now=now, rules=self.rules)
            await tx.save(decided, now=now)
        return decided

    # --- re-sends while firing (Alertmanager) -------------------------------------------------------------
    async def _resend_loop(self) -> None:
        interval = self.policy.resend_interval_s
        names = [n for n, c in self.channels.items() if c.resend_while_firing]
        assert self.ctx is not None
        while not self.ctx.stopping.is_set():
            await asyncio.sleep(min(interval / 2, 10.0))
            try:
                assert self.store is not None
                due = await self.store.due_for_resend(names, interval)
                per_channel: dict[str, list[Alert]] = {}
                for alert, chans in due:
                    for c in chans:
                        per_channel.setdefault(c, []).append(alert)
                for c, items in per_channel.items():
                    try:
                        await asyncio.wait_for(
                            self.channels[c].resend(items), self.channels[c].config.timeout_s + 1
                        )
                    except Exception as exc:
                        self.alert_metrics.attempt_failures.add(1, {"channel": c})
                        log.warning("re-send of %d firing alert(s) to %s failed: %s", len(items), c, exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("re-send loop: %s", exc)
