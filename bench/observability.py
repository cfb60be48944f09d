"""Observability cost on the processor's hot path, and the OpenLineage sink's pure work.

    .venv/bin/python -m bench.observability [--updates 50000] [--assets 1000]

(a) Engine.apply_update over U materializations spread on A assets (freshness + drift + quality checks):
    raw checks vs. checks wrapped by InstrumentedCheck with tracing off (the default) vs. tracing on
    (SDK tracer, in-memory exporter, sampled 100 % and 1 %), plus the per-record trace hooks.
(b) BatchMetrics.flush for a batch of 1,000 records (durations sampled, latency histogram).
(c) One /metrics exposition (prometheus_client generate_latest) with the data-age gauge over A assets.
(d) lineage_events (violation CloudEvent → OpenLineage RunEvent dict) + JSON encoding, per event.
Prints µs per item; no assertion.
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from aiokafka.structs import TopicPartition
from openlineage.client.serde import Serde
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, generate_latest

from floe_stream.contracts.models import ColumnSpec, FreshnessSla, MonitoredAsset, QualityRule
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate
from floe_stream.processors.registry import CHECKS
from floe_stream.settings import OpenLineageSettings, TelemetrySettings
from floe_stream.sinks.openlineage.events import lineage_events
from floe_stream.telemetry import tracing
from floe_stream.telemetry.metrics import (
    BatchMetrics,
    instrument_checks,
    instruments,
    setup_metrics,
    track_freshness,
)
from floe_stream.topics import QualityResult, Severity, ViolationData
from floe_stream.topics.enums import CheckType
from floe_stream.topics.violation import decode_violation, encode_violation

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def assets(n: int) -> list[MonitoredAsset]:
    return [
        MonitoredAsset(
            asset_id=f"bench.t{i:05d}",
            contract_id=f"c{i // 50}",
            contract_name=f"contract-{i // 50}",
            contract_version="1.0.0",
            table=f"t{i:05d}",
            freshness=FreshnessSla(threshold_s=3600),
            columns=(ColumnSpec(name="id", physical_type="long", required=True),),
            quality_rules=(
                QualityRule(name="ids", column="id", metric="nullValues", operator="mustBe", threshold=0),
            ),
        )
        for i in range(n)
    ]


def updates(all_assets: list[MonitoredAsset], n: int) -> list[tuple[MonitoredAsset, AssetUpdate]]:
    q = (QualityResult(name="ids", column="id", metric="nullValues", observed_value=0),)
    out = []
    for i in range(n):
        a = all_assets[i % len(all_assets)]
        at = T0 + timedelta(seconds=i)
        out.append(
            (
                a,
                AssetUpdate(
                    asset_id=a.asset_id, source="materialization", event_id=f"e{i}", updated_at=at, quality=q
                ),
            )
        )
    return out


def run_engine(engine: Engine, work: list[tuple[MonitoredAsset, AssetUpdate]], hooks: bool) -> float:
    gc.collect()
    t = time.perf_counter()
    for a, u in work:
        if hooks:
            tracing.start_record("bench.materializations", None)
        engine.apply_update(a, u, u.updated_at)
    if hooks:
        tracing.end_record()
    return (time.perf_counter() - t) / len(work) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=50_000)
    ap.add_argument("--assets", type=int, default=1_000)
    args = ap.parse_args()
    setup_metrics("bench")
    all_assets = assets(args.assets)
    work = updates(all_assets, args.updates)
    print(f"(a) Engine.apply_update, {args.updates} updates on {args.assets} assets, {len(CHECKS)} checks")
    acc = BatchMetrics(lambda a: "c", instruments())
    for label, instrumented, trace_ratio in (
        ("raw checks (no observability)", False, None),
        ("instrumented, tracing off (default)", True, None),
        ("instrumented, tracing on, 1% sampled", True, 0.01),
        ("instrumented, tracing on, 100% sampled", True, 1.0),
    ):
        engine = Engine(instrument_checks(CHECKS, acc) if instrumented else CHECKS, clock_skew_s=0)
        exporter = InMemorySpanExporter()
        if trace_ratio is not None:
            tracing.setup_tracing(
                "bench", TelemetrySettings(trace_sample_ratio=trace_ratio), exporter=exporter
            )
        run_engine(engine, work[: min(2000, len(work))], instrumented)  # warm-up
        engine = Engine(instrument_checks(CHECKS, acc) if instrumented else CHECKS, clock_skew_s=0)
        us = run_engine(engine, work, instrumented)
        spans = len(exporter.get_finished_spans())
        tracing.shutdown_tracing()
        acc.durations.clear()
        print(
            f"    {label:<42} {us:7.2f} µs/update   ({1e6 / us:,.0f}/s{f', {spans} spans' if spans else ''})"
        )

    cap = TelemetrySettings().histogram_samples_per_batch
    print(
        f"(b) BatchMetrics.flush, batch of 1,000 records, 3 checks each (histograms capped at {cap}/series/batch)"
    )
    recs = [SimpleNamespace(timestamp=int(time.time() * 1000) - 50) for _ in range(1000)]
    n = 200
    spent = 0.0
    for _ in range(n):
        for i in range(3000):
            acc.duration("c", "freshness", 0.00001 * (i % 7))
        t = time.perf_counter()
        acc.flush({TopicPartition("bench.materializations", 0): recs})  # type: ignore[dict-item]
        spent += time.perf_counter() - t
    us = spent / n * 1e6
    print(f"    {us:,.0f} µs per batch = {us / 1000:.2f} µs per record")

    print(f"(c) /metrics exposition with the data-age gauge over {args.assets} assets")

    class Holder:
        def freshness_observations(self) -> list[tuple[dict[str, str], float]]:
            return [({"contract": a.contract_name, "asset": a.asset_id}, 12.5) for a in all_assets]

    holder = Holder()
    track_freshness(holder)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        body = generate_latest(REGISTRY)
        times.append(time.perf_counter() - t)
    print(f"    {min(times) * 1e3:.1f} ms per scrape (best of 20), {len(body):,} bytes")

    print("(d) OpenLineage: violation CloudEvent → RunEvent dict → JSON (openlineage-python's Serde)")
    d = ViolationData(
        violation_id="v",
        correlation_key="bench.t00001/freshness",
        contract_id="c0",
        contract_name="contract-0",
        contract_version="1.0.0",
        asset="bench.t00001",
        violation_type=CheckType.QUALITY,
        severity=Severity.ERROR,
        message="12 null ids",
        element="ids",
        expected_value="0",
        actual_value="12",
        detected_at=T0,
        episode_started_at=T0,
    )
    key, value, headers = encode_violation(d)
    ce = decode_violation(dict(headers), key, value)
    cfg = OpenLineageSettings()
    lookup = {a.asset_id: a for a in all_assets}.get
    n = 20_000
    t = time.perf_counter()
    for _ in range(n):
        for ev in lineage_events(ce, cfg, lookup):
            Serde.to_json(ev)  # what openlineage-python's transports send
    print(f"    {(time.perf_counter() - t) / n * 1e6:.1f} µs per event")


if __name__ == "__main__":
    main()
