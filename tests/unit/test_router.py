"""The one record router (processors/router.py) and its two users, the processor and replay, agreeing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.contracts.registry import ContractRegistry
from floe_stream.processors.engine import Engine
from floe_stream.processors.router import REROUTED, is_rerouted, route_probe, route_update, tick_is_new
from floe_stream.replay.runner import ReplaySummary, evaluate
from floe_stream.runtime.app import load_registry
from floe_stream.runtime.processor import ProcessorService
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.commit import CatalogCommitEvent, IcebergSchema
from floe_stream.topics.decode import DecodeError
from floe_stream.topics.materialization import MaterializationEvent
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.probe import ProbeResult
from floe_stream.topics.tick import Tick
from tests.conftest import REPO

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
PARTITIONS = 3


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(
        kafka=KafkaSettings(topic_prefix="router.", partitions=PARTITIONS),
        contracts_dir=REPO / "tests" / "fixtures" / "contracts",
        health_port=-1,
        clock_skew_s=0,
    )


@pytest.fixture(scope="module")
def registry(settings: Settings) -> ContractRegistry:
    return load_registry(settings)


def mat(asset: str, at: datetime, event_id: str | None = None) -> bytes:
    return MaterializationEvent(event_id=event_id, asset=asset, materialized_at=at).model_dump_json().encode()


def ol(outputs: list[tuple[str, str]], inputs: list[tuple[str, str, dict[str, Any]]]) -> bytes:
    return orjson.dumps(
        {
            "eventType": "COMPLETE", "eventTime": T0.isoformat(), "producer": "https://example.com",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": "01890000-0000-7000-8000-000000000001"}, "job": {"namespace": "dbt", "name": "build"},
            "outputs": [{"namespace": ns, "name": n} for ns, n in outputs],
            "inputs": [{"namespace": ns, "name": n, "inputFacets": f} for ns, n, f in inputs],
        }
    )  # fmt: skip


def test_a_floe_materialization_routes_to_its_asset_with_a_stable_event_id(
    registry: ContractRegistry,
) -> None:
    ev, routed = route_update(TopicKey.MATERIALIZATIONS, mat("test.fast", T0), "t.m", 2, 41, registry)
    assert isinstance(ev, MaterializationEvent)
    [(asset, update)] = routed
    assert asset.asset_id == "test.fast"
    assert (update.asset_id, update.source, update.event_id, update.updated_at) == (
        "test.fast", "materialization", "t.m:2:41", T0,
    )  # fmt: skip
    _, own = route_update(TopicKey.MATERIALIZATIONS, mat("test.fast", T0, "e1"), "t.m", 2, 41, registry)
    assert own[0][1].event_id == "e1"


def test_an_unmonitored_asset_routes_nowhere_but_the_event_is_decoded(registry: ContractRegistry) -> None:
    ev, routed = route_update(TopicKey.MATERIALIZATIONS, mat("nobody.watches", T0), "t", 0, 0, registry)
    assert isinstance(ev, MaterializationEvent) and ev.asset == "nobody.watches"
    assert routed == []


def test_openlineage_outputs_resolve_by_their_first_monitored_identifier(registry: ContractRegistry) -> None:
    quality = {
        "dataQualityAssertions": {"assertions": [{"assertion": "not_null", "success": True, "column": "id"}]}
    }
    value = ol([("test", "fast"), ("other", "unknown")], [("test", "slow", quality)])
    _, routed = route_update(TopicKey.MATERIALIZATIONS, value, "t", 0, 0, registry)
    got = [(a.asset_id, u.source, u.quality_only) for a, u in routed]
    assert got == [("test.fast", "openlineage", False), ("test.slow", "openlineage", True)]


def test_a_catalog_commit_routes_to_its_table(registry: ContractRegistry) -> None:
    commit = CatalogCommitEvent(
        catalog="c", table="test.slow", snapshot_id=7, sequence_number=3, timestamp_ms=int(T0.timestamp() * 1000),
        operation="append", schema=IcebergSchema(fields=[]),
    )  # fmt: skip
    _, [(asset, update)] = route_update(
        TopicKey.CATALOG_COMMITS,
        commit.model_dump_json(by_alias=True).encode(),
        "t.c",
        0,
        9,
        registry,
    )
    assert (asset.asset_id, update.source, update.sequence, update.updated_at) == (
        "test.slow", "catalog_commit", 3, T0,
    )  # fmt: skip


def test_bad_input_raises_the_dead_letter_reason(registry: ContractRegistry) -> None:
    with pytest.raises(DecodeError, match="not JSON"):
        route_update(TopicKey.MATERIALIZATIONS, b"{broken", "t", 0, 0, registry)
    with pytest.raises(DecodeError, match="empty message"):
        route_update(TopicKey.CATALOG_COMMITS, b"", "t", 0, 0, registry)


def test_a_probe_result_is_applied_by_the_owning_partition_only(registry: ContractRegistry) -> None:
    value = ProbeResult(
        probe_id="p1", asset="test.fast", scheduled_at=T0, started_at=T0, duration_ms=1.0, ok=True,
        probe="http", target="http://x",
    ).model_dump_json().encode()  # fmt: skip
    own = partition_for("test.fast", PARTITIONS)
    assert route_probe(value, registry.get, own, PARTITIONS)[1] is registry.get("test.fast")
    assert route_probe(value, registry.get, (own + 1) % PARTITIONS, PARTITIONS)[1] is None


def test_tick_dedupe_is_per_partition_and_strictly_newer() -> None:
    assert tick_is_new(None, T0)
    assert tick_is_new(T0, T0 + timedelta(seconds=1))
    assert not tick_is_new(T0, T0)  # the same tick again (a second ticker, a re-delivery)
    assert not tick_is_new(T0, T0 - timedelta(seconds=1))  # an older tick


def test_rerouted_copies_are_recognised() -> None:
    assert is_rerouted([("x", b""), (REROUTED, b"test.fast")])
    assert not is_rerouted(None) and not is_rerouted([("x", b"")])


class _Capture:
    """The processor's producer, stubbed: keeps the check results handed to it."""

    def __init__(self) -> None:
        self.results: list[bytes] = []

    async def enqueue(self, records: Any, lanes: Any = None) -> list[Any]:
        for recs in (lanes or {}).values():
            self.results.extend(value for _, value, _ in recs)
        return []

    async def send_all(self, records: Any, lanes: Any = None) -> None:
        await self.enqueue(records, lanes)


