"""`floe` — the command line. Thin: every command calls the library."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from floe_stream.cli.errors import FloeGroup
from floe_stream.cli.params import DURATION, DURATION_OR_SECONDS
from floe_stream.printable import printable, printable_data
from floe_stream.settings import ConfigError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(coro: Any, settings: Settings | None = None) -> Any:
    """``coro`` to its end; ``settings``: on the event loop they choose (a deployable), else asyncio's."""
    from floe_stream.runtime.devtools.embedded import BrokerNotInstalled
    from floe_stream.runtime.framework import event_loop

    try:
        if settings is not None:
            return event_loop.run(coro, settings.event_loop)
        return asyncio.run(coro)
    except (ConfigError, BrokerNotInstalled) as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FloeGroup)
@click.version_option(package_name="floe-stream")
def main() -> None:
    """floe-stream: real-time data-contract monitor."""


# --- run --------------------------------------------------------------------------------------------
@main.group()
def run() -> None:
    """Run one deployable (one consumer group) until SIGTERM."""


def _run_deployable(kind: str) -> None:
    from floe_stream.runtime.deployables.app import build, run_until_signalled
    from floe_stream.telemetry.metrics import setup_logging, setup_telemetry
    from floe_stream.telemetry.tracing import shutdown_tracing

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    try:
        setup_telemetry(f"floe-{kind}", settings.telemetry)  # metrics (+OTLP), traces, custom metrics
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> None:
        try:
            await run_until_signalled(build(kind, settings))
        finally:
            shutdown_tracing()  # flush spans still buffered

    _run(go(), settings)


@run.command("processor")
def run_processor() -> None:
    """Evaluate checks: materializations, commits and ticks in; results and violations out."""
    _run_deployable("processor")


@run.command("ticker")
def run_ticker() -> None:
    """Publish ticks (safe with several replicas)."""
    _run_deployable("ticker")


@run.group("sink")
def run_sink() -> None:
    """Run a sink consumer group."""


@run_sink.command("postgres")
def run_sink_postgres() -> None:
    """Write check results and violations to PostgreSQL."""
    _run_deployable("sink-postgres")


@run_sink.command("alerts")
def run_sink_alerts() -> None:
    """Deliver violation alerts to the configured channels (alerts: in FLOE_CONFIG_FILE, or FLOE_ALERTS__CONFIG_FILE)."""
    _run_deployable("sink-alerts")


@run_sink.command("openlineage")
def run_sink_openlineage() -> None:
    """Emit OpenLineage FAIL/COMPLETE RunEvents per violation episode (openlineage-python's transports:
    openlineage.yml / OPENLINEAGE_*, or FLOE_OPENLINEAGE__TRANSPORT=http|kafka|file|console)."""
    _run_deployable("sink-openlineage")


@run.group("source")
def run_source() -> None:
    """Run an event source that watches a platform and publishes floe input events."""


@run_source.command("iceberg")
def run_source_iceberg() -> None:
    """Watch an Iceberg catalog: one catalog-commit event per new snapshot (FLOE_SOURCES__ICEBERG__*)."""
    _run_deployable("source-iceberg")


# --- publish -----------------------------------------------------------------------------------------
@main.group()
def publish() -> None:
    """Publish one input event (shell scripts, CI jobs, orchestrator hooks). Prints the event sent."""


