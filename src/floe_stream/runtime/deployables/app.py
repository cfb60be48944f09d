"""Composition root: build each deployable from settings, run it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from typing import TYPE_CHECKING, Protocol

from floe_stream.contracts.registry import ContractRegistry
from floe_stream.settings import ConfigError, Settings

if TYPE_CHECKING:
    import asyncpg

    from floe_stream.contracts.compiled import ContractCache
    from floe_stream.processors.engine import Engine
    from floe_stream.runtime.deployables.processor import ProcessorService
    from floe_stream.runtime.framework.contracts_feed import ContractsFeed
    from floe_stream.runtime.framework.sink_runtime import SinkRunner
    from floe_stream.sinks.alerts.config import AlertsConfig
    from floe_stream.sinks.alerts.sink import AlertSink
    from floe_stream.sinks.openlineage.sink import OpenLineageSink
    from floe_stream.sinks.openlineage.transport import Transport
    from floe_stream.sinks.postgres.sink import PostgresSink
    from floe_stream.telemetry.metrics import Instruments

log = logging.getLogger(__name__)

GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Long-lived start-up objects (contracts, registry, clients) leave the collector's view, and young
    collections run every 50,000 allocations instead of 700. A batch allocates a few objects per record,
    almost none in cycles; with the default the collector re-scanned the whole heap so often that it took
    more CPU than the checks (bench/processor.py: ~2× throughput). Idempotent."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


class Runnable(Protocol):
    name: str

    async def run(self) -> None: ...

    def request_stop(self) -> None: ...


def contracts_cache(settings: Settings) -> ContractCache:
    """The compiled forms of the contracts directory's files (contracts/compiled.py)."""
    from floe_stream.contracts.compiled import ContractCache

    return ContractCache.configured(settings.checks.contracts_cache_dir)


def load_registry(settings: Settings, cache: ContractCache | None = None) -> ContractRegistry:
    """The contracts directory's contracts, each from its compiled form when ``cache`` has it (parsed once)."""
    from floe_stream.contracts.loader import load_directory

    path = settings.contracts_dir
    if not path.is_dir():
        raise ConfigError(f"contracts directory {path} does not exist (FLOE_CONTRACTS_DIR)")
    t0 = time.perf_counter()
    gc.disable()  # ~10 objects per asset, all long-lived: no collection passes while they are made (2 s → 1.3 s)
    try:
        contracts, errors = load_directory(path, cache.load if cache is not None else None)
        registry = ContractRegistry(contracts)
    finally:
        gc.enable()
    # a contract that does not load, or claims what another owns, is one author's problem: it is reported
    # (a log line each, floe_contracts_refused) and the others are monitored — never a start-up failure
    for error in errors:
        log.error("contract not loaded: %s", error)
    for refused in registry.refused:
        log.error("%s", refused)
    if errors or registry.refused:
        from floe_stream.telemetry.metrics import instruments

        instruments().contracts_refused.add(len(errors) + len(registry.refused), {"source": "directory"})
    compiled = f" ({cache.hits} from their compiled form)" if cache is not None else ""
    log.info(
        "loaded %d contracts, %d monitored assets from %s%s in %.2f s",
        len(registry.contracts), len(registry), path, compiled, time.perf_counter() - t0,
    )  # fmt: skip
    return registry


# --- the processor: the Kafka shell, the pipeline and the commit strategy of the processing guarantee -----
def processor_service(
    settings: Settings,
    registry: ContractRegistry,
    *,
    metrics: Instruments | None = None,
    engine: Engine | None = None,
    cache: ContractCache | None = None,
) -> ProcessorService:
    """The processor: the engine runs the checks measured by telemetry; the pipeline evaluates and enriches;
    the encoder writes its outputs as records; at_least_once or exactly_once commits them."""
    from floe_stream.processors.engine import Engine
    from floe_stream.processors.enrich import ViolationEnricher
    from floe_stream.processors.pipeline import Pipeline
    from floe_stream.processors.registry import CHECKS
    from floe_stream.runtime.deployables.changelog import Changelog
    from floe_stream.runtime.deployables.checks_runtime import ChecksRuntime
    from floe_stream.runtime.deployables.commit import AtLeastOnce, CommitStrategy, ExactlyOnce
    from floe_stream.runtime.deployables.lineage_view import LineageView
    from floe_stream.runtime.deployables.outputs import OutputEncoder
    from floe_stream.runtime.deployables.processor import ProcessorService, processor_group
    from floe_stream.runtime.framework.kafka import make_producer
    from floe_stream.runtime.framework.transactions import PartitionTransactions
    from floe_stream.telemetry import tracing
    from floe_stream.telemetry.hooks import ProcessorObservability
    from floe_stream.telemetry.metrics import instruments

    k = settings.kafka
    metrics = metrics or instruments()
    obs = ProcessorObservability(registry, telemetry=settings.telemetry, metrics=metrics)
    engine = engine or Engine(
        obs.instrument(CHECKS),
        untimed=CHECKS,
        clock_skew_s=settings.clock_skew_s,
        policy=settings.checks.policy(),
    )
    enricher = ViolationEnricher(registry, engine.state_of)  # consumers, impact, root cause
    # contract lifecycle + availability pings; ``cache``: the contracts directory's compiled forms
    checks = ChecksRuntime(settings, registry, engine, metrics, cache=cache)
    pipeline = Pipeline(
        engine,
        registry,
        enricher=enricher,
        observer=obs,
        on_tick=checks.schedule_pings,  # in the background, never awaited
        max_record_bytes=k.max_record_bytes,
    )
    obs.watch(pipeline.data_times)  # the data-age gauge
    encoder = OutputEncoder(k.topic_prefix, obs, tracing.verdict_traceparent, k.max_record_bytes)
    changelog = Changelog(k)
    strategy: CommitStrategy = (
        ExactlyOnce(PartitionTransactions(k, processor_group(k)), changelog)
        if k.exactly_once
        # the changelog and the violations each on a producer of its own (runtime/deployables/commit.py)
        else AtLeastOnce(k, changelog, make_producer(k), (encoder.t_viol, make_producer(k)))
    )
    return ProcessorService(
        settings,
        registry,
        pipeline=pipeline,
        encoder=encoder,
        strategy=strategy,
        changelog=changelog,
        checks=checks,
        lineage=LineageView(enricher),
        obs=obs,
        metrics=metrics,
    )


