"""The compiled form of a contract (contracts/compiled.py): parsed once, loaded back into the same contract.

What a user would notice: a processor that loads compiled contracts monitors exactly what it would have
monitored from the YAML; a compiled form it cannot read is refused with one line and the YAML is read
instead; one contract's change leaves every other asset (definition and state) as it was.
"""

from __future__ import annotations

import logging
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from floe_stream.contracts.compiled import (
    COMPILED_VERSION,
    CompiledFormError,
    ContractCache,
    compile_contract,
    load_compiled,
)
from floe_stream.contracts.loader import contract_files, load_contract, load_contract_text
from floe_stream.contracts.models import ContractError, LoadedContract
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.contracts.runtime_registry import LiveRegistry, load_record, read_record
from floe_stream.processors.engine import Engine
from floe_stream.processors.registry import CHECKS
from floe_stream.processors.testing import Inputs, pipeline, run
from floe_stream.topics import MaterializationEvent, TopicKey

REPO = Path(__file__).resolve().parents[2]
CONTRACT_DIRS = [REPO / "src" / "floe_stream" / "examples", REPO / "tests" / "fixtures", REPO / "examples"]
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def every_contract() -> list[LoadedContract]:
    out = []
    for folder in CONTRACT_DIRS:
        for f in contract_files(folder) if folder.is_dir() else []:
            try:
                out.append(load_contract(f))
            except ContractError:
                continue  # the invalid fixtures: nothing to compile
    return out


CONTRACTS = every_contract()


def test_the_repository_has_contracts_to_compile() -> None:
    assert len(CONTRACTS) >= 40 and sum(len(c.assets) for c in CONTRACTS) >= 100


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.source.rsplit("/", 1)[-1] for c in CONTRACTS])
def test_a_compiled_contract_is_the_contract_it_was_compiled_from(contract: LoadedContract) -> None:
    back = load_compiled(compile_contract(contract), contract.source)
    assert back == contract
    engine = Engine()
    for a, b in zip(contract.assets, back.assets, strict=True):
        # field by field (the parts: columns, SLAs, quality rules, servers, identities, the floe settings) …
        assert a.fields() == b.fields()
        # … and what the processor makes of them: the same checks apply, under the same policy
        assert engine._check_set(a) == engine._check_set(b)
        assert [c.check_type for c in CHECKS if getattr(c, "applies", lambda _: True)(a)] == [
            c.check_type for c in CHECKS if getattr(c, "applies", lambda _: True)(b)
        ]
        assert engine.policy_for(a) == engine.policy_for(b)


def test_equal_parts_are_held_once_across_contracts() -> None:
    text = (REPO / "src/floe_stream/examples/contracts/sales-orders.odcs.yaml").read_text()
    one = load_compiled(compile_contract(load_contract_text(text, "a")), "a")
    two = load_compiled(compile_contract(load_contract_text(text, "b")), "b")
    for a, b in zip(one.assets, two.assets, strict=True):
        assert a.columns is b.columns and a.freshness is b.freshness and a.servers is b.servers


def _contract(cid: str = "orders", tables: int = 3, latency: str = "1 h") -> str:
    value, unit = latency.split()
    body = "".join(
        f"  - name: t{i}\n    properties: [{{name: id, logicalType: integer}}, {{name: at, logicalType: timestamp}}]\n"
        for i in range(tables)
    )
    return (
        f"apiVersion: v3.1.0\nkind: DataContract\nid: {cid}\nversion: 1.0.0\nstatus: active\n"
        f"servers: [{{server: p, type: postgres, host: db, port: 5432, database: {cid}, schema: s}}]\n"
        f"schema:\n{body}slaProperties:\n  - {{property: latency, value: {value}, unit: {unit}}}\n"
    )