@publish.command("materialization")
@click.option("--asset", required=True, help="asset id (contract table id or alias)")
@click.option("--materialized-at", default="now", show_default=True, help="ISO 8601 with zone, or 'now'")
@click.option("--data-timestamp", default=None, help="newest value of the SLA timestamp column (ISO 8601)")
@click.option("--row-count", type=int, default=None)
@click.option("--run-id", default=None)
@click.option("--job", default=None)
@click.option("--event-id", default=None, help="default: ASSET:RUN_ID, or a random UUID")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE (repeatable)")
@click.option(
    "--quality-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON list of quality results (the QualityResult schema)",
)
@click.option(
    "--dbt-run-results",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="dbt target/run_results.json: the tests of this model become quality results",
)
@click.option("--dbt-manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--dbt-model", default=None, help="model key in the dbt results (default: --asset)")
def publish_materialization(
    asset: str,
    materialized_at: str,
    data_timestamp: str | None,
    row_count: int | None,
    run_id: str | None,
    job: str | None,
    event_id: str | None,
    labels: tuple[str, ...],
    quality_file: Path | None,
    dbt_run_results: Path | None,
    dbt_manifest: Path | None,
    dbt_model: str | None,
) -> None:
    """Tell floe-stream that ASSET was materialized."""
    from floe_stream.client import FloeClient, PublishError

    quality: list[Any] | None = None
    if quality_file is not None:
        quality = list(json.loads(quality_file.read_text()))
    if dbt_run_results is not None:
        from floe_stream.sources.dbt import quality_by_model

        manifest = json.loads(dbt_manifest.read_text()) if dbt_manifest else None
        by_model = quality_by_model(json.loads(dbt_run_results.read_text()), manifest)
        key = (dbt_model or asset).lower()
        found = next((q for m, q in by_model.items() if m.lower() == key), None)
        if found is None:
            raise click.ClickException(
                f"no dbt test results for model {key!r} (have: {', '.join(sorted(by_model)) or 'none'})"
            )
        quality = [*(quality or []), *found]
    label_map = {}
    for item in labels:
        k, sep, v = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--label")
        label_map[k] = v
    client = FloeClient(kafka=_settings().kafka)
    try:
        ev = client.publish_materialization(
            asset,
            materialized_at=materialized_at,
            data_timestamp=data_timestamp,
            row_count=row_count,
            run_id=run_id,
            job=job,
            event_id=event_id,
            labels=label_map,
            quality=quality,
            producer="floe-cli",
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except PublishError as exc:
        raise click.ClickException(f"{exc} (FLOE_KAFKA__BOOTSTRAP_SERVERS)") from None
    finally:
        client.close()
    click.echo(ev.model_dump_json(exclude_none=True))


@publish.command("commit")
@click.option(
    "--file", "file", type=click.File("r"), required=True, help="CatalogCommitEvent JSON ('-' = stdin)"
)
def publish_commit(file: Any) -> None:
    """Publish an Iceberg catalog commit event (topics/catalog-commits.CatalogCommitEvent.schema.json)."""
    from floe_stream.client import FloeClient, PublishError

    client = FloeClient(kafka=_settings().kafka)
    try:
        ev = client.publish_commit(json.loads(file.read()))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except PublishError as exc:
        raise click.ClickException(f"{exc} (FLOE_KAFKA__BOOTSTRAP_SERVERS)") from None
    finally:
        client.close()
    click.echo(ev.model_dump_json(by_alias=True, exclude_none=True))


# --- db / topics -------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database administration."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations."""
    from floe_stream.runtime.framework.database import DatabaseUnavailable, connect, migrate

    settings = _settings()

    async def go() -> list[str]:
        conn = await connect(settings.database)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    try:
        applied = _run(go())
    except DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
def topics_create() -> None:
    """Create floe's topics (idempotent)."""
    from floe_stream.runtime.framework.kafka import ensure_topics

    settings = _settings()
    created = _run(ensure_topics(settings.kafka))
    click.echo(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else ""))


F = TypeVar("F", bound=Callable[..., Any])


def _output_option(default: Path, what: str) -> Callable[[F], F]:
    """``--output/-o`` (``--out``: the old name) of the topics commands."""
    return click.option(
        "--output",
        "-o",
        "--out",
        "out",
        type=click.Path(path_type=Path),
        default=default,
        show_default=True,
        help=f"{what} (--out: the old name)",
    )


@topics.command("schemas")
@_output_option(Path("topics"), "folder")
def topics_schemas(out: Path) -> None:
    """Write the JSON Schema of every topic's payload (for publishers and subscribers) and asyncapi.yaml."""
    from floe_stream.topics.asyncapi import write_asyncapi
    from floe_stream.topics.schemas import write_schemas

    for path in write_schemas(out):
        click.echo(str(path))
    click.echo(str(write_asyncapi(out / "asyncapi.yaml")))


@topics.command("asyncapi")
@_output_option(Path("topics/asyncapi.yaml"), "file")
def topics_asyncapi(out: Path) -> None:
    """Write the AsyncAPI 3.0 document of every topic (channels, messages, keys, headers)."""
    from floe_stream.topics.asyncapi import write_asyncapi

    click.echo(str(write_asyncapi(out)))


# --- contracts -----------------------------------------------------------------------------------------
@main.group()
def contracts() -> None:
    """ODCS contracts."""


@contracts.command("publish")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def contracts_publish(paths: tuple[Path, ...]) -> None:
    """Validate contract files (or directories) and publish them to the contracts topic: running
    processors register or update them at once, no restart."""
    from floe_stream.contracts.models import ContractError
    from floe_stream.runtime.deployables.checks_runtime import publish_contracts

    try:
        done = _run(publish_contracts(_settings(), list(paths)))
    except ContractError as exc:
        raise click.ClickException(f"not published: {exc}") from None
    for cid, file in done:
        click.echo(f"published {printable(cid)} ({printable(file)})")


