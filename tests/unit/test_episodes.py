"""Episodes: hysteresis (N fails / for-duration, M passes), flapping, CRITICAL escalation, overrides,
state that survives serialization, contract retirement and the live contract registry. No broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from floe_stream.contracts.models import FreshnessSla, MonitoredAsset
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.contracts.runtime_registry import LiveRegistry
from floe_stream.processors.engine import Engine
from floe_stream.processors.episodes import apply_evaluation
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation, Finding
from floe_stream.processors.policy import CheckPolicy, resolve_policy
from floe_stream.topics import CheckStatus, CheckType, ResolvedData, Severity, ViolationData

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def asset(**kw: object) -> MonitoredAsset:
    base: dict[str, object] = {
        "asset_id": "sales.orders",
        "contract_id": "c1",
        "contract_name": "sales-orders",
        "contract_version": "1.0.0",
        "table": "orders",
    }
    base.update(kw)
    return MonitoredAsset.model_validate(base)


def ev(failing: bool, key: str = "k", severity: Severity = Severity.ERROR) -> Evaluation:
    return Evaluation(
        check_type=CheckType.AVAILABILITY,
        status=CheckStatus.FAIL if failing else CheckStatus.PASS,
        findings=(
            Finding(key=key, severity=severity if failing else None, message="boom" if failing else "ok"),
        ),
    )


class Driver:
    """Feed a sequence of pass/fail evaluations through apply_evaluation, one per minute."""

    def __init__(self, policy: CheckPolicy | None = None) -> None:
        self.state = AssetState(asset_id="sales.orders")
        self.policy = policy or CheckPolicy()
        self.t = T0
        self.a = asset()

    def step(
        self, failing: bool, key: str = "k", severity: Severity = Severity.ERROR, dt: float = 60
    ) -> list[object]:
        self.t += timedelta(seconds=dt)
        ctx = EvalContext(now=self.t, policy=self.policy)
        self.state, out = apply_evaluation(self.a, self.state, ev(failing, key, severity), ctx, f"e{self.t}")
        # persist through the changelog format on every step: nothing lives outside AssetState
        self.state = AssetState.model_validate_json(self.state.model_dump_json())
        return list(out.violations)

    def run(self, pattern: str) -> list[str]:
        """'F' fail, 'P' pass → 'open', 'resolved' or '' per step."""
        kinds = []
        for c in pattern:
            vs = self.step(c == "F")
            kinds.append(",".join("resolved" if isinstance(v, ResolvedData) else "open" for v in vs))
        return kinds


def test_defaults_fire_on_first_failure_and_resolve_on_first_pass() -> None:
    assert Driver().run("FFP") == ["open", "", "resolved"]


def test_fire_after_n_failing_evaluations() -> None:
    d = Driver(CheckPolicy(fail_after=3))
    assert d.run("FFPFFF") == ["", "", "", "", "", "open"]  # a pass resets the count


def test_fire_only_after_failing_for_a_duration() -> None:
    d = Driver(CheckPolicy(fail_for_s=150))
    assert d.run("FFFF") == ["", "", "", "open"]  # failing since t1; t4 - t1 = 180 s ≥ 150 s


def test_resolve_after_m_passes_and_a_failure_in_between_resets() -> None:
    d = Driver(CheckPolicy(resolve_after=3))
    assert d.run("FPPFPPP") == ["open", "", "", "", "", "", "resolved"]


def test_resolved_event_has_the_correlation_key_and_open_duration() -> None:
    d = Driver()
    opened = d.step(True)[0]
    d.step(True)
    resolved = d.step(False)[0]
    assert isinstance(opened, ViolationData)
    assert isinstance(resolved, ResolvedData)
    assert resolved.correlation_key == opened.correlation_key == "sales.orders/k"
    assert resolved.open_duration_s == pytest.approx(120)


def test_flapping_asset_produces_one_open_episode_not_a_storm() -> None:
    d = Driver(CheckPolicy(flap_threshold=4, flap_window_s=3600))
    out = [d.step(c == "F") for c in "FPFPFPFPFPFP"]
    opens = [v for vs in out for v in vs if isinstance(v, ViolationData)]
    resolves = [v for vs in out for v in vs if isinstance(v, ResolvedData)]
    # flips 1-4 open/resolve twice; the 5th flip opens an episode that stays open while flapping
    assert len(opens) == 3
    assert len(resolves) == 2
    assert opens[-1].context["flapping"] == "true"
    assert d.state.open["k"].flapping
    # once the flips age out of the window, the next passes resolve it
    vs = d.step(False, dt=3600)
    assert [type(v).__name__ for v in vs] == ["ResolvedData"]


def test_critical_when_more_than_three_breaches_of_a_type_within_24h() -> None:
    d = Driver()
    severities = []
    for _ in range(5):
        severities += [v.severity for v in d.step(True, dt=3600) if isinstance(v, ViolationData)]
        d.step(False, dt=3600)
    assert severities == [Severity.ERROR] * 3 + [Severity.CRITICAL] * 2
    d2 = Driver()
    for _ in range(5):  # breaches 13 h apart: never more than 3 in a 24 h window
        assert all(
            v.severity == Severity.ERROR for v in d2.step(True, dt=13 * 3600) if isinstance(v, ViolationData)
        )
        d2.step(False, dt=60)


def test_escalation_is_a_new_event_never_swallowed() -> None:
    d = Driver()
    first = d.step(True, severity=Severity.INFO)
    second = d.step(True, severity=Severity.WARNING)
    third = d.step(True, severity=Severity.WARNING)
    fourth = d.step(True, severity=Severity.ERROR)
    assert [len(first), len(second), len(third), len(fourth)] == [1, 1, 0, 1]
    ids = {v.violation_id for v in first + second + fourth}  # type: ignore[attr-defined]
    assert len(ids) == 3
    assert {v.correlation_key for v in first + second + fourth} == {"sales.orders/k"}  # type: ignore[attr-defined]


def test_policy_overrides_merge_field_by_field() -> None:
    base = CheckPolicy(warning_at=0.9, fail_after=2)
    merged, problem = resolve_policy(base, {"checks": {"fail_after": 4, "quality_threshold": 0.95}})
    assert (merged.fail_after, merged.quality_threshold, merged.warning_at) == (4, 0.95, 0.9)
    assert problem is None
    same, problem = resolve_policy(base, {"checks": {"fail_after": 0}})
    assert same is base
    assert problem is not None
    assert "fail_after" in problem
    _, problem = resolve_policy(base, {"checks": {"nonsense": 1}})
    assert problem is not None
    assert "nonsense" in problem


def test_contract_override_changes_hysteresis_for_that_asset_only() -> None:
    eng = Engine(clock_skew_s=0)
    slow = asset(freshness=FreshnessSla(threshold_s=10), overrides={"checks": {"fail_after": 2}})
    fast = asset(asset_id="other", freshness=FreshnessSla(threshold_s=10))
    for a in (slow, fast):
        eng.apply_update(
            a, AssetUpdate(asset_id=a.asset_id, source="materialization", event_id="e", updated_at=T0), T0
        )
    first = eng.apply_tick([slow, fast], T0 + timedelta(seconds=30))
    assert [v.asset for v in first.violations] == ["other"]
    second = eng.apply_tick([slow, fast], T0 + timedelta(seconds=40))
    assert [v.asset for v in second.violations] == ["sales.orders"]


def test_missing_timestamp_column_falls_back_to_the_materialization_time() -> None:
    eng = Engine(clock_skew_s=0)
    a = asset(freshness=FreshnessSla(threshold_s=100, element="orders.updated_at"))
    out = eng.apply_update(
        a,
        AssetUpdate(asset_id=a.asset_id, source="materialization", event_id="e", updated_at=T0),
        T0 + timedelta(seconds=5),
    )
    assert out.check_results[0].metric == pytest.approx(5)
    assert out.check_results[0].status == CheckStatus.PASS


def test_retiring_an_asset_resolves_its_open_episodes_and_forgets_its_state() -> None:
    eng = Engine(clock_skew_s=0)
    a = asset(freshness=FreshnessSla(threshold_s=10))
    eng.apply_tick([a], T0)
    assert eng.apply_tick([a], T0 + timedelta(seconds=11)).violations
    out = eng.retire(a, T0 + timedelta(seconds=20))
    assert [type(v).__name__ for v in out.violations] == ["ResolvedData"]
    assert "contract retired" in out.violations[0].message
    assert "sales.orders" not in eng.states
    assert eng.take_retired() == ["sales.orders"]


CONTRACT = (REPO / "tests" / "fixtures" / "contracts" / "pipeline.odcs.yaml").read_text()


def test_live_registry_registers_updates_and_retires() -> None:
    live = LiveRegistry(ContractRegistry())
    change = live.apply_record("test-pipeline", CONTRACT)
    assert change.added == ["test-pipeline"]
    assert live.registry.resolve("test.fast") is not None
    one_table = CONTRACT.split("  - name: slow")[0] + CONTRACT[CONTRACT.index("slaProperties:") :]
    change = live.apply_record("test-pipeline", one_table.replace("element: slow.id", "element: fast.id"))
    assert change.updated == ["test-pipeline"]
    assert [a.asset_id for a in change.gone_assets] == ["test.slow"]
    change = live.apply_record("test-pipeline", None)
    assert change.retired == ["test-pipeline"]
    assert [a.asset_id for a in change.gone_assets] == ["test.fast"]
    assert live.registry.resolve("test.fast") is None


def test_live_registry_keeps_the_working_version_on_a_bad_document() -> None:
    live = LiveRegistry(ContractRegistry())
    live.apply_record("test-pipeline", CONTRACT)
    change = live.apply_record("test-pipeline", "apiVersion: v3.1.0\nkind: DataContract\n")
    assert change.errors
    assert live.registry.resolve("test.fast") is not None
    assert live.apply_record("other-id", CONTRACT).errors  # key must be the contract id


def test_live_registry_watches_a_directory(tmp_path: Path) -> None:
    live = LiveRegistry(ContractRegistry())
    assert not live.scan_directory(tmp_path)
    f = tmp_path / "p.odcs.yaml"
    f.write_text(CONTRACT)
    assert live.scan_directory(tmp_path).added == ["test-pipeline"]
    assert not live.scan_directory(tmp_path)  # unchanged: nothing to do
    f.unlink()
    change = live.scan_directory(tmp_path)
    assert change.retired == ["test-pipeline"]
    assert {a.asset_id for a in change.gone_assets} == {"test.fast", "test.slow"}


def test_freshness_resolve_after_m_fresh_arrivals_and_a_stale_tick_resets_the_count() -> None:
    eng = Engine(clock_skew_s=0, policy=CheckPolicy(resolve_after=2))
    a = asset(freshness=FreshnessSla(threshold_s=10))

    def arrive(s: int) -> list[str]:
        t = T0 + timedelta(seconds=s)
        out = eng.apply_update(
            a, AssetUpdate(asset_id=a.asset_id, source="materialization", event_id=f"e{s}", updated_at=t), t
        )
        return [type(v).__name__ for v in out.violations]

    def tick(s: int) -> list[str]:
        return [type(v).__name__ for v in eng.apply_tick([a], T0 + timedelta(seconds=s)).violations]

    assert arrive(0) == []
    assert tick(11) == ["ViolationData"]
    assert arrive(12) == []  # 1 pass of 2
    assert tick(30) == []  # stale again: no new event, the pass count starts over
    assert arrive(31) == []
    assert arrive(32) == ["ResolvedData"]


def test_lint_reports_bad_overrides_and_unpingable_availability() -> None:
    from floe_stream.contracts.models import AvailabilitySla
    from floe_stream.probes.targets import probe_problems
    from floe_stream.processors.policy import override_problems as policy_problems

    def override_problems(
        a: MonitoredAsset,
    ) -> list[str]:  # the two rules `floe contracts lint` runs per asset
        return [*policy_problems(a), *probe_problems(a)]

    bad = asset(availability=AvailabilitySla(target_ratio=0.99), overrides={"checks": {"resolve_after": 0}})
    problems = override_problems(bad)
    assert any("resolve_after" in p for p in problems)
    assert any("no probe target" in p for p in problems)
    assert override_problems(asset()) == []


def _bound_as_before(m: Any, limit: int) -> None:
    """_Machine.bound as it was before its count-only shortcut (c527637): every key weighed, the settled tracks
    sorted, then dropped oldest first; then the oldest open episodes resolved. (Its first line then returned for
    any state of up to SMALL_STATE_KEYS keys, even over a smaller max_tracked_keys; now only within it.)"""
    from floe_stream.processors.episodes import SMALL_STATE_KEYS, STATE_BYTES, resolved_event

    n = len(m.open) + len(m.tracks)
    if n <= SMALL_STATE_KEYS and n <= limit:
        return
    keys = m.open.keys() | m.tracks.keys()
    excess = len(keys) - limit
    weight = sum(m._weight(k) for k in keys)
    if excess <= 0 and weight <= STATE_BYTES:
        return

    def age(key: str) -> tuple[bool, datetime]:
        t = m.tracks[key]
        return (t.failing, max(t.flips) if t.flips else (t.failing_since or m.ctx.now))

    for key in sorted((k for k in m.tracks if k not in m.open), key=lambda k: (age(k), k)):
        if excess <= 0 and weight <= STATE_BYTES:
            return
        weight -= m._weight(key)
        del m.tracks[key]
        excess -= 1
        m.changed = True
    for ep in sorted(m.open.values(), key=lambda e: (e.opened_at, e.key)):
        if excess <= 0 and weight <= STATE_BYTES:
            return
        weight -= m._weight(ep.key)
        why = f"more than limits.max_tracked_keys ({limit}) or {STATE_BYTES // 1024} KiB of episodes open"
        m.out.violations.append(resolved_event(m.asset, ep, m.ctx.now, why))
        del m.open[ep.key]
        m.tracks.pop(ep.key, None)
        excess -= 1


@pytest.mark.parametrize("seed", range(6))
def test_bounding_a_churning_state_keeps_and_forgets_what_it_did_before(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Column churn at max_tracked_keys (a new key or two every evaluation, some failing, times out of order,
    long keys now and then): the state and every output equal those of the previous algorithm, step by step."""
    import random

    from floe_stream.processors import episodes
    from floe_stream.topics.bounds import InputLimits

    rnd = random.Random(seed)
    a = asset()
    limits = InputLimits(max_tracked_keys=rnd.choice([10, 20, 40]))
    policy = CheckPolicy(fail_after=rnd.choice([1, 2]), resolve_after=rnd.choice([1, 2]), flap_window_s=600)
    states = [AssetState(asset_id="sales.orders"), AssetState(asset_id="sales.orders")]
    t, forgotten = T0, 0
    for i in range(400):
        t += timedelta(seconds=rnd.choice([-30, 1, 5, 60, 400]))  # a broken clock now and then
        names = [f"q:c{i}", f"q:c{i - 1}", *(f"q:c{rnd.randrange(i + 1)}" for _ in range(rnd.randrange(3)))]
        if rnd.random() < 0.05:
            names.append("q:" + "x" * 4_000 + str(i))  # heavy keys: the weight decides, not the count
        findings = tuple(
            Finding(key=k, severity=Severity.ERROR if rnd.random() < 0.6 else None, message=f"m {k[:40]}")
            for k in dict.fromkeys(names)
        )
        e = Evaluation(check_type=CheckType.QUALITY, status=CheckStatus.FAIL, findings=findings, scope="q:")
        ctx = EvalContext(now=t, policy=policy, limits=limits)
        outs = []
        for side in (0, 1):
            if side:
                monkeypatch.setattr(episodes._Machine, "bound", _bound_as_before)
            states[side], out = apply_evaluation(a, states[side], e, ctx, f"e{i}")
            outs.append(out)
        monkeypatch.undo()
        assert states[0] == states[1], i
        assert outs[0].violations == outs[1].violations, i
        forgotten += len(states[1].tracks) < len({*states[1].tracks, *(f.key for f in findings)})
    assert len(states[0].open.keys() | states[0].tracks.keys()) <= limits.max_tracked_keys
    assert forgotten  # tracks were forgotten along the way: the bound was exercised
