"""Build violation / resolved CloudEvents and Alerts for the alert tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from floe_stream.processors.ids import stable_id
from floe_stream.sinks.alerts.model import Alert
from floe_stream.topics.enums import CheckType, Severity
from floe_stream.topics.violation import (
    ResolvedData,
    ViolationCloudEvent,
    ViolationData,
    decode_violation,
    encode_violation,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def violation(
    asset: str = "orders.v1",
    *,
    contract: str = "orders",
    element: str = "amount",
    severity: Severity = Severity.ERROR,
    check: CheckType = CheckType.SCHEMA_DRIFT,
    at: datetime = T0,
    opened: datetime | None = None,
    labels: dict[str, str] | None = None,
    consumers: list[str] | None = None,
    message: str = "column amount: type changed",
) -> ViolationData:
    corr = f"{asset}/{check.value}/{element}"
    started = opened or at
    return ViolationData(
        violation_id=stable_id("violation", corr, started.isoformat(), severity),
        correlation_key=corr,
        contract_id=contract,
        contract_name=contract,
        contract_version="1.0.0",
        asset=asset,
        violation_type=check,
        severity=severity,
        message=message,
        element=element,
        expected_value="double",
        actual_value="string",
        detected_at=at,
        episode_started_at=started,
        owner="alice",
        team="data-platform",
        labels={"contract": contract, "asset": asset, "owner": "alice", "domain": "sales", **(labels or {})},
        consumers=consumers if consumers is not None else ["finance-dashboard"],
    )


def resolved(v: ViolationData, *, after_s: float = 60) -> ResolvedData:
    end = v.detected_at + timedelta(seconds=after_s)
    return ResolvedData(
        violation_id=stable_id("resolved", v.correlation_key, v.episode_started_at.isoformat()),
        correlation_key=v.correlation_key,
        contract_id=v.contract_id,
        contract_name=v.contract_name,
        contract_version=v.contract_version,
        asset=v.asset,
        violation_type=v.violation_type,
        severity=v.severity,
        message=f"resolved: {v.message}",
        opened_at=v.episode_started_at,
        resolved_at=end,
        open_duration_s=after_s,
        owner=v.owner,
        team=v.team,
        labels=dict(v.labels),
    )


def cloud_event(data: ViolationData | ResolvedData) -> ViolationCloudEvent:
    key, value, headers = encode_violation(data)
    return decode_violation(dict(headers), key, value)


def alert(data: ViolationData | ResolvedData) -> Alert:
    return Alert.from_event(cloud_event(data))
