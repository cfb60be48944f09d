"""The processor's fast paths are exact: each shortcut gives what the general code gives. No broker.

* a check result built without validation equals the validated model, and its orjson bytes are the
  bytes of ``model_dump_json``;
* ``evolve`` equals ``model_copy(update=…)``;
* the violation CloudEvent built with orjson parses (with the CloudEvents SDK) to the event the SDK's
  own Kafka binding writes;
* skipping "settled" keys in the episode machine changes no output and no state, over random histories;
* the violations, resolutions, open episodes and key tracks the episode machine builds without validation
  equal the validated models (fields, fields set and JSON bytes);
* on the rest of a drift event's path: a violation's data written by orjson is ``model_dump_json``'s bytes,
  the enriched violation (``evolve``) equals the validated one, the drift check's positionally built
  evaluation (from a prepared, bounded contract schema) equals the keyword-built one.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from floe_stream.contracts.models import FreshnessSla, MonitoredAsset
from floe_stream.processors import episodes
from floe_stream.processors.engine import Engine
from floe_stream.processors.episodes import apply_evaluation, check_result
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.processors.policy import CheckPolicy
from floe_stream.topics import CheckResult, CheckStatus, CheckType, ResolvedData, Severity, ViolationData
from floe_stream.topics.base import WIRE_UTC
from floe_stream.topics.violation import decode_violation, encode_violation, encode_violation_sdk

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def asset() -> MonitoredAsset:
    return MonitoredAsset.model_validate(
        {
            "asset_id": "sales.orders",
            "contract_id": "c1",
            "contract_name": "sales-orders",
            "contract_version": "1.0.0",
            "table": "orders",
            "freshness": FreshnessSla(threshold_s=3600),
        }
    )


@pytest.mark.parametrize(
    ("status", "severity", "metric", "now", "trigger"),
    [
        (CheckStatus.PASS, None, 12.5, T0, "event"),
        (CheckStatus.FAIL, Severity.ERROR, 7200.0, T0.replace(microsecond=123456), "tick"),
        (CheckStatus.SKIPPED, None, None, T0 + timedelta(microseconds=1), "replay"),
        (CheckStatus.FAIL, Severity.CRITICAL, 0.0, datetime(2026, 1, 1, 3, tzinfo=UTC), "event"),
    ],
)
def test_unvalidated_check_result_equals_the_validated_one(
    status: CheckStatus, severity: Severity | None, metric: float | None, now: datetime, trigger: str
) -> None:
    ev = Evaluation(
        check_type=CheckType.FRESHNESS,
        status=status,
        severity=severity,
        metric=metric,
        sla_consumed=None if metric is None else round(metric / 3600, 4),
        expected="age <= 1h00m",
        actual="age 12s",
        message='with "quotes", ünïcode and \\ backslashes',
    )
    ctx = EvalContext(now=now, trigger=trigger)  # type: ignore[arg-type]
    fast = check_result(asset(), ev, ctx, "evt-1")
    slow = CheckResult.model_validate(fast.model_dump())
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.to_json() == slow.model_dump_json().encode()
    assert CheckResult.model_validate_json(fast.to_json()) == slow


def test_result_id_is_the_stable_id_of_asset_check_and_source_event() -> None:
    from floe_stream.processors.ids import stable_id

    ev = Evaluation(check_type=CheckType.SCHEMA_DRIFT, status=CheckStatus.PASS)
    r = check_result(asset(), ev, EvalContext(now=T0), "evt-9")
    assert r.result_id == stable_id("result", "sales.orders", CheckType.SCHEMA_DRIFT, "evt-9")


def test_evolve_equals_model_copy() -> None:
    st = AssetState(asset_id="a", watch_since=T0, last_event_id="e0")
    changes = {"last_update_at": T0 + timedelta(seconds=5), "last_event_id": "e1", "last_sequence": 3}
    fast, slow = st.evolve(**changes), st.model_copy(update=changes)
    validated = AssetState.model_validate({**st.model_dump(), **changes})
    assert fast == slow == validated
    assert fast.model_dump_json() == slow.model_dump_json() == validated.model_dump_json()
    at, event = changes["last_update_at"], changes["last_event_id"]
    assert st.with_update(at, event) == st.evolve(last_update_at=at, last_event_id=event)  # type: ignore[arg-type]
    assert st.last_event_id == "e0"  # the original is untouched


def _violation() -> ViolationData:
    return ViolationData(
        violation_id="v1",
        correlation_key="sales.orders/schema_drift/column/extra",
        contract_id="c1",
        contract_name="sales-orders",
        contract_version="1.0.0",
        asset="sales.orders",
        violation_type=CheckType.SCHEMA_DRIFT,
        severity=Severity.WARNING,
        message='column "extra" added — ünïcode',
        expected_value="id, updated_at",
        actual_value="id, updated_at, extra",
        detected_at=T0.replace(microsecond=5),
        episode_started_at=T0,
        labels={"team": "sales"},
        consumers=["dash"],
        context={"impact.consumers": "1"},
    )


def _resolved() -> ResolvedData:
    return ResolvedData(
        violation_id="r1",
        correlation_key="sales.orders/freshness",
        contract_id="c1",
        contract_name="sales-orders",
        contract_version="1.0.0",
        asset="sales.orders",
        violation_type=CheckType.FRESHNESS,
        severity=Severity.ERROR,
        message="resolved",
        opened_at=T0,
        resolved_at=T0 + timedelta(minutes=3),
        open_duration_s=180.0,
    )


@pytest.mark.parametrize("data", [_violation(), _resolved()], ids=["violation", "resolved"])
@pytest.mark.parametrize("traceparent", [None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
def test_orjson_cloudevent_is_the_sdk_cloudevent(
    data: ViolationData | ResolvedData, traceparent: str | None
) -> None:
    key, value, headers = encode_violation(data, traceparent=traceparent)
    sdk_key, sdk_value, sdk_headers = encode_violation_sdk(data, traceparent=traceparent)
    assert (key, headers) == (sdk_key, sdk_headers)
    ours = decode_violation(dict(headers), key, value)
    theirs = decode_violation(dict(sdk_headers), sdk_key, sdk_value)
    assert ours == theirs
    assert ours.data == data
    assert ours.traceparent == traceparent


def _random_history(seed: int) -> list[Evaluation]:
    """A drift-like scope with many keys that open, resolve, flap and vanish."""
    rng = random.Random(seed)
    keys = [f"schema_drift/column/c{i}" for i in range(12)]
    out = []
    for _ in range(300):
        present = rng.sample(keys, rng.randint(0, 4))
        findings = tuple(
            Finding(key=k, severity=rng.choice([None, Severity.WARNING, Severity.ERROR]), message=k)
            for k in present
        )
        failing = any(f.severity for f in findings)
        out.append(
            Evaluation(
                check_type=CheckType.SCHEMA_DRIFT,
                status=CheckStatus.FAIL if failing else CheckStatus.PASS,
                findings=findings,
                scope="schema_drift/",
            )
        )
    return out


def _run(history: list[Evaluation], seed: int) -> tuple[AssetState, list[object]]:
    rng = random.Random(seed + 1)
    policy = CheckPolicy(fail_after=2, resolve_after=2, flap_threshold=3, flap_window_s=900)
    state, t, emitted = AssetState(asset_id="sales.orders"), T0, []
    for i, ev in enumerate(history):
        t += timedelta(seconds=rng.choice([5, 30, 120, 600]))
        state, out = apply_evaluation(asset(), state, ev, EvalContext(now=t, policy=policy), f"e{i}")
        emitted.extend(out.check_results)
        emitted.extend(out.violations)
    return state, emitted


@pytest.mark.parametrize("seed", range(6))
def test_skipping_settled_keys_changes_nothing(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    history = _random_history(seed)
    fast = _run(history, seed)
    # the reference: step every key of the scope absent from the evaluation
    monkeypatch.setattr(
        episodes,
        "_unsettled",
        lambda m, scope, seen, now, window_s: sorted(
            k for k in m.open.keys() | m.tracks.keys() if k not in seen and k.startswith(scope)
        ),
    )
    slow = _run(history, seed)
    assert fast == slow
    assert any(isinstance(v, ResolvedData) for v in fast[1])  # the history did open and resolve episodes


def test_engine_update_path_keeps_the_newest_update_and_sequence() -> None:
    e = Engine(clock_skew_s=0)
    a = asset()

    def upd(eid: str, at: datetime, seq: int | None) -> AssetUpdate:
        return AssetUpdate(
            asset_id=a.asset_id, source="catalog_commit", event_id=eid, updated_at=at, sequence=seq
        )

    e.apply_update(a, upd("e1", T0, 5), T0)
    e.apply_update(a, upd("e0", T0 - timedelta(hours=1), 7), T0)  # late data, newer sequence
    st = e.states[a.asset_id]
    assert (st.last_update_at, st.last_event_id, st.last_sequence) == (T0, "e1", 7)
    e.apply_update(a, upd("e2", T0 + timedelta(minutes=1), 6), T0)  # newer data, older sequence
    st = e.states[a.asset_id]
    assert (st.last_update_at, st.last_event_id, st.last_sequence) == (T0 + timedelta(minutes=1), "e2", 7)


def test_fast_rounding_of_age_and_sla_consumed_is_round_but_for_near_ties() -> None:
    from floe_stream.processors.checks.freshness import round_nonneg

    rng = random.Random(7)
    ms_ages = [i / 1000 for i in range(0, 200_000, 7)]  # ages from millisecond timestamps: always exact
    assert all(round_nonneg(a, 1e3) == round(a, 3) for a in ms_ages)
    values = [rng.uniform(0, 5) for _ in range(100_000)] + [rng.uniform(0, 1e7) for _ in range(10_000)]
    for scale, digits in ((1e4, 4), (1e3, 3)):
        off = [x for x in values if round_nonneg(x, scale) != round(x, digits)]
        assert len(off) < len(values) / 1000  # only near-ties
        assert all(abs(round_nonneg(x, scale) - round(x, digits)) <= 1.0001 / scale for x in off)


def test_field_order_of_the_positionally_built_tuples() -> None:
    """processors/checks/freshness.py builds Finding and Evaluation and normalize.py builds AssetUpdate with
    ``tuple.__new__`` and every field in order on the per-event path (bench/processor_cpu.py): a reordered or
    added field would silently swap values (or be missing), so the fields are pinned here."""
    assert Finding._fields == (
        "key", "severity", "message", "element", "expected", "actual", "drift_kind", "sla_consumed", "context",
    )  # fmt: skip
    assert Evaluation._fields == (
        "check_type", "status", "findings", "scope", "severity", "metric", "sla_consumed", "expected", "actual",
        "message", "state_update",
    )  # fmt: skip
    assert AssetUpdate._fields == (
        "asset_id", "source", "event_id", "updated_at", "data_timestamp", "columns", "row_count", "quality",
        "sequence", "run_id", "job", "quality_only", "operation", "added_rows", "oldest_data_time", "run_failed",
        "declared_schema",
    )  # fmt: skip


def test_the_positional_freshness_evaluation_reads_right_by_name() -> None:
    from floe_stream.processors.checks.freshness import KEY, evaluate_age
    from floe_stream.processors.normalize import update_of_materialization
    from floe_stream.topics.materialization import MaterializationEvent

    a = MonitoredAsset(
        asset_id="sales.orders", contract_id="c", contract_name="orders", contract_version="1.0.0", table="orders",
        freshness=FreshnessSla(threshold_s=40, element="orders.updated_at"),
    )  # fmt: skip
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ev = evaluate_age(a, t0, EvalContext(now=t0 + timedelta(seconds=50), clock_skew_s=0), absent=True)
    assert ev is not None
    assert (ev.check_type, ev.status, ev.scope, ev.severity) == (
        CheckType.FRESHNESS, CheckStatus.FAIL, KEY, Severity.ERROR,
    )  # fmt: skip
    assert (ev.metric, ev.sla_consumed, ev.expected, ev.actual) == (50.0, 1.25, "age <= 40s", "age 50s")
    assert ev.message == "no update for 50s; freshness SLA is 40s" and ev.state_update is None
    [f] = ev.findings
    assert (f.key, f.severity, f.element, f.expected, f.actual, f.drift_kind, f.sla_consumed, f.context) == (
        KEY, Severity.ERROR, "orders.updated_at", "age <= 40s", "age 50s", None, 1.25,
        {"breached_at": "2026-01-01T00:00:40+00:00"},  # data time + SLA: timeToDetect is measured from it
    )  # fmt: skip
    assert f.message == ev.message

    u = update_of_materialization(
        MaterializationEvent(asset="sales.orders", materialized_at=t0, row_count=7, run_id="r", job="j"), "fb"
    )
    assert (u.asset_id, u.source, u.event_id, u.updated_at, u.row_count, u.run_id, u.job, u.sequence) == (
        "sales.orders", "materialization", "fb", t0, 7, "r", "j", None,
    )  # fmt: skip


def _validated_like(m: object) -> object:
    """``m`` built again through validation, from the keywords that were set (what the code called before)."""
    cls = type(m)
    fields_set = m.model_fields_set  # type: ignore[attr-defined]
    return cls.model_validate({k: getattr(m, k) for k in fields_set})  # type: ignore[attr-defined]


def _owned_asset() -> MonitoredAsset:
    return asset().model_copy(
        update={"owner": "ana", "team": "data", "domain": "sales", "tags": ("pii",), "consumers": ("bi",)}
    )


@pytest.mark.parametrize("sla", [None, 2, 1.25])
def test_unvalidated_violation_resolution_and_episode_equal_the_validated_ones(sla: float | None) -> None:
    from floe_stream.processors.model import OpenEpisode
    from floe_stream.topics.enums import DriftKind

    a = _owned_asset()
    f = Finding(
        key="schema_drift/column/x", severity=Severity.ERROR, message="column x added", element="x",
        expected=None, actual="string", drift_kind=DriftKind.COLUMN_ADDED, sla_consumed=sla, context={"k": "v"},
    )  # fmt: skip
    ev = Evaluation(check_type=CheckType.SCHEMA_DRIFT, status=CheckStatus.FAIL, findings=(f,))
    ctx = EvalContext(now=T0.replace(microsecond=7), policy=CheckPolicy())
    episode, data = episodes._open(a, ev, f, ctx, None, Severity.ERROR, {"k": "v"}, False)
    resolved = episodes.resolved_event(a, episode, T0 + timedelta(minutes=5), "a reason")
    for m in (data, resolved, episode):
        ref = _validated_like(m)
        assert m == ref
        assert m.model_fields_set == ref.model_fields_set
        assert m.model_dump_json() == ref.model_dump_json()
    # as OpenEpisode(...) set it: every field but passes
    assert episode.model_fields_set == set(OpenEpisode.model_fields) - {"passes"}
    assert data.sla_consumed is None or isinstance(data.sla_consumed, float)  # an int is a float on the wire
    assert data.labels == a.labels() and data.labels is not a.labels()


@pytest.mark.parametrize("seed", range(3))
def test_unvalidated_models_of_random_histories_equal_the_validated_ones(seed: int) -> None:
    policy = CheckPolicy(fail_after=2, resolve_after=2, flap_threshold=3, flap_window_s=900)
    rng = random.Random(seed + 1)
    state, t = AssetState(asset_id="sales.orders"), T0
    built: list[object] = []
    for i, ev in enumerate(_random_history(seed)):
        t += timedelta(seconds=rng.choice([5, 30, 120, 600]))
        state, out = apply_evaluation(_owned_asset(), state, ev, EvalContext(now=t, policy=policy), f"e{i}")
        built.extend(out.violations)
        built.extend(state.open.values())
        built.extend(state.tracks.values())
    assert {type(m).__name__ for m in built} >= {"ViolationData", "ResolvedData", "OpenEpisode", "KeyTrack"}
    for m in built:
        ref = _validated_like(m)
        assert m == ref
        assert m.model_dump_json() == ref.model_dump_json()  # type: ignore[attr-defined]


# --- the drift path (bench/processor_cpu.py, drift): violation data, enrichment, the drift check -----------------


def _odd_violation(detected: datetime, started: datetime, sla: float | None) -> ViolationData:
    """Texts JSON must escape (quotes, backslashes, control characters, U+2028, non-BMP), every optional field."""
    text = 'col "x"\\ \x00\x1f\t\n ünïcode \u2028 \U0001f600 \x7f'
    return ViolationData(
        violation_id="v2", correlation_key=f"a/{text}", contract_id="c", contract_name=text, contract_version="1",
        asset="sales.orders", violation_type=CheckType.SCHEMA_DRIFT, severity=Severity.CRITICAL, message=text,
        owner="o", team=None, labels={text: text, "k": ""}, drift_kind="column_added", element=text,  # type: ignore[arg-type]
        expected_value=None, actual_value=text, detected_at=detected, episode_started_at=started,
        sla_consumed=sla, consumers=[text, "dash"], context={"pattern": text},
    )  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        _violation(),
        _resolved(),
        _odd_violation(T0, T0 - timedelta(days=400), 1 / 3),
        _odd_violation(T0.replace(microsecond=999999), T0, 1e17),
        _odd_violation(T0.astimezone(timezone(timedelta(hours=5, minutes=30))), T0, float("inf")),
        _odd_violation(T0.replace(tzinfo=WIRE_UTC), T0.replace(tzinfo=WIRE_UTC), 0.0).evolve(consumers=[]),
        _resolved().model_copy(
            update={"open_duration_s": 12345.678, "resolved_at": T0.replace(microsecond=1)}
        ),
    ],
)
def test_violation_data_written_by_orjson_is_model_dump_json(data: ViolationData | ResolvedData) -> None:
    """encode_violation writes the data's fields with orjson (as CheckResult.to_json): the bytes are pydantic's."""
    _, value, _ = encode_violation(data)
    assert value.endswith(b',"data":' + data.model_dump_json().encode() + b"}")
    # an instance whose fields are not in declaration order goes through pydantic's serializer (the same bytes)
    shuffled = type(data).from_fields(dict(reversed(data.__dict__.items())))
    _, value, _ = encode_violation(shuffled)
    assert value.endswith(b',"data":' + shuffled.model_dump_json().encode() + b"}")
    assert orjson.loads(value)["data"] == orjson.loads(data.model_dump_json())


def test_enriched_violation_equals_the_validated_one() -> None:
    """Enrichment copies the violation with ``evolve`` (no validation): equal to ``model_copy`` and to the model
    validated from its fields, with the same fields set."""
    from floe_stream.processors.context import ImpactContext

    ctx = ImpactContext()
    ctx.lineage.add_edge("ns/job", "pg/sales.orders", "in", T0)
    ctx.lineage.add_edge("ns/job", "pg/sales.report", "out", T0)
    ctx.note_update("sales.orders", T0, "e1", 10, "run-1", "ns/job")
    v = _violation()
    out = ctx.enrich_violation(
        v, declared_consumers=["team-x"], asset_identifiers=["sales.orders", "pg/sales.orders"],
        upstream_health=lambda d: None, now=T0,
    )  # fmt: skip
    assert out.consumers == ["team-x", "dash", "ns/job", "pg/sales.report"]
    assert out.context["recent.materializations"] == "2026-11-23T12:00:00Z id=e1 rows=10 job=ns/job run=run-1"
    slow = v.model_copy(update={"consumers": out.consumers, "context": out.context})
    validated = ViolationData.model_validate(out.model_dump())
    assert out == slow == validated
    assert out.model_fields_set == slow.model_fields_set
    assert out.model_dump_json() == slow.model_dump_json() == validated.model_dump_json()
    assert v.consumers == ["dash"] and v.context == {"impact.consumers": "1"}  # the original is untouched


def test_violation_pattern_counts_the_window_and_shows_the_latest_time() -> None:
    from floe_stream.processors.context import AssetHistory, violation_pattern

    h = AssetHistory()
    assert violation_pattern(h, "freshness", T0) == {
        "pattern.violations_24h": "0", "pattern": "first violation of this asset in 24h",
    }  # fmt: skip
    h.add_violation(T0 - timedelta(hours=25), "freshness")  # out of the window
    h.add_violation(T0 - timedelta(hours=2), "schema_drift")
    h.add_violation(T0 - timedelta(hours=1), "quality")  # the latest, though not the last added
    h.add_violation(T0 - timedelta(hours=3), "schema_drift")
    assert violation_pattern(h, "schema_drift", T0) == {
        "pattern.violations_24h": "3",
        "pattern.by_type_24h": "quality=1, schema_drift=2",
        "pattern.last_violation_at": "2026-11-23T11:00:00Z",
        "pattern": "recurring: 2 earlier schema_drift violation(s) in 24h",
    }
    assert (
        violation_pattern(h, "freshness", T0)["pattern"]
        == "first freshness violation in 24h (3 of other types)"
    )


def test_drift_evaluation_built_positionally_reads_right_by_name() -> None:
    """SchemaDriftCheck builds Finding and Evaluation with tuple.__new__ and a contract's prepared schema is
    reused across updates: the same evaluation as built by keyword, the second time too."""
    from floe_stream.contracts.models import ColumnSpec
    from floe_stream.processors.checks.drift import SchemaDriftCheck
    from floe_stream.topics.enums import DriftKind
    from floe_stream.topics.materialization import ObservedColumn

    a = MonitoredAsset(
        asset_id="sales.orders", contract_id="c", contract_name="orders", contract_version="1.0.0", table="orders",
        columns=(ColumnSpec(name="id", physical_type="int", required=True), ColumnSpec(name="Amount", logical_type="number")),
    )  # fmt: skip
    observed = (
        ObservedColumn(name="ID", type="bigint", nullable=True),
        ObservedColumn(name="note", type="text"),
    )
    upd = AssetUpdate(
        asset_id="sales.orders", source="materialization", event_id="e", updated_at=T0, columns=observed
    )
    want_findings = (
        Finding(key="schema_drift:type_changed:id", severity=Severity.INFO,
                message="column 'id' widened from int to bigint (safe for readers)", element="id",
                expected="int", actual="bigint", drift_kind=DriftKind.TYPE_CHANGED),
        Finding(key="schema_drift:nullability_changed:id", severity=Severity.ERROR,
                message="column 'id' is required by the contract but nullable in the table", element="id",
                expected="required (not null)", actual="nullable", drift_kind=DriftKind.NULLABILITY_CHANGED),
        Finding(key="schema_drift:column_removed:Amount", severity=Severity.ERROR,
                message="column 'Amount' is in the contract but missing from the table", element="Amount",
                expected="Amount number", actual="absent", drift_kind=DriftKind.COLUMN_REMOVED),
        Finding(key="schema_drift:column_added:note", severity=Severity.WARNING,
                message="column 'note' (text) is in the table but not in the contract", element="note",
                expected="absent", actual="note text", drift_kind=DriftKind.COLUMN_ADDED),
    )  # fmt: skip
    want = Evaluation(
        check_type=CheckType.SCHEMA_DRIFT, status=CheckStatus.FAIL, findings=want_findings, scope="schema_drift:",
        severity=Severity.ERROR, metric=4.0, expected="id, Amount", actual="ID, note",
        message="; ".join(f.message for f in want_findings),
    )  # fmt: skip
    ctx = EvalContext(now=T0)
    for _ in range(2):  # the second time from the prepared schema
        assert SchemaDriftCheck().on_update(a, AssetState(asset_id=a.asset_id), upd, ctx) == [want]
    same = upd._replace(
        columns=(ObservedColumn(name="id", type="int"), ObservedColumn(name="amount", type="double"))
    )
    [ok] = SchemaDriftCheck().on_update(a, AssetState(asset_id=a.asset_id), same, ctx)
    assert ok == Evaluation(
        check_type=CheckType.SCHEMA_DRIFT, status=CheckStatus.PASS, scope="schema_drift:", metric=0.0,
        expected="id, Amount", actual="id, amount", message="schema matches the contract",
    )  # fmt: skip


def test_prepared_contract_schemas_are_bounded() -> None:
    from floe_stream.contracts.models import ColumnSpec
    from floe_stream.processors.checks import drift

    prepared = drift._Prepared()
    wide = tuple(ColumnSpec(name=f"c{i}") for i in range(drift._PLAN_COLUMNS // 2 + 1))
    prepared.get(wide)
    other = (*wide[:-1], ColumnSpec(name="last"))
    prepared.get(other)  # over the bound: the first is forgotten
    assert [p[0] for p in prepared.plans.values()] == [other]
    assert prepared.columns == len(other)
    assert prepared.get(list(wide))[0] == prepared.get(wide)[0]  # type: ignore[arg-type]  # a list: not kept
    assert id(wide) in prepared.plans and len(prepared.plans) == 1


def test_remembered_iso_times_are_isoformat_and_bounded() -> None:
    from floe_stream.processors import context

    times = [T0, T0.replace(tzinfo=WIRE_UTC, microsecond=7), T0.astimezone(timezone(timedelta(hours=-3)))]
    for t in times * 2:
        assert context._iso(t) == t.isoformat().replace("+00:00", "Z")
    for i in range(context._ISO_MAX + 1):
        context._iso(T0 + timedelta(seconds=i))
    assert 0 < len(context._iso_of) <= context._ISO_MAX


def test_a_states_json_size_is_its_records_length_in_bytes() -> None:
    """AssetState.json_size (the changelog record's bytes, tracks remembered) against the record itself: keys
    and texts that JSON escapes or UTF-8 widens, tracks shared between states, renamed, replaced, forgotten."""
    from floe_stream.processors import model
    from floe_stream.processors.model import KeyTrack, OpenEpisode

    rnd = random.Random(7)
    odd = ["q:plain", 'q:"quoted"', "q:back\\slash", "q:nul\x00and\x1fctl", "q:tab\tnl\n", "q:€uro", "q:😀",
           "q:" + "x" * 3000, "q:\u2028sep", "q:del\x7f"]  # fmt: skip

    def track(i: int) -> KeyTrack:
        flips = [T0 + timedelta(seconds=s) for s in range(rnd.randrange(4))]
        since = rnd.choice([None, T0, T0.astimezone(timezone(timedelta(hours=5, minutes=30)))])
        return KeyTrack(failing=bool(i % 2), fails=rnd.randrange(10**12), failing_since=since, flips=flips)

    def exact(st: AssetState) -> int:
        return len(st.model_dump_json().encode())

    st = AssetState(asset_id="sales.orders\x00€", last_sequence=2**62, watch_since=T0)
    assert st.json_size() == exact(st)  # no tracks
    ep = OpenEpisode(
        key=odd[1], check_type=CheckType.QUALITY, violation_id="v", correlation_key="c\x00", opened_at=T0,
        severity=Severity.ERROR, message="m\n€",
    )  # fmt: skip
    for i in range(300):
        tracks = dict(st.tracks)
        for _ in range(rnd.randrange(3)):
            tracks[rnd.choice(odd) + str(rnd.randrange(40))] = track(i)
        if tracks and rnd.random() < 0.3:
            del tracks[rnd.choice(list(tracks))]
        if tracks and rnd.random() < 0.2:  # the same track object under another key
            k, t = rnd.choice(list(tracks.items()))
            tracks[k + "'"] = t
        st = st.evolve(
            tracks=tracks,
            open={ep.key: ep} if i % 3 else {},
            breaches={"quality": [T0]} if i % 5 else {},
            checks={"drift": {"columns": [odd[i % len(odd)]]}},
        )
        assert st.json_size() == exact(st), i
    for i in range(model._TRACK_BYTES_MAX + 1):  # remembered pairs are bounded
        model._track_bytes[-i] = (KeyTrack(), "k", 0)
    assert st.json_size() == exact(st)
    assert 0 < len(model._track_bytes) <= model._TRACK_BYTES_MAX
