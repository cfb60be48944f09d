"""bench/state.py: restored and evolved asset states share the empty mappings (memory per asset)."""

from __future__ import annotations

from datetime import UTC, datetime

from floe_stream.processors.engine import Engine
from floe_stream.processors.model import EMPTY, AssetState, AssetStateRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_restored_states_share_the_empty_mappings_and_stay_equal() -> None:
    originals = [AssetState(asset_id=f"a{i}", watch_since=T0, last_update_at=T0) for i in range(3)]
    restored = [AssetState.model_validate_json(s.model_dump_json()) for s in originals]
    eng = Engine()
    eng.load(restored)
    a0, a1 = eng.states["a0"], eng.states["a1"]
    assert a0.open is EMPTY and a1.open is EMPTY and a0.checks is a1.checks
    assert [eng.states[f"a{i}"] for i in range(3)] == restored == originals
    # an update of one asset changes neither it nor the others
    changed = a0.model_copy(update={"last_event_id": "e1"})
    evolved = a0.evolve(last_sequence=7)
    assert changed.last_event_id == "e1" and evolved.last_sequence == 7
    assert a0.last_event_id is None and a0.last_sequence is None and a1.last_sequence is None
    assert EMPTY == {}


def test_the_changelog_form_is_the_one_written_before_states_were_tuples() -> None:
    # a record written by a processor whose state was the pydantic model restores, and is written the same
    old = (
        b'{"asset_id":"a","watch_since":"2026-01-01T00:00:00Z","last_update_at":"2026-01-01T00:00:00Z",'
        b'"last_event_id":"e","last_sequence":3,"open":{},"tracks":{"freshness":{"failing":true,"fails":1,'
        b'"failing_since":"2026-01-01T00:00:00Z","flips":[]}},"breaches":{},"checks":{"frequency":{"n":1}}}'
    )
    st = AssetState.model_validate_json(old)
    assert (
        st.last_sequence == 3 and st.tracks["freshness"].fails == 1 and st.checks == {"frequency": {"n": 1}}
    )
    assert (
        st.model_dump_json().encode()
        == old
        == AssetStateRecord.model_validate_json(old).model_dump_json().encode()
    )
    assert st.open is EMPTY and st.breaches is EMPTY


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
