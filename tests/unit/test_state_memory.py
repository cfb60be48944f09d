"""bench/state.py: restored and evolved asset states share equal pydantic fields sets (memory per asset)."""

from __future__ import annotations

from datetime import UTC, datetime

from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_restored_states_share_one_fields_set_and_stay_equal() -> None:
    originals = [AssetState(asset_id=f"a{i}", watch_since=T0, last_update_at=T0) for i in range(3)]
    restored = [AssetState.model_validate_json(s.model_dump_json()) for s in originals]
    assert restored[0].model_fields_set is not restored[1].model_fields_set
    eng = Engine()
    eng.load(restored)
    a0, a1 = eng.states["a0"], eng.states["a1"]
    assert a0.model_fields_set is a1.model_fields_set
    assert [eng.states[f"a{i}"] for i in range(3)] == restored
    # an update of one asset changes neither the shared set nor the others
    before = set(a1.model_fields_set)
    changed = a0.model_copy(update={"last_event_id": "e1"})
    evolved = a0.evolve(last_sequence=7)
    assert changed.last_event_id == "e1" and evolved.last_sequence == 7 and a1.last_sequence is None
    assert a1.model_fields_set == before


def test_evolving_new_fields_gives_equal_states_a_shared_fields_set() -> None:
    a = AssetState(asset_id="a", watch_since=T0).evolve(last_update_at=T0, last_event_id="e")
    b = AssetState(asset_id="b", watch_since=T0).evolve(last_update_at=T0, last_event_id="f")
    assert a.model_fields_set is b.model_fields_set
    assert a.model_fields_set == {"asset_id", "watch_since", "last_update_at", "last_event_id"}
    assert "last_sequence" not in b.model_fields_set


def test_asset_history_keeps_the_last_3_materializations_and_200_violation_times() -> None:
    from datetime import timedelta

    from floe_stream.processors.context import AssetHistory, Materialization

    h = AssetHistory()
    assert h.materializations == () and list(h.violations) == []
    for i in range(5):
        h.add_materialization(Materialization(T0 + timedelta(minutes=i), f"e{i}"))
    assert [m.event_id for m in h.materializations] == ["e2", "e3", "e4"]
    for i in range(205):
        h.add_violation(T0 + timedelta(seconds=i), "freshness")
    assert len(h.violations) == 200 and h.violations[0][0] == T0 + timedelta(seconds=5)
