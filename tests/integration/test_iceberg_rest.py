"""The watcher against Apache Iceberg's own REST catalog server (``iceberg-open-api``, installed by ``make tools``).

pyiceberg writes through the real REST protocol (create, append, schema updates, deletes, overwrite, drop) and
the watcher reads through it (no metadata pointers over REST: every poll loads every watched table). Each test
has a namespace of its own in the one session server.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.schema import Schema
from pyiceberg.types import DoubleType, IntegerType, LongType, NestedField, StringType

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.iceberg_watcher import IcebergWatcher
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import IcebergSourceSettings, Settings, SourcesSettings
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics import (
    CatalogCommitEvent,
    CheckResult,
    DriftKind,
    ResolvedData,
    Severity,
    TopicKey,
    ViolationData,
)
from floe_stream.topics.enums import CheckType
from floe_stream.topics.partitioning import partition_for
from tests.conftest import wait_for
from tests.integration.helpers import Running, read_all, violations
from tests.integration.tools import IcebergRestServer

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.tool,
]  # the REST catalog server of `make tools`

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: lake-{ns}
name: lake-{ns}
version: 1.0.0
status: active
team:
  name: lake
  members:
    - username: bob
      role: owner
schema:
  - name: orders
    physicalName: orders
    physicalType: table
    customProperties:
      - property: floe
        value:
          asset: {ns}.orders
    properties:
      - name: id
        logicalType: integer
        physicalType: long
        required: true
      - name: qty
        logicalType: integer
        physicalType: int
      - name: note
        logicalType: string
        physicalType: string
  - name: events
    physicalName: events
    physicalType: table
    customProperties:
      - property: floe
        value:
          asset: {ns}.events
    properties:
      - name: id
        logicalType: integer
        physicalType: long
        required: true
slaProperties:
  - property: latency
    value: 2
    unit: s
    element: events.id
"""

ORDERS = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "qty", IntegerType()),
    NestedField(3, "note", StringType()),
)
EVENTS = Schema(NestedField(1, "id", LongType(), required=True))


def lake(server: IcebergRestServer) -> tuple[Catalog, str]:
    """pyiceberg's REST client on the session server, and a fresh namespace for this test."""
    cat = load_catalog("rest", type="rest", uri=server.uri)
    ns = f"t{uuid.uuid4().hex[:8]}"
    cat.create_namespace(ns)
    return cat, ns


def setup(settings: Settings, server: IcebergRestServer, ns: str, tmp: Path, **over: Any) -> Settings:
    (tmp / "contracts").mkdir(exist_ok=True)
    (tmp / "contracts" / "lake.odcs.yaml").write_text(CONTRACT.format(ns=ns))
    iceberg = IcebergSourceSettings(
        catalog_name="rest", properties={"type": "rest", "uri": server.uri}, namespaces=[ns],
        poll_interval_s=0.2, **over,
    )  # fmt: skip
    return settings.model_copy(
        update={"sources": SourcesSettings(iceberg=iceberg), "contracts_dir": tmp / "contracts"}
    )


def append_orders(table: Any, ids: list[int]) -> None:
    table.refresh()
    cols = {f.name: str(f.field_type) for f in table.schema().fields}
    data: dict[str, Any] = {"id": pa.array(ids, pa.int64())}
    if "qty" in cols:
        data["qty"] = pa.array([1] * len(ids), pa.int64() if cols["qty"] == "long" else pa.int32())
    for name in ("note", "comment"):
        if name in cols:
            data[name] = ["x"] * len(ids)
    if "extra" in cols:
        data["extra"] = pa.array([0.5] * len(ids), pa.float64())
    table.append(pa.table(data, schema=table.schema().as_arrow()))


def one_file_per_row(table: Any, ids: list[int]) -> None:
    """One append (one snapshot) writing one data file per row, so that deleting a row deletes a whole file
    (a ``delete`` snapshot, not a copy-on-write ``overwrite``)."""
    schema = table.schema().as_arrow()
    table.append(
        pa.Table.from_batches([pa.record_batch([pa.array([i], pa.int64())], schema=schema) for i in ids])
    )


