"""Bounds on input (issue 20): strings at decode, times and sequences, findings and state, the sink runtime's
containment. The end-to-end proofs are tests/integration/test_hostile_input.py; these pin the rules."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.contracts.models import ColumnSpec, MonitoredAsset
from floe_stream.processors.bounds import RejectedInput, admit_probe, admit_update, bound_findings
from floe_stream.processors.checks.drift import ADDED_ONE_BY_ONE, diff_schema, normalize_physical
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate, Evaluation, Finding
from floe_stream.runtime.framework.kafka import OutRecord
from floe_stream.runtime.framework.sink_runtime import Input, SinkBatch, SinkContext, SinkRunner
from floe_stream.settings import Settings
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics import ObservedColumn
from floe_stream.topics.bounds import IDENTIFIER_PATTERN, TEXT_PATTERN, InputLimits, as_text
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.decode import DecodeError, decode_commit, decode_materialization
from floe_stream.topics.enums import CheckStatus, CheckType, Severity
from floe_stream.topics.materialization import MaterializationEvent, OpenLineageRunEvent
from floe_stream.topics.probe import ProbeResult

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def ol(namespace: str, name: str, fields: list[dict[str, Any]] | None = None) -> bytes:
    facets = {"schema": {"fields": fields}} if fields is not None else {}
    return orjson.dumps({
        "eventType": "COMPLETE", "eventTime": T0.isoformat(), "producer": "https://github.com/OpenLineage/x",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "0194c8d2-6f0e-7c3a-9d1e-2b3c4d5e6f70"}, "job": {"namespace": "jobs", "name": "dbt.run"},
        "outputs": [{"namespace": namespace, "name": name, "facets": facets}],
    })  # fmt: skip


def mat(**fields: Any) -> bytes:
    return orjson.dumps({"asset": "sales.orders", "materialized_at": T0.isoformat(), **fields})


# --- strings at decode ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("postgres://db.internal:5432", "analytics.public.orders"),
        ("duckdb:///srv/data/warehouse.duckdb", "main.orders"),
        ("s3://bucket", "raw/My Folder/part-0000.snappy.parquet"),
        ("bigquery", "project-1.dataset.table$20260101"),
        ("snowflake://org-account", 'DB.SCHEMA."Order Lines"'),
        ("kafka://broker-1:9092,broker-2:9092", "orders-v2"),
        ("abfss://container@account.dfs.core.windows.net", "/delta/orders"),
        ("postgres://db:5432", "kunden.übersicht"),
        ("hive://metastore:9083", "販売.注文"),
        ("iceberg", "ns.sub.table"),
    ],
)
def test_identifiers_real_emitters_send_are_accepted(namespace: str, name: str) -> None:
    ev = decode_materialization(ol(namespace, name, [{"name": "Revenue ($)", "type": "DECIMAL(10, 2)"}]))
    assert isinstance(ev, OpenLineageRunEvent) and ev.outputs[0].namespace == namespace


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("x\x00y", "NUL"), ("x\x1b[31my", "ESC"), ("x\r\ny", "CR/LF"), ("x\ty", "TAB"), ("x\x85y", "C1 NEL"),
        ("x\u202ey", "bidi override"), ("x\u2066y", "bidi isolate"), ("x\u200by", "zero-width space"),
        ("x\ufeffy", "BOM"), ("x\u2028y", "line separator"), ("a" * 1025, "too long"),
    ],
)  # fmt: skip
def test_identifiers_refuse_control_bidi_and_invisible_characters_and_length(bad: str, what: str) -> None:
    for value in (mat(asset=bad), mat(columns=[{"name": bad, "type": "int"}]), ol("pg", bad)):
        with pytest.raises(DecodeError) as err:
            decode_materialization(value)
        assert err.value.reason.startswith("invalid "), what


def test_text_allows_tabs_and_line_breaks_but_no_nul_and_is_capped() -> None:
    ok = decode_materialization(mat(quality=[{"name": "q", "expected": "line 1\n\tline 2"}]))
    assert isinstance(ok, MaterializationEvent)
    for bad in ("a\x00b", "x" * 8193):
        with pytest.raises(DecodeError):
            decode_materialization(mat(quality=[{"name": "q", "expected": bad}]))


def test_the_rule_is_named_in_the_reason_not_the_pattern_and_input_in_it_is_escaped() -> None:
    with pytest.raises(DecodeError) as err:
        decode_materialization(mat(labels={"k\r\n": "v"}))
    assert err.value.reason == (
        "invalid MaterializationEvent: labels.k\\r\\n.[key]: must be printable text (no control, line-break, "
        "bidi or zero-width character; at most 1024 characters)"
    )


def test_values_read_from_openlineage_facets_are_bounded_too() -> None:
    from floe_stream.processors.normalize import from_openlineage

    ev = decode_materialization(ol("pg", "orders", [{"name": "x\x00y", "type": "int"}]))
    assert isinstance(ev, OpenLineageRunEvent)
    with pytest.raises(DecodeError, match=r"^invalid OpenLineage facet: name: must be printable"):
        from_openlineage(ev)


def test_numbers_that_do_not_fit_are_refused() -> None:
    too_big = mat(row_count=1).replace(b'"row_count":1', b'"row_count":' + str(2**70).encode())
    for value in (too_big, mat(quality=[{"name": "q", "observed_value": "NaN"}])):
        with pytest.raises(DecodeError):
            decode_materialization(value)
    commit = {"table": "t", "snapshot_id": 1, "sequence_number": 1, "timestamp_ms": 10**18, "operation": "append",
              "schema": {"type": "struct", "fields": []}}  # fmt: skip
    with pytest.raises(DecodeError, match="timestamp_ms"):
        decode_commit(orjson.dumps(commit))


def test_the_python_replacement_agrees_with_the_wire_rule() -> None:
    text = "".join(chr(c) for c in range(0x3000))
    assert re.fullmatch(TEXT_PATTERN, as_text(text, 100_000))
    assert re.fullmatch(IDENTIFIER_PATTERN, "postgres://db:5432/orders übersicht ($)")


# --- regexes on input are linear -----------------------------------------------------------------------------
def test_type_names_are_parsed_without_backtracking() -> None:
    # the old pattern ^([a-z_ ]+?)\s*\(.*\)$ took ~60 s on the first of these (quadratic); these return at once
    assert normalize_physical("x" + " " * 250_000 + "x") is None
    assert normalize_physical("varchar" + " " * 250_000 + "(1") is None
    assert normalize_physical("decimal(" + "1" * 250_000 + ",") is None
    assert [normalize_physical(t) for t in ("VARCHAR (10)", "character varying(255)", "fixed(16)", "numeric(5, 1)")] == [
        "string", "string", "binary", "decimal(5,1)"
    ]  # fmt: skip


# --- findings and state --------------------------------------------------------------------------------------
def asset(columns: int = 2) -> MonitoredAsset:
    return MonitoredAsset.model_validate({
        "asset_id": "sales.orders", "contract_id": "c1", "contract_name": "sales", "contract_version": "1",
        "table": "orders",
        "columns": [ColumnSpec(name="id", physical_type="long"), ColumnSpec(name="amount", physical_type="double")][:columns],
    })  # fmt: skip


def cols(*names: str) -> tuple[ObservedColumn, ...]:
    """The contract's two columns as declared, then ``names`` (added, int)."""
    declared = (ObservedColumn(name="id", type="long"), ObservedColumn(name="amount", type="double"))
    return declared + tuple(ObservedColumn(name=n, type="int") for n in names)


