"""The ODCS SLA properties beyond latency/availability: parsing, and the pure frequency,
timeOfAvailability and lifecycle checks (DST, cron time zones, notices)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from floe_stream.contracts.loader import load_contract_text
from floe_stream.contracts.models import FrequencySla, LifecycleSla, MonitoredAsset, TimeOfAvailabilitySla
from floe_stream.processors.checks.frequency import FrequencyCheck
from floe_stream.processors.checks.lifecycle import LifecycleCheck, notice
from floe_stream.processors.checks.time_of_availability import TimeOfAvailabilityCheck, deadlines
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate
from floe_stream.topics.enums import CheckStatus, CheckType, Severity
from floe_stream.topics.violation import ResolvedData, ViolationData


def contract(sla: list[dict[str, Any]], floe: dict[str, Any] | None = None) -> MonitoredAsset:
    doc: dict[str, Any] = {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "c", "name": "c", "version": "1", "status": "active",
        "schema": [{"name": "t", "properties": [{"name": "id"}]}], "slaProperties": sla,
    }  # fmt: skip
    if floe:
        doc["customProperties"] = [{"property": "floe", "value": floe}]
    (asset,) = load_contract_text(yaml.safe_dump(doc), "c.yaml").assets
    return asset


def asset(**kw: Any) -> MonitoredAsset:
    return MonitoredAsset(
        asset_id="a", contract_id="c", contract_name="c", contract_version="1", table="t", **kw
    )


def upd(at: datetime, eid: str) -> AssetUpdate:
    return AssetUpdate(asset_id="a", source="materialization", event_id=eid, updated_at=at)


# --- parsing --------------------------------------------------------------------------------------------


def test_every_sla_property_is_parsed_or_explained() -> None:
    a = contract(
        [
            {"property": "latency", "value": 4, "unit": "h"},
            {"property": "frequency", "value": 1, "unit": "d"},
            {"property": "timeOfAvailability", "value": "09:00", "valueExt": "Europe/Berlin"},
            {"property": "timeOfAvailability", "value": "09:00-08:00"},
            {"property": "endOfSupport", "value": "2032-05-12T09:30:10-08:00"},
            {"property": "endOfLife", "value": "2042-05-12"},
            {"property": "timeToDetect", "value": 5, "unit": "m"},
            {"property": "timeToRepair", "value": "PT4H"},
            {"property": "retention", "value": 3, "unit": "y"},
            {"property": "throughput", "value": 100},
        ],
        {"lifecycle": {"notice_days": 10}},
    )
    assert a.frequency == FrequencySla(interval_s=86_400)
    assert [(t.deadline.isoformat("minutes"), t.timezone) for t in a.time_of_availability] == [
        ("09:00", "Europe/Berlin"),
        ("09:00", "-08:00"),
    ]
    assert a.lifecycle is not None
    assert a.lifecycle.end_of_life == datetime(2042, 5, 12, tzinfo=UTC)
    assert a.lifecycle.notice_days == 10
    assert a.response is not None
    assert (a.response.time_to_detect_s, a.response.time_to_notify_s, a.response.time_to_repair_s) == (
        300,
        None,
        14_400,
    )
    by = {n.property: n for n in a.sla_notes}
    assert len(a.sla_notes) == 10
    assert by["retention"].evaluated_by == "retention"
    assert a.retention is not None and a.retention.period_s == 3 * 365 * 86_400
    assert by["throughput"].evaluated_by is None
    assert by["frequency"].evaluated_by == "frequency"
    assert by["timeToDetect"].evaluated_by == "floe sla report --response"


def test_cron_frequency_uses_the_floe_timezone() -> None:
    a = contract(
        [{"property": "frequency", "value": 1, "scheduler": "cron", "schedule": "0 6 * * *"}],
        {"timezone": "America/New_York"},
    )
    assert a.frequency == FrequencySla(cron="0 6 * * *", timezone="America/New_York")


def test_unparsable_values_are_not_evaluated_with_a_warning() -> None:
    doc_sla = [
        {"property": "timeOfAvailability", "value": "morning"},
        {"property": "latncy", "value": 1, "unit": "h"},
    ]
    doc: dict[str, Any] = {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "c", "name": "c", "version": "1", "status": "active",
        "schema": [{"name": "t"}], "slaProperties": doc_sla,
    }  # fmt: skip
    loaded = load_contract_text(yaml.safe_dump(doc), "c.yaml")
    assert any("timeOfAvailability: value 'morning' is not a time of day" in w for w in loaded.warnings)
    assert any("unknown SLA property 'latncy'; did you mean 'latency'?" in w for w in loaded.warnings)
    (a,) = loaded.assets
    assert a.time_of_availability == ()
    assert a.freshness is None


# --- frequency ------------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def test_interval_frequency_misses_a_run_while_data_is_still_fresh() -> None:
    from floe_stream.contracts.models import FreshnessSla

    a = asset(frequency=FrequencySla(interval_s=3600), freshness=FreshnessSla(threshold_s=86_400))
    eng = Engine(checks=(FrequencyCheck(),), clock_skew_s=0)
    eng.apply_update(a, upd(T0, "e1"), T0)
    assert eng.apply_tick([a], T0 + timedelta(minutes=65)).violations == []  # within the 10 % grace
    late = eng.apply_tick([a], T0 + timedelta(minutes=67))
    (v,) = late.violations
    assert isinstance(v, ViolationData)
    assert (v.violation_type, v.severity) == (CheckType.FREQUENCY, Severity.ERROR)
    assert eng.apply_tick([a], T0 + timedelta(minutes=68)).violations == []  # reported once
    back = eng.apply_update(a, upd(T0 + timedelta(minutes=70), "e2"), T0 + timedelta(minutes=70))
    assert [type(x) for x in back.violations] == [ResolvedData]


def test_cron_frequency_across_the_dst_change_in_its_zone() -> None:
    # daily 06:00 New York; DST starts Sunday 2026-03-08 (06:00 EST = 11:00 UTC, then 06:00 EDT = 10:00 UTC)
    sla = FrequencySla(cron="0 6 * * *", timezone="America/New_York")
    a = asset(frequency=sla)
    eng = Engine(checks=(FrequencyCheck(),), clock_skew_s=0)
    watch = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    eng.apply_update(a, upd(watch, "sat"), watch)  # Saturday's run landed
    # Sunday's run is due 10:00 UTC (EDT); grace: 10 % of the 24 h to Monday's run = 2h24m
    assert eng.apply_tick([a], datetime(2026, 3, 8, 12, 0, tzinfo=UTC)).violations == []
    out = eng.apply_tick([a], datetime(2026, 3, 8, 12, 30, tzinfo=UTC))
    (v,) = out.violations
    assert isinstance(v, ViolationData)
    assert "2026-03-08T06:00:00-04:00" in (v.actual_value or "")


# --- time of availability -------------------------------------------------------------------------------


def test_deadlines_are_wall_clock_days_across_dst() -> None:
    sla = TimeOfAvailabilitySla.model_validate({"deadline": "09:00", "timezone": "Europe/Berlin"})
    prev, latest = deadlines(sla, datetime(2026, 3, 29, 12, 0, tzinfo=UTC))  # DST started 02:00 that day
    assert latest.astimezone(UTC) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert prev.astimezone(UTC) == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert latest.astimezone(UTC) - prev.astimezone(UTC) == timedelta(hours=23)
    prev, latest = deadlines(sla, datetime(2026, 3, 29, 6, 59, tzinfo=UTC))  # before today's deadline
    assert latest.astimezone(UTC) == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)
    fixed = TimeOfAvailabilitySla.model_validate({"deadline": "09:00", "timezone": "-08:00"})
    _, latest = deadlines(fixed, datetime(2026, 7, 1, 18, 0, tzinfo=UTC))
    assert latest.astimezone(UTC) == datetime(2026, 7, 1, 17, 0, tzinfo=UTC)


def test_time_of_availability_missed_then_late_arrival_resolves() -> None:
    sla = TimeOfAvailabilitySla.model_validate({"deadline": "09:00", "timezone": "Europe/Berlin"})
    a = asset(time_of_availability=(sla,))
    eng = Engine(checks=(TimeOfAvailabilityCheck(),), clock_skew_s=0)
    start = datetime(2026, 3, 27, 6, 0, tzinfo=UTC)
    eng.state("a", start)
    eng.apply_update(
        a, upd(datetime(2026, 3, 27, 7, 30, tzinfo=UTC), "fri"), datetime(2026, 3, 27, 7, 30, tzinfo=UTC)
    )
    assert eng.apply_tick([a], datetime(2026, 3, 28, 7, 59, tzinfo=UTC)).violations == []  # Sat 08:59 CET
    missed = eng.apply_tick([a], datetime(2026, 3, 28, 8, 0, tzinfo=UTC))  # Sat 09:00 CET, nothing since Fri
    (v,) = missed.violations
    assert isinstance(v, ViolationData)
    assert v.violation_type == CheckType.TIME_OF_AVAILABILITY
    assert eng.apply_tick([a], datetime(2026, 3, 28, 8, 30, tzinfo=UTC)).violations == []
    late = eng.apply_update(
        a, upd(datetime(2026, 3, 28, 9, 0, tzinfo=UTC), "sat"), datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    )
    assert [type(x) for x in late.violations] == [ResolvedData]
    # Sunday (DST day): 09:00 CEST = 07:00 UTC; Saturday's late update counts for Sunday's period
    assert eng.apply_tick([a], datetime(2026, 3, 29, 7, 0, tzinfo=UTC)).violations == []


def test_a_deadline_before_watching_started_is_not_judged() -> None:
    sla = TimeOfAvailabilitySla.model_validate({"deadline": "09:00"})
    a = asset(time_of_availability=(sla,))
    eng = Engine(checks=(TimeOfAvailabilityCheck(),), clock_skew_s=0)
    eng.state("a", datetime(2026, 3, 27, 10, 0, tzinfo=UTC))
    assert eng.apply_tick([a], datetime(2026, 3, 28, 9, 30, tzinfo=UTC)).violations == []
    assert len(eng.apply_tick([a], datetime(2026, 3, 29, 9, 30, tzinfo=UTC)).violations) == 1


# --- lifecycle ------------------------------------------------------------------------------------------

EOS = datetime(2026, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "level", "severity"),
    [
        (EOS - timedelta(days=31), "ok", None),
        (EOS - timedelta(days=29), "notice_end_of_support", Severity.INFO),
        (EOS + timedelta(seconds=1), "past_end_of_support", Severity.WARNING),
    ],
)
def test_lifecycle_notice_levels(now: datetime, level: str, severity: Severity | None) -> None:
    got = notice(LifecycleSla(end_of_support=EOS, notice_days=30), now)
    assert got[:2] == (level, severity)


def test_lifecycle_notices_go_to_consumers_once_per_change() -> None:
    a = asset(lifecycle=LifecycleSla(end_of_support=EOS, notice_days=30), consumers=("bi",))
    eng = Engine(checks=(LifecycleCheck(),), clock_skew_s=0)
    assert eng.apply_tick([a], EOS - timedelta(days=40)).check_results == []
    info = eng.apply_tick([a], EOS - timedelta(days=20))
    (v,) = info.violations
    assert isinstance(v, ViolationData)
    assert (v.severity, v.consumers, v.violation_type) == (Severity.INFO, ["bi"], CheckType.LIFECYCLE)
    assert info.check_results[0].status == CheckStatus.PASS
    assert eng.apply_tick([a], EOS - timedelta(days=19)).check_results == []
    past = eng.apply_tick([a], EOS + timedelta(days=1))
    (w,) = past.violations
    assert isinstance(w, ViolationData)
    assert w.severity == Severity.WARNING
    assert past.check_results[0].status == CheckStatus.FAIL


def test_cron_grace_is_measured_in_real_time_on_the_short_dst_day() -> None:
    # Saturday 06:00 EST (11:00 UTC) to Sunday 06:00 EDT (10:00 UTC) is 23 h: grace 2h18m, not 2h24m
    a = asset(frequency=FrequencySla(cron="0 6 * * *", timezone="America/New_York"))
    eng = Engine(checks=(FrequencyCheck(),), clock_skew_s=0)
    friday = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    eng.apply_update(a, upd(friday, "fri"), friday)
    assert eng.apply_tick([a], datetime(2026, 3, 7, 13, 17, tzinfo=UTC)).violations == []
    (v,) = eng.apply_tick([a], datetime(2026, 3, 7, 13, 19, tzinfo=UTC)).violations
    assert isinstance(v, ViolationData)
    assert v.context["breached_at"] == "2026-03-07T13:18:00+00:00"


# --- retention ------------------------------------------------------------------------------------------


def test_retention_rows_deleted_before_the_period_ends() -> None:
    from floe_stream.contracts.models import RetentionSla
    from floe_stream.processors.checks.retention import RetentionCheck

    a = asset(retention=RetentionSla(period_s=30 * 86_400))
    eng = Engine(checks=(RetentionCheck(),), clock_skew_s=0)
    now = datetime(2026, 6, 1, tzinfo=UTC)

    def report(eid: str, oldest: datetime | None, at: datetime) -> list[CheckStatus]:
        u = AssetUpdate("a", "materialization", eid, at, oldest_data_time=oldest)
        return [r.status for r in eng.apply_update(a, u, at).check_results]

    assert report("none", None, now) == []  # no oldest row reported: no verdict
    assert report("e1", now - timedelta(days=5), now) == [CheckStatus.PASS]  # young table: all rows kept
    # a day later rows from day 5 → day 3 are gone although the period is 30 days
    later = now + timedelta(days=1)
    out = eng.apply_update(
        a, AssetUpdate("a", "materialization", "e2", later, oldest_data_time=now - timedelta(days=2)), later
    )
    (v,) = out.violations
    assert isinstance(v, ViolationData)
    assert (v.violation_type, v.severity) == (CheckType.RETENTION, Severity.ERROR)
    # old rows beyond the period may go: oldest 31 days → 29.5 days after 40 days
    eng2 = Engine(checks=(RetentionCheck(),), clock_skew_s=0)
    eng2.apply_update(
        a, AssetUpdate("a", "materialization", "x1", now, oldest_data_time=now - timedelta(days=31)), now
    )
    t = now + timedelta(days=10)
    ok = eng2.apply_update(
        a, AssetUpdate("a", "materialization", "x2", t, oldest_data_time=t - timedelta(days=29.9)), t
    )
    assert [r.status for r in ok.check_results] == [CheckStatus.PASS]
