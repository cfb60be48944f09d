"""`floe dev`: embedded broker + database, all deployables in one process, and the scripted demo."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from floe_stream.printable import printable
from floe_stream.runtime.devtools.embedded import BrokerKind, EmbeddedPostgres, make_broker
from floe_stream.settings import ConfigError, Settings, load_settings
from floe_stream.topics.violation import ResolvedData, ViolationData

log = logging.getLogger(__name__)
console = Console()

_SEV_STYLE = {"info": "cyan", "warning": "yellow", "error": "red", "critical": "bold red"}


def _examples_dir() -> Path:
    """The example contracts: ./examples/contracts when run from a clone, else the copy inside the package."""
    for candidate in (
        Path("examples/contracts"),
        Path(__file__).resolve().parents[2] / "examples" / "contracts",  # shipped in the wheel (package-data)
    ):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("examples/contracts not found; pass --contracts DIR")


def dev_settings(
    *,
    bootstrap: str,
    dsn: str,
    demo: bool,
    contracts_dir: Path | None,
    broker_facts: Mapping[str, object] | None = None,
) -> Settings:
    """The settings of `floe dev`: explicit flags (and the embedded broker/database it started) >
    environment/.env > FLOE_CONFIG_FILE > its dev defaults (fast consumer timings, a 5 s tick, the example
    contracts) > the settings' defaults. ``--demo`` is a flag: its scripted timings (1 s tick, 1 s skew) are
    explicit, since the scenario is written against them. ``broker_facts``: KafkaSettings fields that follow
    from the broker it started (explicit too)."""
    defaults: dict[str, object] = {
        "kafka": {
            "fetch_max_wait_ms": 20,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "linger_ms": 0,
        },
        "tick_interval_s": 5.0,
        "clock_skew_s": 60.0,
        # everything runs on this machine (the demo's order service too): probes may reach loopback
        "checks": {"probe_allow": ["127.0.0.0/8", "::1"]},
    }
    with contextlib.suppress(FileNotFoundError):
        defaults["contracts_dir"] = _examples_dir()
    explicit: dict[str, object] = {
        "kafka": {"bootstrap_servers": bootstrap, **(broker_facts or {})},
        "database": {"dsn": dsn},
        "health_port": -1,  # one process runs every deployable: no health server
    }
    if demo:
        explicit.update(tick_interval_s=1.0, clock_skew_s=1.0)
    if contracts_dir is not None:
        explicit["contracts_dir"] = contracts_dir
    settings = load_settings(defaults=defaults, **explicit)
    if not settings.contracts_dir.is_dir():
        raise ConfigError(f"contracts directory {settings.contracts_dir} not found; pass --contracts DIR")
    return settings


class ViolationTable:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, Text, str, Text]] = []

    def add(self, v: ViolationData | ResolvedData) -> None:
        when = datetime.now(UTC).strftime("%H:%M:%S")
        # input text as plain Text (never rich markup), control characters escaped: an asset id cannot style,
        # link or rewrite the terminal
        asset, message = Text(printable(v.asset)), Text(printable(v.message))
        if isinstance(v, ResolvedData):
            self.rows.append((when, "[green]resolved[/]", asset, v.violation_type.value, message))
        else:
            sev = f"[{_SEV_STYLE[v.severity.value]}]{v.severity.value}[/]"
            self.rows.append((when, sev, asset, v.violation_type.value, message))

    def render(self) -> Table:
        t = Table(title="violations (live)", expand=True)
        for c in ("time", "severity", "asset", "check", "message"):
            t.add_column(c, overflow="fold")
        for r in self.rows[-30:]:
            t.add_row(*r)
        return t


async def run_dev(
    *,
    demo: bool,
    contracts_dir: Path | None,
    data_dir: Path,
    duration: float | None,
    broker: BrokerKind = "tansu",
) -> None:
    """Run `floe dev` until its duration, the demo's end, or SIGTERM/SIGINT — whichever comes first, in every mode
    and whatever stdout is (a terminal, a file, a process manager's pipe): a signal stops the deployables, then the
    embedded broker and database. Should this process die without that (SIGKILL, OOM), the watchdog of
    ``runtime/devtools/embedded.py`` stops them."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for (
        sig
    ) in signals:  # from the start: a signal during start-up waits for it, then stops (nothing left running)
        loop.add_signal_handler(sig, stopping.set)
    try:
        await _run_dev(
            demo=demo, contracts_dir=contracts_dir, data_dir=data_dir, duration=duration, broker=broker,
            stopping=stopping,
        )  # fmt: skip
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _until_stopped(work: Awaitable[object], stopping: asyncio.Event, *, cancel: bool = True) -> bool:
    """Await ``work`` unless a stop is requested first (then it is cancelled, unless ``cancel=False``).
    True when stopped by the request."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        task.result()  # its exception, if any
        return False
    if cancel:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return True


async def _run_dev(
    *,
    demo: bool,
    contracts_dir: Path | None,
    data_dir: Path,
    duration: float | None,
    broker: BrokerKind,
    stopping: asyncio.Event,
) -> None:
    from floe_stream.reporting.compliance import build_report
    from floe_stream.reporting.render import render_table
    from floe_stream.runtime.deployables.app import (
        load_registry,
        postgres_sink,
        processor_service,
        run_until_signalled,
    )
    from floe_stream.runtime.deployables.ticker import Ticker
    from floe_stream.runtime.framework.database import connect, migrate
    from floe_stream.runtime.framework.kafka import ensure_topics
    from floe_stream.telemetry.metrics import setup_logging, setup_metrics

    setup_logging("WARNING", "text")
    setup_metrics("floe-dev")
    runtime_dir = data_dir.resolve() / "xdg"  # noqa: ASYNC240 - start-up, before any I/O loop runs
    runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    # BrokerNotInstalled is one line, before anything starts. Apache Kafka's log dir lives in DATA_DIR/kafka and,
    # like Tansu's memory, starts empty each time (its ports, hence its quorum address, are new every run).
    kafka_dir = data_dir / "kafka"
    shutil.rmtree(kafka_dir, ignore_errors=True)
    extra = {"data_dir": kafka_dir} if broker == "kafka" else {}
    kafka = make_broker(broker, log_file=data_dir / f"{broker}.log", **extra)
    pg_dir = data_dir / "postgres"
    if demo:
        shutil.rmtree(pg_dir, ignore_errors=True)  # the demo starts from an empty history
    pg = EmbeddedPostgres(pg_dir)
    name = "Tansu" if broker == "tansu" else "Apache Kafka"
    with console.status(f"starting embedded Kafka ({name}) and PostgreSQL…"):
        try:
            kafka.start()
            pg.start()
        except BaseException:
            kafka.stop()
            raise
    try:
        settings = dev_settings(
            bootstrap=kafka.bootstrap,
            dsn=pg.dsn,
            demo=demo,
            contracts_dir=contracts_dir,
            broker_facts={"enable_idempotence": kafka.supports_idempotence},  # Apache Kafka has it, Tansu not
        )
        if stopping.is_set():
            return
        await ensure_topics(settings.kafka)
        conn = await connect(settings.database)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        registry = load_registry(settings)
        console.print(
            f"[bold]floe dev[/]: Kafka ({name}) at {kafka.bootstrap}, PostgreSQL at {pg.dsn}, "
            f"{len(registry.contracts)} contract(s), {len(registry)} asset(s) from {settings.contracts_dir}"
        )
        console.print(
            f"tick {settings.tick_interval_s:g}s, clock skew {settings.clock_skew_s:g}s "
            "(flags > environment/.env > FLOE_CONFIG_FILE > dev defaults)"
        )
        processor = processor_service(settings, registry)
        sink = postgres_sink(settings)
        ticker = Ticker(settings, ticker_id="dev")
        table = ViolationTable()
        processor.on_violation.append(table.add)
        services = (processor, sink, ticker)
        from floe_stream.runtime.devtools.demo import order_service_health

        health = await order_service_health() if demo else None
        runner = asyncio.create_task(run_until_signalled(*services, signals=False))
        with Live(table.render(), console=console, refresh_per_second=4) as live:

            async def refresh() -> None:
                while True:
                    live.update(table.render())
                    await asyncio.sleep(0.25)

            refresher = asyncio.create_task(refresh())
            try:
                if demo:
                    from floe_stream.runtime.devtools.demo import run_scenario

                    async def scenario() -> None:
                        await run_scenario(settings, lambda: processor.ever_assigned and sink.ever_assigned)
                        await asyncio.sleep(3)  # let the sink write the tail

                    stopped = await _until_stopped(scenario(), stopping)
                elif duration:
                    stopped = await _until_stopped(asyncio.sleep(duration), stopping)
                else:
                    stopped = await _until_stopped(runner, stopping, cancel=False)
            finally:
                refresher.cancel()
                live.update(table.render())
        for s in services:
            s.request_stop()
        if health is not None:
            health.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 30)
        if demo and not stopped:
            conn = await connect(settings.database)
            try:
                report = await build_report(conn, window="24h", by="day")
            finally:
                await conn.close()
            console.print()
            console.print("[bold]floe sla report --window 24h[/] (from the PostgreSQL history):")
            # the report has many columns: never narrower than 150 (a narrow terminal wraps instead of eliding)
            render_table(report, Console(width=max(console.width, 150)))
    finally:
        t0 = time.monotonic()
        pg.stop()
        kafka.stop()
        console.print(f"embedded broker and database stopped ({time.monotonic() - t0:.1f}s)")
