"""Availability at a real SLA (99.9 %, 60 s pings, 24 h window): a minimum number of samples before the
ratio is judged, outages caught by consecutive failures meanwhile, and a recovery rule that closes the
episode once the target is healthy again while the spent budget stays visible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from floe_stream.contracts.models import AvailabilitySla, MonitoredAsset
from floe_stream.processors.checks.availability import min_samples
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import Outputs
from floe_stream.processors.policy import CheckPolicy
from floe_stream.topics import CheckStatus, ResolvedData, Severity, ViolationData
from floe_stream.topics.probe import ProbeResult

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
A = MonitoredAsset(
    asset_id="api", contract_id="c", contract_name="c", contract_version="1", table="t",
    availability=AvailabilitySla(target_ratio=0.999),
)  # fmt: skip


def ping(i: int, ok: bool) -> ProbeResult:
    at = T0 + timedelta(seconds=60 * i)
    return ProbeResult(probe_id=f"p{i}", asset="api", scheduled_at=at, started_at=at, duration_ms=1.0, ok=ok,
                       reason=None if ok else "timeout", probe="http", target="api:443")  # fmt: skip


def judge(eng: Engine, a: MonitoredAsset, result: ProbeResult) -> Outputs:
    """The engine judges a ping when its result is published: now = the ping's own time."""
    return eng.apply_probe(a, result, result.started_at)


def test_minimum_samples_follow_the_error_budget() -> None:
    pol = CheckPolicy()
    assert [min_samples(t, None, pol) for t in (0.5, 0.9, 0.99, 0.999, 0.9999)] == [2, 10, 100, 1000, 1440]
    assert min_samples(0.999, 30, pol) == 30


def test_an_isolated_failure_after_start_is_not_a_breach() -> None:
    eng = Engine()
    out = judge(eng, A, ping(0, False))
    assert out.violations == []
    assert out.check_results[0].status == CheckStatus.PASS  # 1 ping: not judged, not down
    assert "judged from 1000 pings" in out.check_results[0].message


def test_an_outage_is_caught_before_the_ratio_is_judged_and_recovery_resolves() -> None:
    eng = Engine()
    for i in range(3):
        out = judge(eng, A, ping(i, False))
    (v,) = out.violations  # 3 consecutive failures: down
    assert isinstance(v, ViolationData)
    assert v.severity == Severity.ERROR
    for i in range(3, 7):
        assert judge(eng, A, ping(i, True)).violations == []  # 4 ok: not yet recovered
    back = judge(eng, A, ping(7, True))
    assert [type(x) for x in back.violations] == [ResolvedData]


def test_at_999_two_failures_breach_and_the_episode_closes_after_recovery_not_a_day_later() -> None:
    eng = Engine()
    for i in range(1000):
        judge(eng, A, ping(i, True))
    judge(eng, A, ping(1000, False))  # 1/1001: 99.9 % budget just used → WARNING at most
    out = judge(eng, A, ping(1001, False))  # 2/1002 < 99.9 %: breached
    assert out.check_results[0].status == CheckStatus.FAIL
    opened = [v for v in out.violations if isinstance(v, ViolationData)]
    assert opened
    assert opened[-1].severity == Severity.ERROR
    statuses = []
    resolved_at = None
    for i in range(1002, 1010):
        res = judge(eng, A, ping(i, True))
        statuses.append(res.check_results[0].status)
        if any(isinstance(x, ResolvedData) for x in res.violations):
            resolved_at = i
    assert resolved_at == 1006  # five consecutive successes, minutes after recovery
    assert statuses == [CheckStatus.FAIL] * 8  # the spent budget stays a breach in the report
    assert "still below the 99.9% SLA (budget spent)" in res.check_results[0].message
    again = judge(eng, A, ping(1010, False))  # failing again while below: a new episode
    assert any(isinstance(x, ViolationData) for x in again.violations)