async def commits(s: Settings) -> list[CatalogCommitEvent]:
    return [
        CatalogCommitEvent.model_validate_json(r.value) for r in await read_all(s, TopicKey.CATALOG_COMMITS)
    ]


async def n_commits(s: Settings, n: int, table: str | None = None) -> list[CatalogCommitEvent] | None:
    got = [c for c in await commits(s) if table is None or c.table == table]
    return got if len(got) >= n else None


async def results(s: Settings) -> list[CheckResult]:
    return [CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)]


async def test_appends_and_schema_evolution_over_the_rest_catalog_raise_drift(
    settings: Settings, iceberg_rest: IcebergRestServer, tmp_path: Path
) -> None:
    cat, ns = lake(iceberg_rest)
    orders = cat.create_table(f"{ns}.orders", schema=ORDERS)
    cat.create_namespace(f"{ns}.eu")  # a nested namespace is discovered too
    eu = cat.create_table(f"{ns}.eu.orders", schema=ORDERS)
    s = setup(settings, iceberg_rest, ns, tmp_path)
    processor = processor_service(s, load_registry(s))
    watcher = IcebergWatcher(s, metrics=instruments())
    async with Running(processor, watcher):
        await wait_for(lambda: processor.ever_assigned and watcher.polls > 0, timeout=60)
        assert await commits(s) == []  # tables without a snapshot publish nothing
        await asyncio.to_thread(append_orders, orders, [1, 2])
        await asyncio.to_thread(append_orders, eu, [1])
        first = await wait_for(lambda: n_commits(s, 2), timeout=30)
        await wait_for(lambda: _drift_results(s, 1), timeout=30)
        assert await violations(s) == []  # the table matches its contract

        steps = [  # one schema update (a metadata-only commit) at a time, each published before the next
            lambda u: u.add_column("extra", DoubleType()),
            lambda u: u.update_column("qty", LongType()),  # widen int -> long
            lambda u: u.rename_column("note", "comment"),
            lambda u: u.delete_column("extra"),
        ]
        for i, step in enumerate(steps, start=1):

            def evolve(step: Any = step) -> None:
                with orders.update_schema() as u:
                    step(u)

            await asyncio.to_thread(evolve)
            await wait_for(lambda i=i: n_commits(s, 2 + i), timeout=30)
        await asyncio.to_thread(append_orders, orders, [3, 4, 5])  # the next snapshot carries the new schema
        every = await wait_for(lambda: n_commits(s, 7), timeout=30)
        evs = await wait_for(lambda: _violations_where(s, lambda v: len(v) >= 5), timeout=30)
    assert {c.table for c in first} == {f"{ns}.orders", f"{ns}.eu.orders"}
    assert {c.catalog for c in first} == {"rest"}
    mine = [c for c in every if c.table == f"{ns}.orders"]
    assert len(mine) == 6 and len({c.event_id for c in mine}) == 6  # each snapshot / schema change once
    changes = [c for c in mine if c.summary.get("floe.trigger") == "schema-change"]
    assert [[(f.name, f.type) for f in c.table_schema.fields] for c in changes] == [
        [("id", "long"), ("qty", "int"), ("note", "string"), ("extra", "double")],
        [("id", "long"), ("qty", "long"), ("note", "string"), ("extra", "double")],
        [("id", "long"), ("qty", "long"), ("comment", "string"), ("extra", "double")],
        [("id", "long"), ("qty", "long"), ("comment", "string")],
    ]
    assert [c.table_schema.schema_id for c in changes] == [1, 2, 3, 4]
    assert {c.snapshot_id for c in changes} == {mine[0].snapshot_id}  # an ALTER is no new snapshot
    last = mine[-1]
    assert (last.operation, last.sequence_number, last.summary["added-records"], last.summary["total-records"]) == (
        "append", 2, "3", "5",
    )  # fmt: skip
    opened = {(v.drift_kind, v.element, v.severity) for v in evs if isinstance(v, ViolationData)}
    assert {
        (DriftKind.COLUMN_ADDED, "extra", Severity.WARNING),
        (DriftKind.TYPE_CHANGED, "qty", Severity.INFO),  # widening is safe
        (DriftKind.COLUMN_REMOVED, "note", Severity.ERROR),  # a rename: the contract's column is gone …
        (DriftKind.COLUMN_ADDED, "comment", Severity.WARNING),  # … and an unknown one appeared
    } <= opened
    resolved = {v.correlation_key for v in evs if isinstance(v, ResolvedData)}
    extra_key = next(v.correlation_key for v in evs if isinstance(v, ViolationData) and v.element == "extra")
    assert extra_key in resolved  # dropping the added column resolves its drift
    recs = await read_all(s, TopicKey.CATALOG_COMMITS)
    assert len({r.partition for r in recs if r.key == f"{ns}.orders".encode()}) == 1  # keyed by table