@contracts.command("compile")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def contracts_compile(directory: Path | None) -> None:
    """Parse the contracts directory (default: FLOE_CONTRACTS_DIR) once into its compiled-forms cache
    (checks.contracts_cache_dir, default ~/.cache/floe-stream/compiled): a processor started afterwards loads them
    without parsing YAML. A processor fills the cache itself when it can write it; run this where it cannot
    (an image build, an init container)."""
    from floe_stream.contracts.compiled import ContractCache
    from floe_stream.contracts.loader import load_directory

    settings = _settings()
    folder = directory or settings.contracts_dir
    cache = ContractCache.configured(settings.checks.contracts_cache_dir)
    contracts, errors = load_directory(folder, cache.load)
    for e in errors:
        click.echo(f"not compiled: {printable(str(e))}", err=True)
    click.echo(
        f"{len(contracts)} contracts ({sum(len(c.assets) for c in contracts)} assets) in {printable(str(cache.folder))}: "
        f"{cache.misses} compiled, {cache.hits} already compiled"
    )
    if errors:
        raise SystemExit(1)


@contracts.command("retire")
@click.argument("contract_ids", nargs=-1, required=True)
def contracts_retire(contract_ids: tuple[str, ...]) -> None:
    """Retire contracts (tombstones on the contracts topic): their checks stop, open episodes resolve."""
    from floe_stream.runtime.deployables.checks_runtime import retire_contracts

    _run(retire_contracts(_settings(), list(contract_ids)))
    for cid in contract_ids:
        click.echo(f"retired {cid}")


@contracts.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--schema", "schema", is_flag=True,
              help="also validate each file against the official ODCS JSON Schema of its apiVersion")  # fmt: skip
def contracts_lint(paths: tuple[Path, ...], schema: bool) -> None:
    """Validate the contracts in PATHS (folders, searched recursively for *.yaml, *.yml and *.json, or files;
    default: the current folder); exit 1 on any error, including when no contract file is found. An invalid
    contract names every problem, one per line.
    """
    from floe_stream.contracts.lint import lint_paths
    from floe_stream.probes.targets import probe_problems
    from floe_stream.processors.policy import override_problems
    from floe_stream.runtime.deployables.checks_runtime import probe_guard

    guard = probe_guard(_settings())
    report = lint_paths(
        list(paths) or [Path(".")], (override_problems, lambda a: probe_problems(a, guard)), schema=schema
    )
    for w in report.warnings:
        click.echo(f"warning: {printable(w)}")  # contract text: no control character reaches the terminal
    problems = 0
    for e in report.errors:
        for p in e.problems:
            problems += 1
            click.echo(f"error: {printable(f'{e.source}: {p}')}", err=True)
    click.echo(
        f"{report.files_checked} file(s), {len(report.contracts)} contract(s), {len(report.assets)} asset(s), "
        f"{problems} error(s), {len(report.warnings)} warning(s)"
    )
    if report.errors:
        sys.exit(1)


@contracts.command("explain")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def contracts_explain(paths: tuple[Path, ...], fmt: str) -> None:
    """For each asset of the contracts in PATHS: every check floe runs with its resolved thresholds,
    severities and overrides, and for every SLA property and quality rule the check that evaluates it or
    why it cannot be evaluated.
    """
    import json

    from floe_stream.contracts.lint import lint_paths
    from floe_stream.processors.explain import explain_contract, render_text

    report = lint_paths(list(paths))
    for e in report.errors:
        click.echo(f"error: {printable(str(e))}", err=True)

    from floe_stream.probes.targets import probe_where
    from floe_stream.runtime.deployables.checks_runtime import probe_guard

    settings = _settings()
    guard = probe_guard(settings)

    def probe_of(asset: Any) -> str:
        return probe_where(asset, guard)

    policy = settings.checks.policy()
    explained = [explain_contract(c, policy, probe_of) for c in report.contracts]
    # JSON escapes control characters itself; the text shows contract text with them escaped
    click.echo(
        json.dumps(explained, indent=2, default=str)
        if fmt == "json"
        else render_text(printable_data(explained))
    )
    if report.errors:
        sys.exit(1)


