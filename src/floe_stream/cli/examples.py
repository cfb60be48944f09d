"""Examples shown at the end of every ``--help`` (one table, so no command is left without one)."""

from __future__ import annotations

import click

EXAMPLES: dict[str, tuple[str, ...]] = {
    "floe": ("floe dev --demo", "floe contracts lint contracts/", "floe sla report --window 7d"),
    "floe alerts": ("floe alerts replay",),
    "floe alerts replay": ("floe alerts replay",),
    "floe contracts": ("floe contracts lint contracts/", "floe contracts publish contracts/"),
    "floe contracts compile": ("floe contracts compile contracts/",
                               "FLOE_CHECKS__CONTRACTS_CACHE_DIR=/cache floe contracts compile contracts/"),
    "floe contracts coverage": ("floe contracts coverage --contracts contracts/ --fail-on-missing",
                                "floe contracts coverage --format json",
                                "floe contracts coverage --seen 24h"),
    "floe contracts explain": ("floe contracts explain contracts/sales-orders.odcs.yaml",
                               "floe contracts explain contracts/ --format json"),
    "floe contracts lint": ("floe contracts lint contracts/", "floe contracts lint contracts/ extra/orders.odcs.yaml"),
    "floe contracts publish": ("floe contracts publish contracts/", "floe contracts publish contracts/orders.yaml"),
    "floe contracts register": ("floe contracts register contracts/",),
    "floe contracts retire": ("floe contracts retire orders-contract",),
    "floe db": ("floe db migrate", "floe db prune --older-than 90d"),
    "floe db migrate": ("FLOE_DATABASE__DSN=postgresql://floe@db:5432/floe floe db migrate",
                        "FLOE_DATABASE__DSN='host=db dbname=floe user=floe' floe db migrate"),
    "floe db prune": ("floe db prune --older-than 90d", "floe db prune"),
    "floe db rebuild-aggregates": ("floe db rebuild-aggregates --since 2026-05-01 --asset sales.orders",),
    "floe dev": ("floe dev --demo", "floe dev --contracts contracts/ --duration 10m"),
    "floe publish": ("floe publish materialization --asset sales.orders --row-count 1200",),
    "floe publish commit": ("floe publish commit --file commit.json", "cat commit.json | floe publish commit --file -"),
    "floe publish materialization": (
        "floe publish materialization --asset sales.orders --row-count 1200 --run-id 42",
        "floe publish materialization --asset orders --dbt-run-results target/run_results.json",
    ),
    "floe replay": ("floe replay --from 7d --contracts contracts/", "floe replay --from 2026-05-01T00:00:00Z --to 2d"),
    "floe run": ("floe run processor", "floe run sink postgres"),
    "floe run processor": ("floe run processor",),
    "floe run sink": ("floe run sink postgres", "floe run sink alerts"),
    "floe run sink alerts": ("FLOE_ALERTS__CONFIG_FILE=alerts.yaml floe run sink alerts",),
    "floe run sink openlineage": ("OPENLINEAGE_URL=http://marquez:5000 floe run sink openlineage",
                                  "OPENLINEAGE_CONFIG=openlineage.yml floe run sink openlineage"),
    "floe run sink postgres": ("floe run sink postgres",),
    "floe run source": ("floe run source iceberg",),
    "floe run source iceberg": ("FLOE_SOURCES__ICEBERG__CATALOG_NAME=prod floe run source iceberg",),
    "floe run ticker": ("floe run ticker",),
    "floe silence": ("floe silence add --asset sales.orders --until 2h", "floe silence list"),
    "floe silence add": ('floe silence add --asset sales.orders --until 2h --comment "backfill"',
                         "floe silence add --contract orders-contract --until 2026-06-01T08:00:00Z"),
    "floe silence expire": ("floe silence expire 3f2a9c01",),
    "floe silence list": ("floe silence list --all --format json",),
    "floe sla": ("floe sla report --window 7d",),
    "floe sla report": (
        "floe sla report --window 7d",
        "floe sla report --asset sales.orders --asset sales.customers --by week",
        "floe sla report --window 30d --format html -o sla.html",
        "floe sla report --window 7d --fail-under target --format junit -o sla.xml",
    ),
    "floe tools": ("floe tools install-kafka",),
    "floe tools install-kafka": ("floe tools install-kafka",
                                 "floe tools install-kafka --version 4.0.1 --home /opt/kafka-4.0"),
    "floe topics": ("floe topics create", "floe topics schemas --output topics/"),
    "floe topics asyncapi": ("floe topics asyncapi --output topics/asyncapi.yaml",),
    "floe topics create": ("floe topics create",),
    "floe topics schemas": ("floe topics schemas --output topics/",),
}  # fmt: skip


def attach_examples(cmd: click.Command, path: str = "floe") -> None:
    """Append the examples of ``path`` (and, recursively, its subcommands) to the ``--help`` epilog."""
    examples = EXAMPLES.get(path)
    if examples and "Example" not in (cmd.help or "") + (cmd.epilog or ""):
        cmd.epilog = "\b\nExamples:\n" + "\n".join(f"  {e}" for e in examples)
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            attach_examples(sub, f"{path} {name}")
