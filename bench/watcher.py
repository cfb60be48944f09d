"""Iceberg watcher benchmark: poll time for 1,000 tables of which 10 changed, on the embedded Tansu broker.

    .venv/bin/python -m bench.watcher [--tables 1000] [--changed 10] [--polls 5]

A pyiceberg SQL catalog (SQLite, local warehouse): 10 real tables + (N − 10) tables registered on copies of one
template table's metadata (`register_table`, cheap to set up; reading them costs the same as any table).
Each has one snapshot. Measured, each a median over --polls polls:
  (a) cold start: the first poll loads every table's metadata and publishes N commits;
  (b) idle poll: nothing changed — one SQL query, zero table loads;
  (c) 10 changed: append to 10 tables, then one poll — 10 loads, 10 commits;
  (d) the generic path (what a REST catalog costs — the catalog cannot say which tables moved): list the
      namespace and load every table, nothing changed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import DoubleType, LongType, NestedField, StringType

from floe_stream.runtime.deployables.iceberg_watcher import IcebergWatcher
from floe_stream.runtime.devtools.embedded import EmbeddedKafka
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.settings import IcebergSourceSettings, KafkaSettings, Settings, SourcesSettings
from floe_stream.telemetry.metrics import instruments

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "note", StringType()),
    NestedField(3, "amount", DoubleType()),
)


def arrow(table: Any, n: int = 10) -> pa.Table:
    return pa.table(
        {"id": pa.array(range(n), pa.int64()), "note": ["x"] * n, "amount": pa.array([1.0] * n)},
        schema=table.schema().as_arrow(),
    )


def build_catalog(root: Path, tables: int, real: int) -> tuple[SqlCatalog, list[Any]]:
    (root / "wh").mkdir()
    cat = SqlCatalog("bench", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/wh")
    cat.create_namespace("lake")
    live = []
    for i in range(real):
        t = cat.create_table(f"lake.t{i:04d}", schema=SCHEMA)
        t.append(arrow(t))
        live.append(t)
    template = Path(live[0].metadata_location.removeprefix("file://"))
    for i in range(real, tables):
        copy = template.with_name(f"copy-{uuid.uuid4().hex}.metadata.json")
        shutil.copyfile(template, copy)
        cat.register_table(f"lake.t{i:04d}", f"file://{copy}")
    return cat, live


class Generic:
    """The same catalog seen through the generic API only (as a REST catalog is): no metadata pointers."""

    def __init__(self, inner: SqlCatalog) -> None:
        self.inner = inner

    def list_namespaces(self, *a: Any) -> Any:
        return self.inner.list_namespaces(*a)

    def list_tables(self, ns: Any) -> Any:
        return self.inner.list_tables(ns)

    def load_table(self, ident: Any) -> Any:
        return self.inner.load_table(ident)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--changed", type=int, default=10)
    ap.add_argument("--polls", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="floe-bench-watcher-"))
    broker = EmbeddedKafka(log_file=root / "tansu.log").start()
    try:
        t0 = time.perf_counter()
        cat, live = await asyncio.to_thread(build_catalog, root, args.tables, args.changed)
        print(
            f"setup: {args.tables} tables ({args.changed} real + copies) in {time.perf_counter() - t0:.1f}s"
        )
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap, topic_prefix="bench.", partitions=6, linger_ms=5
        )
        await ensure_topics(kafka)
        src = SourcesSettings(iceberg=IcebergSourceSettings(catalog_name="bench", poll_interval_s=1))
        s = Settings(kafka=kafka, sources=src, health_port=-1)

        w = IcebergWatcher(s, catalog=cat, metrics=instruments())
        producer = await w.start()
        try:
            cold = await w.poll_once()
            print(
                f"(a) cold start: {cold.tables} tables, {cold.loaded} loaded, {cold.published} published in {cold.seconds * 1000:.0f} ms"
            )
            idle = [(await w.poll_once()) for _ in range(args.polls)]
            assert all(p.loaded == 0 and p.published == 0 for p in idle)
            print(
                f"(b) idle poll: median {statistics.median(p.seconds for p in idle) * 1000:.1f} ms (0 loads, 0 published)"
            )
            changed = []
            for _ in range(args.polls):
                for t in live:
                    await asyncio.to_thread(t.append, arrow(t, 1))
                st = await w.poll_once()
                assert (st.loaded, st.published) == (args.changed, args.changed), st
                changed.append(st.seconds)
            print(
                f"(c) {args.changed} changed of {args.tables}: median {statistics.median(changed) * 1000:.1f} ms per poll "
                f"({args.changed} loads, {args.changed} published)"
            )
        finally:
            await w.leave()
            await producer.stop()

        g = IcebergWatcher(s, catalog=Generic(cat), metrics=instruments())
        producer = await g.start()  # restores the marks from the topic: nothing is republished
        try:
            gen = [(await g.poll_once()) for _ in range(max(2, args.polls // 2))]
            assert all(p.published == 0 for p in gen), gen
            print(
                f"(d) generic path (REST-like), nothing changed: median {statistics.median(p.seconds for p in gen) * 1000:.0f} ms "
                f"({gen[0].loaded} loads, 0 published; marks restored from the topic: {len(g.marks)})"
            )
        finally:
            await g.leave()
            await producer.stop()
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