def _coverage_seen(settings: Settings, registry: Any, window: timedelta, fmt: str) -> None:
    from datetime import UTC, datetime

    from floe_stream.cli.seen import MAX_LISTED, seen_assets
    from floe_stream.durations import format_duration

    since = datetime.now(UTC) - window
    found = _run(seen_assets(settings, registry, since))
    gap = found.assets
    notes = []  # what the list leaves out: stderr under --format json (its stdout stays the list)
    if found.truncated:
        notes.append(
            f"read the window's first {found.records:,} input records only (a busy window): a shorter --seen "
            "reads it all"
        )
    if found.more:
        at_least = "at least " if found.more_at_least else ""
        notes.append(
            f"{at_least}{found.more:,} more dataset(s) without a contract, not listed ({found.more_events:,} "
            f"mention(s)): only the first {MAX_LISTED:,} distinct ones are"
        )
    if fmt == "json":
        rows = [
            {
                "asset": g.identifier,
                "topic": g.topic,
                "events": g.events,
                "last_seen": g.last_seen.isoformat(),
                "ambiguous": list(g.ambiguous),
                "likely": [
                    {"asset": s.asset, "contract": s.contract_id, "add": s.hint} for s in g.suggestions
                ],
                "resolved_by_name_to": g.by_name.asset_id if g.by_name is not None else None,
            }
            for g in (*gap, *found.by_name)
        ]
        click.echo(json.dumps(rows, indent=2))
        for note in notes:
            click.echo(f"note: {note}", err=True)
        return
    click.echo(f"{len(gap)} asset(s) seen in the last {format_duration(window, 'exact')} without a contract")
    for g in gap:  # identifiers as producers wrote them: escaped
        what = "ambiguous" if g.ambiguous else "uncovered"
        click.echo(
            f"  {what}  {printable(g.identifier)}  {g.events} event(s), last {g.last_seen.isoformat()}  ({g.topic})"
        )
        if g.ambiguous:
            click.echo(
                f"    names {len(g.ambiguous)} assets ({printable(', '.join(sorted(g.ambiguous)))}): refused; give "
                "the full dataset identity to one contract (servers) or publish by asset id"
            )
        for s in g.suggestions:
            click.echo(printable(f"    likely {s.asset} ({s.contract_id}): {s.hint}"))
    if found.by_name:
        click.echo(
            f"{len(found.by_name)} dataset(s) taken by their name alone: the asset's servers give other datasets "
            "(another environment's table of that name is merged into it)"
        )
    for g in found.by_name:
        to = g.by_name
        if to is None:
            continue
        gives = ", ".join(f"{ns} + {n}" for ns, n in to.identities[:3])
        click.echo(
            f"  by name  {printable(g.identifier)}  {g.events} event(s), last {g.last_seen.isoformat()}  ({g.topic})"
        )
        click.echo(
            printable(
                f"    went to {to.asset_id} ({to.contract_id}), whose servers give {gives}: if it is that table, add "
                "its server to the contract; if not, give it a contract of its own (with floe.asset where the "
                "default id is the same)"
            )
        )
    for note in notes:
        click.echo(f"  … {note}")


@contracts.command("coverage")
@click.option(
    "--contracts",
    "contracts_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="default: FLOE_CONTRACTS_DIR",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--fail-on-missing", is_flag=True, help="exit 1 when a contract points at a table that does not exist"
)
@click.option(
    "--seen",
    "seen",
    type=DURATION,
    default=None,
    metavar="WINDOW",
    help="instead of the catalog: assets the input topics talked about in the last WINDOW (any "
    "duration, e.g. 1h, 7d, PT6H) that no contract covers, and OpenLineage datasets taken by their name alone",
)
def contracts_coverage(
    contracts_dir: Path | None, fmt: str, fail_on_missing: bool, seen: timedelta | None
) -> None:
    """Catalog tables covered by a contract, and contracts whose table is not in the catalog (FLOE_SOURCES__ICEBERG__*);
    with --seen, the assets with traffic but no contract."""
    from floe_stream.contracts.loader import load_directory
    from floe_stream.contracts.registry import ContractRegistry
    from floe_stream.sources.iceberg.catalog import list_tables, open_catalog
    from floe_stream.sources.iceberg.coverage import coverage

    settings = _settings()
    directory = contracts_dir or settings.contracts_dir
    if not directory.is_dir():
        raise click.ClickException(f"contracts directory {directory} does not exist")
    loaded, errors = load_directory(directory)
    for e in errors:
        click.echo(f"error: {printable(str(e))}", err=True)
    if seen is not None:
        _coverage_seen(settings, ContractRegistry(loaded), seen, fmt)
        return
    cfg = settings.sources.iceberg
    try:
        tables = list_tables(open_catalog(cfg), cfg)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"Iceberg catalog {cfg.catalog_name!r} unreachable: {exc}") from None
    report = coverage(cfg.catalog_name, tables, ContractRegistry(loaded))
    if fmt != "json":
        report = printable_data(report)  # table names and asset ids shown with control characters escaped
    if fmt == "json":
        click.echo(json.dumps({**report.model_dump(mode="json"), "ratio": report.ratio}, indent=2))
    else:
        click.echo(
            f"catalog {report.catalog!r}: {report.tables} table(s), {len(report.covered)} covered ({report.ratio:.0%})"
        )
        for c in report.covered:
            click.echo(f"  covered    {c.table}  ->  {c.asset} ({c.contract_id})")
        for t in report.uncovered:
            click.echo(f"  uncovered  {t}")
        for m in report.missing:
            click.echo(
                f"  missing    {m.asset} ({m.contract_id}): no table "
                + " | ".join(m.identifiers)
                + (f"  [{m.hint}]" if m.hint else "")
            )
    if fail_on_missing and report.missing:
        sys.exit(1)