def _timeline(svc: ProcessorService) -> list[tuple[TopicKey, ConsumerRecord[bytes, bytes]]]:
    """Materializations of both assets, then silence (test.fast's 2 s SLA breaches), every tick on every
    partition twice (a second ticker), the tick of second 3 missing on test.fast's partition."""
    out: list[tuple[TopicKey, ConsumerRecord[bytes, bytes]]] = []
    offsets: dict[tuple[str, int], int] = {}

    def rec(key: TopicKey, topic: str, p: int, at: datetime, value: bytes) -> None:
        off = offsets[(topic, p)] = offsets.get((topic, p), -1) + 1
        ms = int(at.timestamp() * 1000)
        out.append((key, ConsumerRecord(topic, p, off, ms, 0, None, value, None, 0, len(value), [])))

    for i, a in enumerate(("test.fast", "test.slow")):
        rec(TopicKey.MATERIALIZATIONS, svc.t_mat, partition_for(a, PARTITIONS), T0, mat(a, T0, f"m{i}"))
    fast = partition_for("test.fast", PARTITIONS)
    for k in range(1, 8):
        t = T0 + timedelta(seconds=k)
        for p in range(PARTITIONS):
            if k == 3 and p == fast:
                continue
            tick = Tick(tick_time=t, interval_s=1, ticker_id="t").model_dump_json().encode()
            rec(TopicKey.TICKS, svc.t_tick, p, t, tick)
            rec(TopicKey.TICKS, svc.t_tick, p, t, tick)
    return out


async def test_the_processor_and_replay_route_the_same_records_alike(settings: Settings) -> None:
    svc = ProcessorService(settings, load_registry(settings))
    svc.partitions = PARTITIONS
    svc.out_partitions = {svc.t_results: PARTITIONS, svc.t_viol: PARTITIONS, svc.t_dlq: PARTITIONS}
    producer = svc.batch_producer = _Capture()  # type: ignore[assignment]
    violations: list[str] = []
    svc.on_violation.append(lambda v: violations.append(v.violation_id))
    records = _timeline(svc)

    for _, r in records:  # in time order, one record per batch
        await svc.handle({TopicPartition(r.topic, r.partition): [r]})
    live = sorted((d["result_id"], d["status"]) for d in map(orjson.loads, producer.results))

    registry = load_registry(settings)
    summary = ReplaySummary()
    engine = Engine(clock_skew_s=settings.clock_skew_s, policy=settings.checks.policy())
    out = evaluate(records, registry, sorted(registry.assets(), key=lambda a: a.asset_id), engine, summary,
                   partitions=PARTITIONS)  # fmt: skip
    replayed = sorted((r.result_id, r.status.value) for r in out.check_results)

    assert live == replayed
    assert sorted(violations) == sorted(v.violation_id for v in out.violations)
    assert violations, "test.fast's silence breaches its 2 s SLA"
    assert summary.ticks == 7 and summary.updates == 2
    # test.fast breaches at its own partition's next tick (second 4), not at another partition's second 3
    breach = [r for r in out.check_results if r.asset == "test.fast" and r.status.value == "fail"]
    assert breach[0].source_event_id == f"tick:{(T0 + timedelta(seconds=4)).isoformat()}"
