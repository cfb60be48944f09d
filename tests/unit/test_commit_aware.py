"""Commit-aware freshness: which updates count as new data (Iceberg operations, zero-row updates),
configurable per contract; late data changes nothing and is counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from floe_stream.contracts.extension import FloeExtension, UpdateSettings
from floe_stream.contracts.models import ColumnSpec, FreshnessSla, MonitoredAsset
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate
from floe_stream.processors.normalize import from_commit
from floe_stream.topics import CatalogCommitEvent, IcebergField, IcebergSchema
from floe_stream.topics.enums import CheckType

T0 = datetime(2026, 4, 1, tzinfo=UTC)


def asset(**updates: bool) -> MonitoredAsset:
    return MonitoredAsset(
        asset_id="db.t", contract_id="c", contract_name="c", contract_version="1", table="t",
        columns=(ColumnSpec(name="id"),), freshness=FreshnessSla(threshold_s=3600),
        floe=FloeExtension(updates=UpdateSettings(**updates)),
    )  # fmt: skip


def commit(op: str, at: datetime, added: str | None, seq: int) -> AssetUpdate:
    summary = {"added-records": added} if added is not None else {}
    ev = CatalogCommitEvent(
        table="db.t", snapshot_id=seq, sequence_number=seq, timestamp_ms=int(at.timestamp() * 1000),
        operation=op,  # type: ignore[arg-type]
        table_schema=IcebergSchema(fields=[IcebergField(id=1, name="id", type="long")]), summary=summary,
    )  # fmt: skip
    return from_commit(ev, f"c{seq}")[0][1]


@pytest.mark.parametrize(
    ("op", "added", "counts"),
    [
        ("append", "10", True),
        ("overwrite", "5", True),
        ("append", None, True),  # no count reported: it counts
        ("append", "0", False),  # zero-row append
        ("replace", "0", False),  # compaction / rewrite
        ("replace", "100", False),  # a rewrite adds files and rows, but no new data
        ("delete", None, False),  # delete-only
    ],
)
def test_which_commits_count_as_new_data(op: str, added: str | None, counts: bool) -> None:
    eng = Engine(clock_skew_s=0)
    a = asset()
    eng.apply_update(a, commit("append", T0, "1", 1), T0)
    later = T0 + timedelta(minutes=30)
    out = eng.apply_update(a, commit(op, later, added, 2), later)
    freshness = [r for r in out.check_results if r.check_type == CheckType.FRESHNESS]
    assert bool(freshness) is counts
    assert (eng.states["db.t"].last_update_at == later) is counts
    assert any(r.check_type == CheckType.SCHEMA_DRIFT for r in out.check_results)  # drift still judged
    assert eng.counters.get("not_new_data", 0) == (0 if counts else 1)


def test_a_replace_does_not_hide_staleness() -> None:
    eng = Engine(clock_skew_s=0)
    a = asset()
    eng.apply_update(a, commit("append", T0, "1", 1), T0)
    compaction = T0 + timedelta(minutes=50)
    eng.apply_update(a, commit("replace", compaction, "0", 2), compaction)
    stale = eng.apply_tick([a], T0 + timedelta(minutes=61))
    assert [v.violation_type for v in stale.violations] == [CheckType.FRESHNESS]


def test_contract_settings_let_replace_delete_and_zero_rows_count() -> None:
    eng = Engine(clock_skew_s=0)
    a = asset(replace=True, delete_only=True, zero_rows=True)
    for seq, op, added in ((1, "append", "0"), (2, "replace", "0"), (3, "delete", None)):
        at = T0 + timedelta(minutes=seq)
        eng.apply_update(a, commit(op, at, added, seq), at)
        assert eng.states["db.t"].last_update_at == at


def test_openlineage_complete_with_zero_rows_is_not_new_data_by_default() -> None:
    eng = Engine(clock_skew_s=0)
    a = asset()
    zero = AssetUpdate("db.t", "openlineage", "ol:1", T0, row_count=0)
    assert [r.check_type for r in eng.apply_update(a, zero, T0).check_results] == []
    some = AssetUpdate("db.t", "openlineage", "ol:2", T0, row_count=3)
    assert CheckType.FRESHNESS in [r.check_type for r in eng.apply_update(a, some, T0).check_results]


def test_late_data_changes_nothing_and_is_counted() -> None:
    eng = Engine(clock_skew_s=0)
    a = asset()
    eng.apply_update(a, AssetUpdate("db.t", "materialization", "m1", T0), T0)
    out = eng.apply_update(a, AssetUpdate("db.t", "materialization", "m0", T0 - timedelta(hours=5)), T0)
    assert [r for r in out.check_results if r.check_type == CheckType.FRESHNESS] == []
    assert eng.states["db.t"].last_update_at == T0
    assert eng.counters["late_data"] == 1