async def test_delete_snapshots_are_no_new_data_an_overwrite_is(
    settings: Settings, iceberg_rest: IcebergRestServer, tmp_path: Path
) -> None:
    cat, ns = lake(iceberg_rest)
    events = cat.create_table(f"{ns}.events", schema=EVENTS, properties={"write.target-file-size-bytes": "1"})
    s = setup(settings, iceberg_rest, ns, tmp_path)
    processor = processor_service(s, load_registry(s))
    watcher = IcebergWatcher(s, metrics=instruments())
    async with Running(processor, watcher, Ticker(s, ticker_id="t1")):
        await wait_for(lambda: processor.ever_assigned and watcher.polls > 0, timeout=60)
        await asyncio.to_thread(one_file_per_row, events, list(range(60)))
        (appended,) = await wait_for(lambda: n_commits(s, 1), timeout=30)
        await wait_for(lambda: _evaluated(s, [appended]), timeout=30)
        before = len(
            await _freshness(s, ViolationData, Severity.ERROR) or []
        )  # an "absent" one before the data
        resolved_before = len(await _freshness(s, ResolvedData) or [])

        enough = asyncio.Event()

        async def deletes() -> None:  # a delete-only snapshot every 0.3 s, against the 2 s latency SLA
            for i in range(60):
                if enough.is_set():
                    return
                await asyncio.to_thread(events.delete, f"id = {i}")
                await asyncio.sleep(0.3)

        task = asyncio.create_task(deletes())
        try:

            async def breached() -> list[Any] | None:  # a breach after the data, while the deletes come
                got = await _freshness(s, ViolationData, Severity.ERROR) or []
                return got[before:] or None

            breach = await wait_for(breached, timeout=60)

            async def deletes_evaluated() -> list[CatalogCommitEvent] | None:
                done = [c for c in await commits(s) if c.operation == "delete"]
                return done if len(done) >= 3 and await _evaluated(s, done) else None

            deleted = await wait_for(deletes_evaluated, timeout=60)  # processed, and the breach stays open:
            assert len(await _freshness(s, ResolvedData) or []) == resolved_before  # deletes are no new data
        finally:
            enough.set()
            await asyncio.wait_for(task, 60)  # its last delete committed: the overwrite below cannot race it
        assert all(
            c.summary.get("deleted-records") == "1" and "added-records" not in c.summary for c in deleted
        )

        def overwrite() -> None:  # pyiceberg: a delete snapshot, then an append one with the new rows
            events.overwrite(pa.table({"id": pa.array([1000], pa.int64())}, schema=EVENTS.as_arrow()))

        await asyncio.to_thread(overwrite)
        await wait_for(lambda: _freshness(s, ResolvedData), timeout=30)
    assert "no update for" in breach[0].message