# --- sla ---------------------------------------------------------------------------------------------
@main.group()
def sla() -> None:
    """SLA compliance."""


from floe_stream.cli.history import (  # noqa: E402  (SLA history commands live in cli/history.py)
    contracts_register,
    db_prune,
    db_rebuild_aggregates,
    replay_cmd,
    sla_report,
)

sla.add_command(sla_report)
db.add_command(db_prune)
db.add_command(db_rebuild_aggregates)
contracts.add_command(contracts_register)
main.add_command(replay_cmd)


# --- dev ---------------------------------------------------------------------------------------------
@main.command("dev")
@click.option("--demo", is_flag=True, help="publish a scripted scenario, print violations and the SLA report")
@click.option("--contracts", "contracts_dir", type=click.Path(path_type=Path), default=None)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".floe-dev"), show_default=True)
@click.option(
    "--duration",
    type=DURATION_OR_SECONDS,
    default=None,
    help="how long to run: any duration (90s, 10m, 1h, PT30M) or a number of seconds (demo default: "
    "the scenario length)",
)
@click.option(
    "--broker",
    type=click.Choice(["tansu", "kafka"]),
    default="tansu",
    show_default=True,
    help="tansu: the embedded Tansu binary (no Java); kafka: Apache Kafka (KRaft) installed by "
    "`floe tools install-kafka`",
)
def dev(
    demo: bool, contracts_dir: Path | None, data_dir: Path, duration: timedelta | None, broker: str
) -> None:
    """Everything on one machine: an embedded broker (Tansu or Apache Kafka) + PostgreSQL, ticker, processor, sink."""
    from floe_stream.runtime.devtools.dev import run_dev
    from floe_stream.runtime.devtools.embedded import BrokerKind

    kind: BrokerKind = "kafka" if broker == "kafka" else "tansu"
    seconds = duration.total_seconds() if duration is not None else None
    _run(run_dev(demo=demo, contracts_dir=contracts_dir, data_dir=data_dir, duration=seconds, broker=kind))


@main.group()
def tools() -> None:
    """Local tools for `floe dev` and development."""


@tools.command("install-kafka")
@click.option(
    "--version", "version", default=None, help="Apache Kafka version (default: $KAFKA_VERSION, else 4.4.0)"
)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="install here (default: $FLOE_KAFKA_HOME, a clone's .tools/kafka, else ~/.local/share/floe-stream/kafka)")  # fmt: skip
def tools_install_kafka(version: str | None, home: Path | None) -> None:
    """Install Apache Kafka (KRaft) from Maven Central for `floe dev --broker kafka` (needs java and mvn).
    Idempotent. Installed elsewhere than the default? Point FLOE_KAFKA_HOME at it."""
    from floe_stream.runtime.devtools.embedded import BrokerNotInstalled
    from floe_stream.runtime.devtools.kafka_install import install_kafka

    try:
        install_kafka(home, version, say=click.echo)
    except BrokerNotInstalled as exc:
        raise click.ClickException(str(exc)) from None


def _register_alert_commands() -> None:
    from floe_stream.sinks.alerts.commands import alerts, silence

    main.add_command(silence)
    main.add_command(alerts)


_register_alert_commands()


def _attach_examples() -> None:
    from floe_stream.cli.examples import attach_examples

    attach_examples(main)  # every --help ends with examples (cli/examples.py)


_attach_examples()

if __name__ == "__main__":
    main()
