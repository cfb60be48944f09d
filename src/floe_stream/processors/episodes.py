"""Turn evaluations into check results and violation episodes (open, escalate, resolve). Pure."""

from __future__ import annotations

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.ids import stable_id
from floe_stream.processors.model import (
    AssetState,
    EvalContext,
    Evaluation,
    Finding,
    OpenEpisode,
    Outputs,
)
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.violation import ResolvedData, ViolationData


def check_result(
    asset: MonitoredAsset, ev: Evaluation, ctx: EvalContext, source_event_id: str
) -> CheckResult:
    return CheckResult(
        result_id=stable_id("result", asset.asset_id, ev.check_type, source_event_id),
        asset=asset.asset_id,
        contract_id=asset.contract_id,
        contract_version=asset.contract_version,
        check_type=ev.check_type,
        status=ev.status,
        severity=ev.severity,
        evaluated_at=ctx.now,
        trigger=ctx.trigger,
        metric=ev.metric,
        sla_consumed=ev.sla_consumed,
        expected=ev.expected,
        actual=ev.actual,
        message=ev.message,
        source_event_id=source_event_id,
    )


def _open(asset: MonitoredAsset, ev: Evaluation, f: Finding, ctx: EvalContext, opened: OpenEpisode | None) -> tuple[OpenEpisode, ViolationData]:
    assert f.severity is not None
    corr = opened.correlation_key if opened else f"{asset.asset_id}/{f.key}"
    started = opened.opened_at if opened else ctx.now
    vid = stable_id("violation", corr, started.isoformat(), f.severity)
    data = ViolationData(
        violation_id=vid,
        correlation_key=corr,
        contract_id=asset.contract_id,
        contract_name=asset.contract_name,
        contract_version=asset.contract_version,
        asset=asset.asset_id,
        violation_type=ev.check_type,
        drift_kind=f.drift_kind,
        severity=f.severity,
        message=f.message,
        element=f.element,
        expected_value=f.expected,
        actual_value=f.actual,
        detected_at=ctx.now,
        episode_started_at=started,
        sla_consumed=f.sla_consumed,
        owner=asset.owner,
        team=asset.team,
        labels=asset.labels(),
        consumers=list(asset.consumers),
    )
    episode = OpenEpisode(
        key=f.key,
        check_type=ev.check_type,
        violation_id=vid,
        correlation_key=corr,
        severity=f.severity,
        opened_at=started,
        message=f.message,
    )
    return episode, data


def _resolve(asset: MonitoredAsset, ep: OpenEpisode, ctx: EvalContext) -> ResolvedData:
    return ResolvedData(
        violation_id=stable_id("resolved", ep.correlation_key, ep.opened_at.isoformat()),
        correlation_key=ep.correlation_key,
        contract_id=asset.contract_id,
        contract_name=asset.contract_name,
        contract_version=asset.contract_version,
        asset=asset.asset_id,
        violation_type=ep.check_type,
        severity=ep.severity,
        message=f"resolved: {ep.message}",
        opened_at=ep.opened_at,
        resolved_at=ctx.now,
        open_duration_s=max(0.0, (ctx.now - ep.opened_at).total_seconds()),
        owner=asset.owner,
        team=asset.team,
        labels=asset.labels(),
    )


def apply_evaluation(
    asset: MonitoredAsset,
    state: AssetState,
    ev: Evaluation,
    ctx: EvalContext,
    source_event_id: str,
) -> tuple[AssetState, Outputs]:
    """Record ``ev``: a check result always; a violation when a finding opens or escalates an episode;
    a resolved event when a firing finding clears (or disappears from the evaluation's scope)."""
    out = Outputs(check_results=[check_result(asset, ev, ctx, source_event_id)])
    open_eps = dict(state.open)
    seen: set[str] = set()
    for f in ev.findings:
        seen.add(f.key)
        current = open_eps.get(f.key)
        if f.severity is None:
            if current is not None:
                out.violations.append(_resolve(asset, current, ctx))
                del open_eps[f.key]
            continue
        if current is None or f.severity.rank > current.severity.rank:
            episode, data = _open(asset, ev, f, ctx, current)
            open_eps[f.key] = episode
            out.violations.append(data)
    if ev.scope is not None:
        for key in [k for k in open_eps if k.startswith(ev.scope) and k not in seen]:
            out.violations.append(_resolve(asset, open_eps.pop(key), ctx))
    checks = state.checks
    if ev.state_update is not None:
        checks = {**checks, ev.check_type.value: ev.state_update}
    if open_eps != state.open or checks is not state.checks:
        state = state.model_copy(update={"open": open_eps, "checks": checks})
    return state, out