async def test_a_dropped_table_and_its_successor(
    settings: Settings, iceberg_rest: IcebergRestServer, tmp_path: Path
) -> None:
    cat, ns = lake(iceberg_rest)
    name = f"{ns}.orders"
    await asyncio.to_thread(append_orders, cat.create_table(name, schema=ORDERS), [1, 2])
    await asyncio.to_thread(append_orders, cat.load_table(name), [3])
    s = setup(settings, iceberg_rest, ns, tmp_path)
    watcher = IcebergWatcher(s, metrics=instruments())
    async with Running(watcher):
        (old,) = await wait_for(lambda: n_commits(s, 1), timeout=60)
        await asyncio.to_thread(cat.drop_table, name)
        polls = watcher.polls
        await wait_for(lambda: watcher.polls >= polls + 3, timeout=30)
        assert (watcher.last_stats.tables, watcher.last_stats.failed) == (0, 0)  # gone: no error, no event
        again = cat.create_table(name, schema=ORDERS)  # the same name, a new table (new UUID)
        await asyncio.to_thread(append_orders, again, [7])
        got = await wait_for(lambda: n_commits(s, 2), timeout=30)
    new = got[1]
    assert old.sequence_number == 2
    assert new.sequence_number == 1  # older than the mark, yet published: the successor starts over
    assert new.snapshot_id != old.snapshot_id and new.summary["total-records"] == "1"
    assert len(await commits(s)) == 2


async def test_a_restarted_watcher_misses_and_repeats_nothing(
    settings: Settings, iceberg_rest: IcebergRestServer, tmp_path: Path
) -> None:
    cat, ns = lake(iceberg_rest)
    orders = cat.create_table(f"{ns}.orders", schema=ORDERS)
    s = setup(settings, iceberg_rest, ns, tmp_path)
    first = IcebergWatcher(s, metrics=instruments())
    async with Running(first):
        await asyncio.to_thread(append_orders, orders, [1])
        await wait_for(lambda: n_commits(s, 1), timeout=60)
    # while no watcher runs: two appends and a schema change
    await asyncio.to_thread(append_orders, orders, [2])
    await asyncio.to_thread(append_orders, orders, [3])

    def evolve() -> None:
        with orders.update_schema() as u:
            u.add_column("extra", DoubleType())

    await asyncio.to_thread(evolve)
    second = IcebergWatcher(s, metrics=instruments())
    async with Running(second):
        await wait_for(lambda: n_commits(s, 3), timeout=60)
        polls = second.polls
        await wait_for(lambda: second.polls >= polls + 3, timeout=30)
        await asyncio.to_thread(append_orders, orders, [4])
        await wait_for(lambda: n_commits(s, 4), timeout=30)
        polls = second.polls
        await wait_for(lambda: second.polls >= polls + 3, timeout=30)
    got = await commits(s)
    assert [c.sequence_number for c in got] == [1, 2, 3, 4]  # nothing missed, nothing repeated
    assert [f.name for f in got[2].table_schema.fields][-1] == "extra"  # the missed ALTER rode on the newest


