"""Typed values of the alert path: an :class:`Alert` (one violation or resolved CloudEvent), the router's
state (:class:`DedupEntry`, :class:`Incident`, :class:`Silence`), its :class:`Decision`, and the
:class:`Notification` a channel sends. Plain frozen models: the router is pure functions over them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from floe_stream.processors.context import display_lines
from floe_stream.processors.ids import stable_id
from floe_stream.topics.enums import CheckType, Severity
from floe_stream.topics.violation import ResolvedData, ViolationCloudEvent

Status = Literal["firing", "resolved"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Alert(_Frozen):
    """One violation (firing) or recovery (resolved) event, flattened for routing and rendering."""

    event_id: str = Field(description="the CloudEvent id (deterministic violation id)")
    status: Status
    correlation_key: str = Field(description="stable per incident; firing and resolved share it")
    contract_id: str
    contract_name: str
    contract_version: str
    asset: str
    violation_type: CheckType
    drift_kind: str | None = None
    severity: Severity
    message: str
    element: str | None = None
    expected: str | None = None
    actual: str | None = None
    occurred_at: datetime = Field(description="detected_at, or resolved_at")
    opened_at: datetime
    open_duration_s: float | None = None
    owner: str | None = None
    team: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    consumers: tuple[str, ...] = ()
    context: tuple[tuple[str, str], ...] = Field(
        default=(), description="impact and root-cause facts to show: (label, value), most useful first"
    )
    replaces_severity: Severity | None = Field(
        default=None, description="set on an escalation of an open incident"
    )
    event: ViolationCloudEvent = Field(description="the original CloudEvent (the webhook forwards it as is)")

    @classmethod
    def from_event(cls, ev: ViolationCloudEvent) -> Alert:
        d = ev.data
        common = {
            "event_id": ev.id,
            "correlation_key": d.correlation_key,
            "contract_id": d.contract_id,
            "contract_name": d.contract_name,
            "contract_version": d.contract_version,
            "asset": d.asset,
            "violation_type": d.violation_type,
            "severity": d.severity,
            "message": d.message,
            "owner": d.owner,
            "team": d.team,
            "labels": dict(d.labels),
            "event": ev,
        }
        if isinstance(d, ResolvedData):
            return cls(
                **common,
                status="resolved",
                occurred_at=d.resolved_at,
                opened_at=d.opened_at,
                open_duration_s=d.open_duration_s,
            )
        return cls(
            **common,
            status="firing",
            drift_kind=d.drift_kind.value if d.drift_kind else None,
            element=d.element,
            expected=d.expected_value,
            actual=d.actual_value,
            occurred_at=d.detected_at,
            opened_at=d.episode_started_at,
            consumers=tuple(d.consumers),
            context=tuple(display_lines(d.context)),
        )

    def match_labels(self) -> dict[str, str]:
        """The values routes and silences match on."""
        out = {
            "contract": self.contract_name,
            "contract_id": self.contract_id,
            "asset": self.asset,
            "violation_type": self.violation_type.value,
            "severity": self.severity.value,
        }
        for k in ("owner", "team", "domain", "tags"):
            if self.labels.get(k):
                out[k] = self.labels[k]
        if self.owner and "owner" not in out:
            out["owner"] = self.owner
        if self.team and "team" not in out:
            out["team"] = self.team
        return out

    @property
    def tags(self) -> tuple[str, ...]:
        raw = self.labels.get("tags", "")
        return tuple(t.strip() for t in raw.split(",") if t.strip())


class DedupEntry(_Frozen):
    """Last notified firing of an (asset, violation type)."""

    asset: str
    violation_type: str
    window_started_at: datetime
    severity: Severity


class Incident(_Frozen):
    """An incident (correlation key) that was notified: the channels its resolve must follow."""

    correlation_key: str
    status: Literal["open", "resolved"]
    severity: Severity
    channels: tuple[str, ...]
    violation_id: str


class Silence(_Frozen):
    silence_id: str
    contract: str | None = None
    asset: str | None = None
    starts_at: datetime
    ends_at: datetime
    comment: str = ""
    created_by: str = ""
    expired_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.expired_at is None and self.starts_at <= now < self.ends_at

    def matches(self, alert: Alert) -> bool:
        if self.contract is not None and self.contract not in (alert.contract_id, alert.contract_name):
            return False
        return self.asset is None or self.asset == alert.asset


SuppressReason = Literal["silenced", "no_route", "duplicate", "rate_limited", "no_open_incident"]


class Decision(_Frozen):
    event_id: str
    notify: bool
    channels: tuple[str, ...] = ()
    reason: str = Field(default="", description="why it was suppressed (or 'escalation' / 'new')")
    replaces_severity: Severity | None = None


class Notification(_Frozen):
    """What one channel sends: one or more alerts of the same status and group."""

    channel: str
    status: Status
    group_key: str
    alerts: tuple[Alert, ...]

    @property
    def notification_id(self) -> str:
        return stable_id("notification", self.channel, *sorted(a.event_id for a in self.alerts))

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(a.event_id for a in self.alerts)

    @property
    def max_severity(self) -> Severity:
        return max((a.severity for a in self.alerts), key=lambda s: s.rank)


class DeadLetter(_Frozen):
    """A record of the alerts dead-letter topic: the notification that could not be delivered, and why."""

    channel: str
    reason: str
    attempts: int
    failed_at: datetime
    notification: Notification
