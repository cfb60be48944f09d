"""The one pipeline (processors/pipeline.py) — route, evaluate, enrich, outputs per input record — used by the
processor and by replay alike; its router (processors/router.py); the processor's encoding of the outputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from floe_stream.contracts.registry import ContractRegistry
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import Outputs
from floe_stream.processors.router import REROUTED, is_rerouted, route_probe, route_update, tick_is_new
from floe_stream.processors.testing import InputRecord, Inputs, pipeline, run
from floe_stream.replay.runner import ReplaySummary, evaluate
from floe_stream.runtime.deployables.app import load_registry
from floe_stream.runtime.deployables.outputs import OutputEncoder
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.commit import CatalogCommitEvent, IcebergField, IcebergSchema
from floe_stream.topics.decode import DecodeError
from floe_stream.topics.enums import CheckType
from floe_stream.topics.materialization import MaterializationEvent, ObservedColumn
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.probe import ProbeResult
from floe_stream.topics.tick import Tick
from floe_stream.topics.violation import ResolvedData, ViolationData, decode_violation
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


def _timeline() -> list[tuple[TopicKey, InputRecord]]:
    """Materializations of both assets, then silence (test.fast's 2 s SLA breaches), every tick on every
    partition twice (a second ticker), the tick of second 3 missing on test.fast's partition."""
    inputs = Inputs(PARTITIONS, prefix="router.")
    out = [
        inputs(TopicKey.MATERIALIZATIONS, mat(a, T0, f"m{i}"), at=T0, key=a)
        for i, a in enumerate(("test.fast", "test.slow"))
    ]
    fast = partition_for("test.fast", PARTITIONS)
    for k in range(1, 8):
        t = T0 + timedelta(seconds=k)
        tick = Tick(tick_time=t, interval_s=1, ticker_id="t")
        for p in range(PARTITIONS):
            if k == 3 and p == fast:
                continue
            out.append(inputs(TopicKey.TICKS, tick, at=t, partition=p))
            out.append(inputs(TopicKey.TICKS, tick, at=t, partition=p))
    return out


def test_each_partition_applies_a_tick_once_and_an_asset_breaches_at_its_own_partitions_tick(
    registry: ContractRegistry,
) -> None:
    ticked: list[datetime] = []
    p = pipeline(registry, PARTITIONS, on_tick=lambda _, t: ticked.append(t))
    out = run(p, _timeline())
    assert out.violations, "test.fast's silence breaches its 2 s SLA"
    assert len(ticked) == 3 * 7 - 1 and len(set(ticked)) == 7  # the duplicates had no effect
    assert p.applied["updates"] == 2
    # test.fast breaches at its own partition's next tick (second 4), not at another partition's second 3
    breach = [r for r in out.check_results if r.asset == "test.fast" and r.status.value == "fail"]
    assert breach[0].source_event_id == f"tick:{(T0 + timedelta(seconds=4)).isoformat()}"
    assert not out.dead_letters and not out.forwards


def test_replay_evaluates_the_records_as_the_processor_does(
    settings: Settings, registry: ContractRegistry
) -> None:
    """Replay feeds the same pipeline (no forwarding: it reads every partition): the same results and
    violations as the processor's for the same records."""
    records = _timeline()
    live = run(pipeline(registry, PARTITIONS), records)
    summary = ReplaySummary()
    engine = Engine(clock_skew_s=settings.clock_skew_s, policy=settings.checks.policy())
    assets = sorted(registry.assets(), key=lambda a: a.asset_id)
    replayed = evaluate(
        [(k, _consumer_record(r)) for k, r in records],
        registry,
        assets,
        engine,
        summary,
        partitions=PARTITIONS,
    )
    assert sorted((r.result_id, r.status) for r in live.check_results) == sorted(
        (r.result_id, r.status) for r in replayed.check_results
    )
    assert sorted(v.violation_id for v in live.violations) == sorted(
        v.violation_id for v in replayed.violations
    )
    assert live.violations
    assert summary.ticks == 7 and summary.updates == 2


def _consumer_record(r: InputRecord) -> ConsumerRecord[bytes, bytes]:
    size = len(r.value or b"")
    return ConsumerRecord(
        r.topic, r.partition, r.offset, r.timestamp, 0, r.key, r.value, None, 0, size, r.headers
    )


def test_bad_input_is_dead_lettered_with_its_reason_and_the_stream_goes_on(
    registry: ContractRegistry,
) -> None:
    inputs = Inputs()
    big = mat("test.fast", T0) + b" " * 2000
    out = run(
        pipeline(registry, max_record_bytes=1024),
        [
            inputs(TopicKey.MATERIALIZATIONS, b"{broken", at=T0),
            inputs(TopicKey.TICKS, b"", at=T0),
            inputs(TopicKey.MATERIALIZATIONS, big, at=T0),
            inputs(TopicKey.MATERIALIZATIONS, mat("test.fast", T0, "ok"), at=T0),
        ],
    )
    reasons = [d.reason for d in out.dead_letters]
    assert reasons[0].startswith("not JSON") and reasons[1].startswith("empty message")
    assert reasons[2] == f"record too large: {len(big)} bytes > kafka.max_record_bytes=1024"
    assert [d.record.offset for d in out.dead_letters] == [0, 0, 1]
    assert {r.source_event_id for r in out.check_results} == {"ok"}  # the good one after them


class _Raising(Engine):
    def update_into(self, *args: Any, **kw: Any) -> None:
        raise RuntimeError("boom")


def test_a_bug_on_one_record_dead_letters_it_as_an_internal_error(registry: ContractRegistry) -> None:
    inputs = Inputs()
    from floe_stream.processors.pipeline import Pipeline

    out = run(
        Pipeline(_Raising(), registry), [inputs(TopicKey.MATERIALIZATIONS, mat("test.fast", T0), at=T0)]
    )
    assert [d.reason for d in out.dead_letters] == ["internal error: RuntimeError: boom"]


def test_an_event_on_another_assets_partition_is_forwarded_once_and_evaluated_by_its_owner(
    registry: ContractRegistry,
) -> None:
    own = partition_for("test.fast", PARTITIONS)
    other = (own + 1) % PARTITIONS
    inputs = Inputs(PARTITIONS)
    original = inputs(TopicKey.MATERIALIZATIONS, mat("test.fast", T0, "e1"), at=T0, partition=other)
    live = pipeline(registry, PARTITIONS)
    out = run(live, [original])
    assert [(f.partition, f.asset_id) for f in out.forwards] == [(own, "test.fast")]
    assert not out.check_results  # not evaluated where it arrived
    copy_headers = [(REROUTED, b"test.fast")]
    copy = inputs(
        TopicKey.MATERIALIZATIONS, mat("test.fast", T0, "e1"), at=T0, partition=own, headers=copy_headers
    )
    astray = inputs(
        TopicKey.MATERIALIZATIONS, mat("test.fast", T0, "e1"), at=T0, partition=other, headers=copy_headers
    )
    out = run(live, [copy, astray])
    assert {r.source_event_id for r in out.check_results} == {
        "e1"
    } and not out.forwards  # never forwarded twice
    # replay reads every partition: the original is evaluated where it is, the copies are skipped
    replayed = run(pipeline(registry, PARTITIONS, reroute=False), [original, copy])
    assert not replayed.forwards
    assert {r.source_event_id for r in replayed.check_results} == {"e1"}
    assert len(replayed.check_results) == len(out.check_results)


def test_state_changes_are_taken_at_commit_with_each_fed_partitions_checkpoint(
    registry: ContractRegistry,
) -> None:
    inputs = Inputs(PARTITIONS)
    p = pipeline(registry, PARTITIONS)
    own = partition_for("test.fast", PARTITIONS)
    tick = Tick(tick_time=T0 + timedelta(seconds=1), interval_s=1, ticker_id="t")
    run(p, [
        inputs(TopicKey.MATERIALIZATIONS, mat("test.fast", T0), at=T0, key="test.fast"),
        inputs(TopicKey.MATERIALIZATIONS, mat("test.fast", T0), at=T0, key="test.fast"),
        inputs(TopicKey.TICKS, tick, at=T0, partition=own),
    ])  # fmt: skip
    changes = p.take_changes()
    assert [s.asset_id for s in changes.states] == ["test.fast"] and not changes.retired
    [cp] = changes.checkpoints
    assert (cp.partition, cp.offsets, cp.last_tick) == (
        own, {"materializations": 1, "ticks": 0}, tick.tick_time,
    )  # fmt: skip
    assert p.done(own, "materializations") == 1 and p.owns(own)
    assert not p.take_changes()  # nothing new since


def test_a_retired_contract_resolves_open_episodes_and_leaves_a_tombstone(registry: ContractRegistry) -> None:
    inputs = Inputs()
    p = pipeline(registry)
    drifted = CatalogCommitEvent(
        catalog="c", table="test.slow", snapshot_id=1, sequence_number=1, timestamp_ms=int(T0.timestamp() * 1000),
        operation="append", schema=IcebergSchema(fields=[IcebergField(id=1, name="id", required=True, type="long"),
                                                        IcebergField(id=9, name="x", type="int")]),
    )  # fmt: skip
    opened = run(p, [inputs(TopicKey.CATALOG_COMMITS, drifted, at=T0)])
    assert [v.violation_type for v in opened.violations] == [CheckType.SCHEMA_DRIFT]
    p.take_changes()
    asset = registry.get("test.slow")
    assert asset is not None
    out = Outputs()
    assert not p.retire(asset, T0, lambda _, o: out.extend(o))  # still monitored: nothing done
    gone = ContractRegistry()
    p.registry = gone
    assert p.retire(asset, T0 + timedelta(minutes=1), lambda _, o: out.extend(o))
    assert [type(v) for v in out.violations] == [ResolvedData]
    assert p.take_changes().retired == ["test.slow"] and "test.slow" not in p.asset_ids()


def test_the_processor_encodes_each_output_on_its_topic_and_partition(registry: ContractRegistry) -> None:
    inputs = Inputs(PARTITIONS)
    enc = OutputEncoder("t.", traceparent=lambda _: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    enc.partitions = {enc.t_results: 2, enc.t_viol: 2, enc.t_dlq: 2}
    seen: list[str] = []
    enc.on_violation.append(lambda v: seen.append(v.violation_id))
    p = pipeline(registry, PARTITIONS)
    own = partition_for("test.fast", PARTITIONS)
    drift = MaterializationEvent(
        event_id="d1", asset="test.fast", materialized_at=T0, columns=[ObservedColumn(name="id", type="long")]
    )
    recs = [
        inputs(TopicKey.MATERIALIZATIONS, drift, at=T0, partition=own),
        inputs(
            TopicKey.MATERIALIZATIONS, mat("test.fast", T0, "e2"), at=T0, partition=(own + 1) % PARTITIONS
        ),
        inputs(TopicKey.MATERIALIZATIONS, b"{broken", at=T0, partition=1, headers=[("x", b"1")]),
    ]
    for kind, rec in recs:
        p.feed(kind, rec.partition, [rec], enc.emit)
    buf = enc.take()
    results = [(t, part, orjson.loads(v)["asset"]) for (t, part), rs in buf.lanes.items() for _, v, _ in rs]
    assert results and all(
        t == "t.check-results" and part == partition_for("test.fast", 2) for t, part, _ in results
    )
    by_topic = {r.topic: r for r in buf.records}
    viols = [r for r in buf.records if r.topic == "t.violations"]
    events = [decode_violation(dict(v.headers), v.key, v.value) for v in viols]
    assert events and all(isinstance(e.data, ViolationData) for e in events)
    assert seen == [e.data.violation_id for e in events]  # `floe dev` sees each one written
    for v in viols:
        assert dict(v.headers)["traceparent"].startswith(b"00-0af76519")
        assert v.partition == partition_for("test.fast", 2)
    fwd = by_topic["materializations"]
    assert (fwd.partition, fwd.key, dict(fwd.headers)[REROUTED]) == (own, b"test.fast", b"test.fast")
    dlq = by_topic["t.dlq"]
    h = dict(dlq.headers)
    assert h["floe-dlq-reason"].startswith(b"not JSON") and h["floe-dlq-offset"] == b"0" and h["x"] == b"1"
    assert dlq.value == b"{broken" and dlq.partition == 1
    assert not enc.take()  # taken: the buffer starts empty