# --- sinks: the only place that knows both the plain sink classes and the runtime that consumes for them -----
def contracts_feed(settings: Settings, registry: ContractRegistry | None) -> ContractsFeed:
    """What keeps a sink's contracts current while it runs: the contracts topic (read to its end when the sink
    starts, then tailed) and the contracts directory (re-scanned), as the processors follow them."""
    from floe_stream.runtime.framework.contracts_feed import ContractsFeed
    from floe_stream.telemetry.metrics import instruments

    return ContractsFeed(settings, registry if registry is not None else ContractRegistry(), instruments())


def postgres_sink(settings: Settings, pool: asyncpg.Pool | None = None) -> SinkRunner[PostgresSink]:
    from floe_stream.runtime.framework.sink_runtime import SinkRunner
    from floe_stream.sinks.postgres.sink import PostgresSink
    from floe_stream.telemetry.metrics import instruments

    return SinkRunner(settings, PostgresSink(settings, pool), metrics=instruments())


def alerts_sink(
    settings: Settings,
    config: AlertsConfig | None = None,
    *,
    registry: ContractRegistry | None = None,
    pool: asyncpg.Pool | None = None,
    instance_id: str | None = None,
) -> SinkRunner[AlertSink]:
    from floe_stream.runtime.framework.sink_runtime import SinkRunner
    from floe_stream.sinks.alerts.metrics import AlertInstruments
    from floe_stream.sinks.alerts.sink import AlertSink
    from floe_stream.telemetry.metrics import instruments

    sink = AlertSink(
        settings,
        config,
        contracts=contracts_feed(settings, registry),
        pool=pool,
        instance_id=instance_id,
        alert_metrics=AlertInstruments(),
    )
    return SinkRunner(settings, sink, metrics=instruments())


def openlineage_sink(
    settings: Settings, registry: ContractRegistry | None = None, transport: Transport | None = None
) -> SinkRunner[OpenLineageSink]:
    from floe_stream.runtime.framework.sink_runtime import SinkRunner
    from floe_stream.sinks.openlineage.sink import OpenLineageSink
    from floe_stream.telemetry.metrics import instruments

    sink = OpenLineageSink(settings, transport=transport, contracts=contracts_feed(settings, registry))
    return SinkRunner(settings, sink, metrics=instruments())


def build(kind: str, settings: Settings) -> Runnable:
    if kind == "processor":
        from floe_stream.telemetry.metrics import instruments

        cache = contracts_cache(settings)  # the contracts directory's compiled forms
        return processor_service(settings, load_registry(settings, cache), metrics=instruments(), cache=cache)
    if kind == "ticker":
        from floe_stream.runtime.deployables.ticker import Ticker

        return Ticker(settings)
    if kind == "sink-postgres":
        return postgres_sink(settings)
    if kind == "sink-alerts":
        # contracts (the directory's, optional, and the contracts topic's): a contract's floe.alerts overrides
        # its routing
        return alerts_sink(
            settings, registry=load_registry(settings) if settings.contracts_dir.is_dir() else None
        )
    if kind == "sink-openlineage":
        # contracts (the directory's, optional, and the contracts topic's): datasets get their server's
        # OpenLineage namespace
        return openlineage_sink(
            settings, load_registry(settings) if settings.contracts_dir.is_dir() else None
        )
    if kind == "source-iceberg":
        from floe_stream.runtime.deployables.iceberg_watcher import IcebergWatcher
        from floe_stream.telemetry.metrics import instruments

        return IcebergWatcher(settings, metrics=instruments())
    raise ConfigError(f"unknown deployable {kind!r}")


async def run_until_signalled(*services: Runnable, signals: bool = True) -> None:
    """Run services concurrently; SIGTERM/SIGINT asks each to finish its batch, commit and leave. ``signals=False``:
    the caller handles the signals (and calls ``request_stop``), e.g. `floe dev`, which must also stop its
    embedded broker and database."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        log.info("stop requested: finishing in-flight work")
        for s in services:
            s.request_stop()

    log.info(
        "starting %s on the %s event loop",
        ", ".join(s.name for s in services),
        "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
    )
    handled = (signal.SIGTERM, signal.SIGINT) if signals else ()
    for sig in handled:
        loop.add_signal_handler(sig, stop)
    tune_gc()  # the services are built: their long-lived objects leave the collector's view
    tasks = [asyncio.create_task(s.run(), name=s.name) for s in services]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise t.exception()  # type: ignore[misc]
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