def test_many_added_columns_are_one_finding_with_a_sample() -> None:
    a = asset()
    few = diff_schema(a.columns, cols(*(f"c{i}" for i in range(ADDED_ONE_BY_ONE))))
    assert len(few) == ADDED_ONE_BY_ONE  # one each, as before
    (one,) = diff_schema(a.columns, cols(*(f"c{i}" for i in range(30_000))))
    assert one.key == "schema_drift:column_added:*" and one.severity == Severity.WARNING
    assert one.message.startswith(
        "30000 columns are in the table but not in the contract: c0 (int), c1 (int)"
    )
    assert one.message.endswith("… (+29990 more)") and len(one.message) < 1200


def evaluation(n: int, failing: int) -> Evaluation:
    findings = tuple(
        Finding(f"quality/r{i:03d}", Severity.ERROR if i < failing else None, f"rule {i}") for i in range(n)
    )
    return Evaluation(CheckType.QUALITY, CheckStatus.FAIL, findings)


def test_findings_beyond_the_limit_are_one_finding_and_the_failing_ones_are_kept() -> None:
    bounded = bound_findings(evaluation(500, failing=60), 50)
    assert len(bounded.findings) == 50
    kept, folded = bounded.findings[:-1], bounded.findings[-1]
    assert all(f.severity == Severity.ERROR for f in kept)
    assert folded.key == "quality:+more" and folded.severity == Severity.ERROR
    assert folded.message.startswith("451 more quality findings (11 failing) beyond limits.max_findings (50)")
    assert bound_findings(evaluation(500, failing=60), 50) == bounded  # the same ones every time
    small = evaluation(3, 1)
    assert bound_findings(small, 50) is small


