"""Typed values of the alert path: an :class:`Alert` (one violation or resolved CloudEvent), the state the
decisions read (:class:`DedupEntry`, :class:`Incident`, :class:`Silence`), a :class:`Decision`, and the
:class:`Notification` a channel sends. Plain frozen models: :mod:`.decisions` is pure functions over them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from floe_stream.processors.context import display_lines
from floe_stream.processors.ids import stable_id
from floe_stream.topics.enums import Severity
from floe_stream.topics.violation import ResolvedData, ViolationCloudEvent, ViolationHeader

Status = Literal["firing", "resolved"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Alert(ViolationHeader):
    """One violation (firing) or recovery (resolved) event, flattened for deciding and rendering: the header
    of both, under the same names, plus what each kind adds.

    In the alerts dead-letter topic an alert keeps the names it has always had there (``event_id``,
    ``expected``, ``actual``: ``DeadLetter`` is written by alias); both spellings are read back."""

    violation_id: str = Field(
        serialization_alias="event_id",
        validation_alias=AliasChoices("violation_id", "event_id"),
        description="the CloudEvent id (deterministic violation id)",
    )
    status: Status
    drift_kind: str | None = None
    element: str | None = None
    expected_value: str | None = Field(
        default=None,
        serialization_alias="expected",
        validation_alias=AliasChoices("expected_value", "expected"),
    )
    actual_value: str | None = Field(
        default=None, serialization_alias="actual", validation_alias=AliasChoices("actual_value", "actual")
    )
    occurred_at: datetime = Field(description="detected_at, or resolved_at")
    opened_at: datetime
    open_duration_s: float | None = None
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
        header = {name: getattr(d, name) for name in ViolationHeader.model_fields}
        when = {"occurred_at": d.occurred_at, "opened_at": d.opened_at, "event": ev}
        if isinstance(d, ResolvedData):
            return cls(**header, **when, status="resolved", open_duration_s=d.open_duration_s)
        return cls(
            **header,
            **when,
            status="firing",
            drift_kind=d.drift_kind.value if d.drift_kind else None,
            element=d.element,
            expected_value=d.expected_value,
            actual_value=d.actual_value,
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
        return stable_id("notification", self.channel, *sorted(a.violation_id for a in self.alerts))

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(a.violation_id for a in self.alerts)

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