def test_a_compiled_form_of_another_version_is_refused_with_one_line_and_the_yaml_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = _contract()
    compiled = compile_contract(load_contract_text(text, "x"))
    newer = compiled.replace(f"floe-compiled/{COMPILED_VERSION}\n".encode(), b"floe-compiled/99\n", 1)
    with pytest.raises(CompiledFormError) as exc:
        load_compiled(newer, "contracts-topic:orders")
    assert str(exc.value) == (
        "contracts-topic:orders: compiled contract form version 99 cannot be read by this floe "
        f"(floe-stream {__import__('floe_stream').__version__} reads version {COMPILED_VERSION})"
    )
    with caplog.at_level(logging.WARNING):
        read = read_record("orders", text, newer)
    assert isinstance(read, LoadedContract) and read == load_contract_text(text, "contracts-topic:orders")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "version 99 cannot be read" in lines[0] and "\n" not in lines[0]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # cut
        lambda b: b.split(b"\n", 1)[0] + b"\n" + zlib.compress(b'{"version": 1}'),  # fields missing
        lambda b: b"not a compiled contract at all",
    ],
)
def test_a_damaged_compiled_form_is_refused_and_the_yaml_read(damage: object) -> None:
    text = _contract()
    bad = damage(compile_contract(load_contract_text(text, "x")))  # type: ignore[operator]
    with pytest.raises(CompiledFormError):
        load_compiled(bad, "x")
    assert read_record("orders", text, bad) == load_contract_text(text, "contracts-topic:orders")


def test_sink_postgres_reads_a_record_as_the_processors_do_but_leaves_the_refusal_line_to_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """sink-postgres (``warn=False``): the compiled form wins over the YAML, a refused one falls back to the YAML
    without a log line (the processors log it), an invalid YAML still raises for the caller to skip."""
    text = _contract()
    other = load_contract_text(_contract(), "x").model_copy(update={"name": "from-the-form"})
    formed = load_record(text, compile_contract(other), "topic:orders", warn=False)
    assert (formed.name, formed.source) == ("from-the-form", "topic:orders")
    with caplog.at_level(logging.DEBUG):
        read = load_record(text, b"not a compiled contract at all", "topic:orders", warn=False)
    assert read == load_contract_text(text, "topic:orders") and not caplog.records
    with pytest.raises(ContractError):
        load_record("not: [a, contract", None, "topic:orders", warn=False)


def test_the_directory_cache_parses_a_file_once_and_again_when_it_changes(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    f = folder / "orders.odcs.yaml"
    f.write_text(_contract())
    cache = ContractCache.configured(tmp_path / "cache")
    first = cache.load(f)
    assert (cache.hits, cache.misses) == (0, 1)
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".floec"]
    assert sorted(p.name for p in folder.iterdir()) == ["orders.odcs.yaml"]  # nothing written beside it
    again = ContractCache.configured(tmp_path / "cache")  # a new process
    assert again.load(f) == first and (again.hits, again.misses) == (1, 0)
    f.write_text(_contract(latency="5 m"))
    changed = again.load(f)
    assert changed.assets[0].freshness is not None and changed.assets[0].freshness.threshold_s == 300
    assert (again.hits, again.misses) == (1, 1)
    assert contract_files(folder) == [f]  # the cache is never read as a contract


def test_a_cache_that_cannot_be_written_is_reported_once_and_the_yaml_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    for i in range(2):
        (folder / f"c{i}.yaml").write_text(_contract(f"c{i}"))
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    cache = ContractCache(blocked / "cache")
    with caplog.at_level(logging.WARNING):
        loaded = [cache.load(f) for f in contract_files(folder)]
    assert [c.contract_id for c in loaded] == ["c0", "c1"]
    assert len([r for r in caplog.records if "cannot be written" in r.getMessage()]) == 1