def test_one_record_makes_a_bounded_number_of_violations_and_a_small_state() -> None:
    eng = Engine(limits=InputLimits(max_findings=20, max_tracked_keys=40))
    a = asset()
    quality = tuple(
        {"name": f"producer-check-{i}", "passed": False} for i in range(5_000)
    )  # every one failing, none in the contract
    ev = MaterializationEvent.model_validate(
        {"asset": "sales.orders", "materialized_at": T0, "quality": quality, "columns": [
            {"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
            *({"name": f"c{i}", "type": "int"} for i in range(5_000))]}
    )  # fmt: skip
    from floe_stream.processors.normalize import update_of_materialization

    out = eng.apply_update(a, update_of_materialization(ev, "e1"), T0)
    assert len(out.violations) <= 2 * 20
    assert max(len(r.to_json()) for r in out.check_results) < 8_000
    state = eng.states["sales.orders"]
    assert len(state.model_dump_json()) < 40_000
    # rotating sets of names, event after event: the state stays bounded
    for k in range(30):
        batch = tuple({"name": f"rot-{k}-{i}", "passed": False} for i in range(15))
        ev = MaterializationEvent.model_validate(
            {"asset": "sales.orders", "materialized_at": T0, "quality": batch}
        )
        eng.apply_update(a, update_of_materialization(ev, f"r{k}"), T0 + timedelta(seconds=k))
        st = eng.states["sales.orders"]
        assert len(st.open.keys() | st.tracks.keys()) <= 40


# --- time and sequence ---------------------------------------------------------------------------------------
def update(at: datetime, **kw: Any) -> AssetUpdate:
    return AssetUpdate("sales.orders", kw.pop("source", "materialization"), "e", at, **kw)


def test_times_beyond_now_plus_the_tolerance_or_implausibly_old_are_refused() -> None:
    lim = InputLimits(max_future_s=300, max_past_days=3650)
    admit_update(update(T0 + timedelta(seconds=299)), None, T0, lim)
    admit_update(update(T0 - timedelta(days=3649)), None, T0, lim)
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    cases = {
        "implausible time: materialized_at 9999-12-31T23:59:59+00:00 is later": update(far),
        "implausible time: eventTime 1970-01-01T00:00:00+00:00 is earlier": update(
            datetime(1970, 1, 1, tzinfo=UTC), source="openlineage"
        ),
        "implausible time: data_timestamp 9999": update(T0, data_timestamp=far),
        "implausible time: oldest_data_timestamp 9999": update(T0, oldest_data_time=far),
    }
    for prefix, u in cases.items():
        with pytest.raises(RejectedInput) as err:
            admit_update(u, None, T0, lim)
        assert err.value.reason.startswith(prefix)
    # data may be old: only the event's own time has a floor
    admit_update(update(T0, data_timestamp=datetime(1990, 1, 1, tzinfo=UTC)), None, T0, lim)


def test_a_sequence_jump_is_refused_and_the_engine_changes_nothing() -> None:
    lim = InputLimits(max_sequence_jump=1000)
    admit_update(update(T0, sequence=2**62), None, T0, lim)  # first sight: nothing to compare with
    admit_update(update(T0, sequence=1005), 5, T0, lim)
    with pytest.raises(RejectedInput, match=r"^sequence jump: sequence_number 1006 is more than"):
        admit_update(update(T0, sequence=1006), 5, T0, lim)
    eng = Engine(limits=lim)
    a = asset()
    eng.apply_update(a, update(T0, sequence=5, source="catalog_commit"), T0)
    before = eng.states["sales.orders"]
    with pytest.raises(RejectedInput):
        eng.apply_update(a, update(T0, sequence=2**62, source="catalog_commit"), T0)
    assert eng.states["sales.orders"] is before


def test_probe_times_are_bounded_like_update_times() -> None:
    def probe(at: datetime) -> ProbeResult:
        return ProbeResult(probe_id="p", asset="a", scheduled_at=at, started_at=at, duration_ms=1, ok=True,
                           probe="tcp", target="db:5432")  # fmt: skip

    admit_probe(probe(T0), T0, InputLimits())
    with pytest.raises(RejectedInput, match=r"^implausible time: scheduled_at 9999"):
        admit_probe(probe(datetime(9999, 1, 1, tzinfo=UTC)), T0, InputLimits())


# --- the sink runtime contains a record it cannot write ------------------------------------------------------
class PoisonSink:
    """Its destination refuses a whole batch that holds a 'poison' record (as PostgreSQL refuses a NUL)."""

    name = "sink-poison"
    record_spans = False
    collect_s = 0.0
    outputs: tuple[TopicKey, ...] = ()

    def __init__(self) -> None:
        self.written: list[str] = []

    def inputs(self) -> list[Input]:
        return [Input("results", TopicKey.CHECK_RESULTS, lambda h, k, v: (v or b"").decode())]

    async def start(self, ctx: SinkContext) -> None: ...

    async def write(self, batch: SinkBatch) -> None:
        if any(r.value == "poison" for r in batch.records):
            raise ValueError("invalid byte sequence for encoding UTF8: 0x00")
        self.written.extend(r.value for r in batch.records)

    async def flush(self) -> None: ...

    async def close(self) -> None: ...

    async def readiness(self) -> dict[str, bool]:
        return {}

    def health_details(self) -> dict[str, Any]:
        return {}

    def stall_allowance_s(self) -> float:
        return 0.0


async def test_a_record_the_destination_refuses_is_dead_lettered_and_the_rest_written() -> None:
    s = Settings()
    sink = PoisonSink()
    runner = SinkRunner(s, sink, instruments())
    produced: list[OutRecord] = []

    async def produce(records: Sequence[OutRecord]) -> None:
        produced.extend(records)

    runner.produce = produce  # type: ignore[method-assign]
    topic = topic_name(s.kafka.topic_prefix, TopicKey.CHECK_RESULTS)
    recs = [
        ConsumerRecord(topic, 0, off, 0, 0, b"k", val, None, 1, 1, [])
        for off, val in enumerate([b"a", b"poison", b"b"])
    ]
    await runner.handle({TopicPartition(topic, 0): recs})  # does not raise: the sink goes on
    assert sink.written == ["a", "b"]
    assert [(dict(r.headers)["floe-dlq-offset"], dict(r.headers)["floe-dlq-reason"]) for r in produced] == [
        (b"1", b"write failed: ValueError: invalid byte sequence for encoding UTF8: 0x00")
    ]
    await runner.consumer.stop()
    assert runner.producer is not None
    await runner.producer.stop()


# --- the net under the bounds: outputs that would not fit a record ------------------------------------------
def test_an_input_whose_outputs_would_not_fit_is_dead_lettered_and_its_state_changes_undone() -> None:
    from floe_stream.contracts.models import FreshnessSla, LoadedContract
    from floe_stream.contracts.registry import ContractRegistry
    from floe_stream.processors.bounds import OutputTooLarge
    from floe_stream.processors.model import Outputs, Record
    from floe_stream.processors.testing import Inputs, pipeline
    from floe_stream.topics.tick import Tick

    a = asset().model_copy(update={"freshness": FreshnessSla(threshold_s=60, element="orders.updated_at")})
    registry = ContractRegistry(
        [
            LoadedContract(
                contract_id="c1", name="sales", version="1", status="active", source="t", assets=(a,)
            )
        ]
    )
    p = pipeline(registry)
    inputs = Inputs()
    emitted: list[tuple[Record | None, Outputs]] = []

    def emit(rec: Record | None, out: Outputs) -> None:  # refuses any violation, as a too small record size
        if out.violations:
            raise OutputTooLarge("outputs too large: a violation would be 2000000 bytes")
        emitted.append((rec, out))

    ok = MaterializationEvent(asset="sales.orders", event_id="ok", materialized_at=T0, columns=list(cols()))
    kind, rec = inputs(TopicKey.MATERIALIZATIONS, ok, at=T0, key="sales.orders")
    p.feed(kind, 0, [rec], emit)
    before = p.engine.states["sales.orders"]
    dropped = MaterializationEvent(
        asset="sales.orders", event_id="drop", materialized_at=T0, columns=list(cols())[:1]
    )
    kind, rec = inputs(TopicKey.MATERIALIZATIONS, dropped, at=T0 + timedelta(seconds=1), key="sales.orders")
    p.feed(kind, 0, [rec], emit)
    (_, refused) = emitted[-1]
    assert [d.reason for d in refused.dead_letters] == [
        "outputs too large: a violation would be 2000000 bytes"
    ]
    assert refused.check_results == [] and p.engine.states["sales.orders"] is before  # nothing happened
    # a tick is never dead-lettered: what fits is written, the rest dropped
    tick = Tick(tick_time=T0 + timedelta(days=1), interval_s=10, ticker_id="t")
    kind, rec = inputs(TopicKey.TICKS, tick, at=T0 + timedelta(days=1))
    p.feed(kind, 0, [rec], emit)
    ticked = [o for r, o in emitted if r is rec]
    assert [r.status for o in ticked for r in o.check_results] == [CheckStatus.FAIL]  # stale: a breach
    assert not any(o.dead_letters or o.violations for o in ticked)  # its violation dropped, nothing refused


def test_an_input_whose_state_would_not_fit_the_changelog_is_dead_lettered_and_undone() -> None:
    """An asset with many finding keys has its state measured after each update (processors/pipeline.py): the
    update that would make it too large for a changelog record is refused, the others are written."""
    from floe_stream.contracts.models import FreshnessSla, LoadedContract
    from floe_stream.contracts.registry import ContractRegistry
    from floe_stream.processors.model import AssetState, KeyTrack, Outputs, Record
    from floe_stream.processors.testing import Inputs, pipeline

    a = asset().model_copy(update={"freshness": FreshnessSla(threshold_s=60)})
    registry = ContractRegistry(
        [
            LoadedContract(
                contract_id="c1", name="sales", version="1", status="active", source="t", assets=(a,)
            )
        ]
    )
    p = pipeline(registry)
    inputs = Inputs()
    emitted: list[tuple[Record | None, Outputs]] = []
    tracks = {f"drift/col_{i}": KeyTrack(flips=[T0]) for i in range(40)}  # more keys than are left unmeasured
    p.engine.states["sales.orders"] = AssetState(asset_id="sales.orders", watch_since=T0, tracks=tracks)

    def feed(event_id: str, at: datetime) -> Outputs:
        ev = MaterializationEvent(asset="sales.orders", event_id=event_id, materialized_at=at)
        kind, rec = inputs(TopicKey.MATERIALIZATIONS, ev, at=at, key="sales.orders")
        p.feed(kind, 0, [rec], lambda r, o: emitted.append((r, o)))
        return emitted[-1][1]

    assert feed("e1", T0).check_results  # measured: fits
    size = len(p.engine.states["sales.orders"].model_dump_json())
    p.max_record_bytes = size + 500
    assert feed("e2", T0 + timedelta(seconds=1)).check_results  # same mappings, same size: written
    before = p.engine.states["sales.orders"]
    refused = feed("x" * 1000, T0 + timedelta(seconds=2))  # same mappings, ~1,000 bytes more
    [dead] = refused.dead_letters
    assert dead.reason.startswith("outputs too large: the state of sales.orders would be ")
    assert dead.reason.endswith(f"bytes > kafka.max_record_bytes={size + 500}")
    assert refused.check_results == [] and p.engine.states["sales.orders"] is before  # nothing happened
    # measured in bytes, as the changelog writes it: 300 characters of 3 bytes each are 900 bytes, not 300
    wide = feed("\u20ac" * 300, T0 + timedelta(seconds=3))
    assert [d.reason.split(" would be ")[0] for d in wide.dead_letters] == [
        "outputs too large: the state of sales.orders"
    ]
    assert p.engine.states["sales.orders"] is before


# --- the same rules for what does not come through a wire model (contract identifiers and text) --------------
@pytest.mark.parametrize(
    "value",
    ["sales.orders", "postgres://db:5432", "販売.注文", 'DB."Order Lines"', "x" * 1024, "a\tb", "a\r\nb", "a\x00b",
     "e\x1b[2J", "bidi\u202e", "zw\u200bsp", "\x85nel", "x" * 1025],
)  # fmt: skip
def test_identifier_and_text_problems_judge_as_the_wire_models_do(value: str) -> None:
    from pydantic import TypeAdapter, ValidationError

    from floe_stream.topics.bounds import Identifier, identifier_problem, text_problem

    try:
        TypeAdapter(Identifier).validate_python(value)
        wire_ok = True
    except ValidationError:
        wire_ok = False
    assert (identifier_problem(value) is None) == wire_ok
    assert (text_problem(value) is None) == bool(re.fullmatch(TEXT_PATTERN, value, re.DOTALL))
    for problem in (identifier_problem(value), text_problem(value)):
        assert problem is None or ("\x00" not in problem and "\x1b" not in problem and len(problem) < 200)


def test_an_asset_state_of_long_keys_stays_near_state_bytes() -> None:
    """Keys of 1,000 characters, fewer than limits.max_tracked_keys: the weight decides what is kept."""
    from floe_stream.processors.episodes import STATE_BYTES
    from floe_stream.processors.normalize import update_of_materialization

    eng, a = Engine(), asset()
    resolved = []
    for k in range(12):
        batch = tuple({"name": f"rot-{k}-{i}-".ljust(1000, "x"), "passed": False} for i in range(10))
        ev = MaterializationEvent.model_validate(
            {"asset": "sales.orders", "materialized_at": T0, "quality": batch}
        )
        out = eng.apply_update(a, update_of_materialization(ev, f"r{k}"), T0 + timedelta(seconds=k))
        resolved += [v for v in out.violations if "KiB of episodes open" in v.message]
        st = eng.states["sales.orders"]
        assert len(st.open.keys() | st.tracks.keys()) < InputLimits().max_tracked_keys
        assert len(st.model_dump_json()) <= STATE_BYTES * 1.1
    assert resolved  # the oldest episodes were resolved to keep the state small