async def test_two_watcher_replicas_publish_each_snapshot_once_and_fail_over(
    settings: Settings, iceberg_rest: IcebergRestServer, tmp_path: Path
) -> None:
    """Two replicas split the tables by catalog-commits partition (one consumer group): each snapshot is
    published once; when the owner of a table stops, the other takes it over without missing or repeating."""
    cat, ns = lake(iceberg_rest)
    names: list[str] = []  # two tables on each catalog-commits partition: both replicas own some
    for i in range(1000):
        name, p = f"{ns}.t{i}", partition_for(f"{ns}.t{i}", settings.kafka.partitions)
        if sum(partition_for(n, settings.kafka.partitions) == p for n in names) < 2:
            names.append(name)
    tables = {n: cat.create_table(n, schema=ORDERS) for n in names}
    s = setup(settings, iceberg_rest, ns, tmp_path)
    a, b = IcebergWatcher(s, metrics=instruments()), IcebergWatcher(s, metrics=instruments())
    tasks = {w: asyncio.create_task(w.run()) for w in (a, b)}

    async def stop(w: IcebergWatcher) -> None:
        w.request_stop()
        await asyncio.wait_for(tasks.pop(w), 30)

    try:
        await wait_for(lambda: a.joined and b.joined, timeout=60)
        await wait_for(lambda: a.owned and b.owned and not a.owned & b.owned, timeout=60)
        for t in tables.values():
            await asyncio.to_thread(append_orders, t, [1])
        await wait_for(lambda: n_commits(s, 6), timeout=30)
        for t in tables.values():
            await asyncio.to_thread(append_orders, t, [2])
        await wait_for(lambda: n_commits(s, 12), timeout=30)
        owner_a = {n for n in names if n in a.marks}
        assert owner_a and owner_a != set(names)  # each replica watched some of the tables
        await stop(a)  # a's tables move to b
        await wait_for(lambda: len(b.owned) == 3, timeout=60)
        for t in tables.values():
            await asyncio.to_thread(append_orders, t, [3])
        await wait_for(lambda: n_commits(s, 18), timeout=30)
        polls = b.polls
        await wait_for(lambda: b.polls >= polls + 3, timeout=30)
    finally:
        for w in list(tasks):
            await stop(w)
    got = await commits(s)
    assert len(names) == 6
    assert len(got) == 18 and len({c.event_id for c in got}) == 18  # each snapshot published once
    for n in names:  # nothing missed, nothing repeated, across the fail-over
        assert [c.sequence_number for c in got if c.table == n] == [1, 2, 3], n


async def _evaluated(s: Settings, done: list[CatalogCommitEvent]) -> bool:
    seen = {r.source_event_id for r in await results(s)}
    return all(c.event_id in seen for c in done)


async def _drift_results(s: Settings, n: int) -> list[CheckResult] | None:
    got = [r for r in await results(s) if r.check_type == CheckType.SCHEMA_DRIFT]
    return got if len(got) >= n else None


async def _violations_where(s: Settings, ok: Any) -> list[Any] | None:
    evs = [e.data for e in await violations(s) if e.data.violation_type == CheckType.SCHEMA_DRIFT]
    return evs if ok(evs) else None


async def _freshness(s: Settings, kind: type, severity: Severity | None = None) -> list[Any] | None:
    got = [
        e.data
        for e in await violations(s)
        if isinstance(e.data, kind)
        and e.data.violation_type == CheckType.FRESHNESS
        and (severity is None or e.data.severity == severity)
    ]
    return got or None


def test_contracts_coverage_over_the_rest_catalog(iceberg_rest: IcebergRestServer, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from floe_stream.cli.main import main

    cat, ns = lake(iceberg_rest)
    cat.create_table(f"{ns}.orders", schema=ORDERS)
    cat.create_namespace(f"{ns}.eu")
    cat.create_table(f"{ns}.eu.orders", schema=ORDERS)
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "lake.odcs.yaml").write_text(CONTRACT.format(ns=ns))
    env = {
        "FLOE_SOURCES__ICEBERG__CATALOG_NAME": "rest",
        "FLOE_SOURCES__ICEBERG__PROPERTIES": json.dumps({"type": "rest", "uri": iceberg_rest.uri}),
        "FLOE_SOURCES__ICEBERG__NAMESPACES": json.dumps([ns]),
        "FLOE_CONTRACTS_DIR": str(tmp_path / "contracts"),
    }
    res = CliRunner().invoke(main, ["contracts", "coverage"], env=env)
    assert res.exit_code == 0, res.output
    assert "2 table(s), 1 covered (50%)" in res.output, res.output
    assert f"covered    {ns}.orders  ->  {ns}.orders (lake-{ns})" in res.output
    assert f"uncovered  {ns}.eu.orders" in res.output
    assert f"missing    {ns}.events (lake-{ns})" in res.output  # declared, never created