def test_a_contract_change_touches_only_its_own_assets() -> None:
    live = LiveRegistry(ContractRegistry())
    for cid in ("a", "b", "c"):
        text = _contract(cid)
        live.apply_record(cid, text, compile_contract(load_contract_text(text, cid)))
    reg = live.registry
    others = {a.asset_id: a for cid in ("a", "c") for a in reg.contracts[cid].assets}
    partitions = {p: list(reg.assets_in_partition(p, 3)) for p in range(3)}
    # every asset has state
    inputs = Inputs(partitions=3)
    pipe = pipeline(reg, partitions=3)
    run(pipe, [
        inputs(TopicKey.MATERIALIZATIONS, MaterializationEvent(asset=aid, materialized_at=T0), at=T0, key=aid)
        for aid in (a.asset_id for a in reg.assets())
    ])  # fmt: skip
    pipe.take_changes()
    states = dict(pipe.engine.states)

    # contract b: a table dropped, the latency tightened (published with its compiled form)
    text = _contract("b", tables=2, latency="1 s")
    change = live.apply_record("b", text, compile_contract(load_contract_text(text, "b")))
    assert change.updated == ["b"] and [a.asset_id for a in change.gone_assets] == ["b.s.t2"]
    for aid, asset in others.items():
        assert reg.get(aid) is asset  # the same objects: not rebuilt, not re-validated
    for p in range(3):
        kept = [id(a) for a in partitions[p] if a.contract_id != "b"]
        assert [id(a) for a in reg.assets_in_partition(p, 3) if a.contract_id != "b"] == kept
    tight = reg.get("b.s.t0")
    assert tight is not None and tight.freshness is not None and tight.freshness.threshold_s == 1

    # the next evaluation: b's assets are judged by the new SLA, the others' state is untouched
    out = run(
        pipe,
        [inputs(TopicKey.TICKS, _tick(T0 + timedelta(seconds=30)), at=T0, partition=p) for p in range(3)],
    )
    late = {v.asset for v in out.violations}
    assert late == {"b.s.t0", "b.s.t1"}
    changed = {s.asset_id for s in pipe.take_changes().states}
    assert changed == {"b.s.t0", "b.s.t1"}
    for aid in others:
        assert pipe.engine.states[aid] is states[aid]


def _tick(at: datetime) -> bytes:
    from floe_stream.topics.tick import Tick

    return Tick(tick_time=at, interval_s=10, ticker_id="t").model_dump_json().encode()


def test_a_restored_state_is_the_state_that_was_written() -> None:
    from floe_stream.processors.model import EMPTY, AssetState, KeyTrack, StateDecoder

    quiet = AssetState(asset_id="a", watch_since=T0, last_update_at=T0, last_event_id="e1", last_sequence=7)
    busy = quiet.evolve(tracks={"freshness": KeyTrack(failing=True, fails=1, failing_since=T0)})
    fresh = AssetState(asset_id="b")
    decoder = StateDecoder()
    for st in (quiet, busy, fresh):
        back = decoder.decode(st.model_dump_json().encode())
        assert back == st and back.model_dump_json() == st.model_dump_json()
        assert back.open is EMPTY and back.checks is EMPTY  # the shared empties
    one, two = (decoder.decode(quiet.model_dump_json().encode()) for _ in range(2))
    assert one.watch_since is two.watch_since  # equal times held once
    # a record the fast path cannot vouch for goes through full validation (and its errors)
    for bad in (b'{"asset_id":1,"open":{},"tracks":{},"breaches":{},"checks":{}}',
                b'{"asset_id":"a","watch_since":"2026-01-01T00:00:00","last_update_at":null,"last_event_id":null,'
                b'"last_sequence":null,"open":{},"tracks":{},"breaches":{},"checks":{}}'):  # fmt: skip
        with pytest.raises(ValidationError):
            decoder.decode(bad)


def test_the_default_cache_is_the_users_cache_folder_not_the_contracts_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "orders.odcs.yaml").write_text(_contract())
    ContractCache.configured(None).load(folder / "orders.odcs.yaml")
    assert sorted(p.name for p in folder.iterdir()) == ["orders.odcs.yaml"]
    assert [p.suffix for p in (tmp_path / "xdg" / "floe-stream" / "compiled").iterdir()] == [".floec"]
