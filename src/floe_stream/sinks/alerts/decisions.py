"""What happens to a batch of alerts: routing, silences, deduplication, rate limits, incidents and grouping,
as pure functions over typed state. No I/O: the store loads the state (under a per-contract lock), :func:`decide`
returns the :class:`Decisions`, the store writes them in the same transaction, the dispatcher delivers their
notifications. Semantics:

* **routes** are evaluated in order; the first match wins unless it says ``continue: true`` (then later
  matches add their channels). A contract may override routing with its ``floe`` custom property
  ``alerts: {channels: [...], min_severity: ...}`` — its violations then go to exactly those channels.
* **silences** (by contract and/or asset) mute firing alerts while active.
* **dedup**: per (asset, violation type), a firing alert within ``dedup_window_s`` of the last notified one is
  suppressed unless it escalates to a higher severity. Alerts decided within ``group_wait_s`` of the window's
  start belong to the same notification group and pass.
* **rate limit** per contract: at most ``max_alerts`` notified firing alerts per ``per_s``.
* **resolved** alerts follow their firing alert: they go to the channels the incident was notified on (those
  that send resolves), even when the contract is silenced or rate-limited — nothing is left open.
* an event decided before (a replay, another replica) keeps its first decision.
* every suppression has a reason; the sink records, counts and logs it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from floe_stream.contracts.extension import AlertsOverride
from floe_stream.sinks.alerts.config import Policy, Route
from floe_stream.sinks.alerts.model import Alert, Decision, DedupEntry, Incident, Notification, Silence
from floe_stream.validation import describe

ContractAlerting = AlertsOverride
"""``alerts:`` inside a contract's ``floe`` custom property (typed at load: ``MonitoredAsset.floe.alerts``)."""


def contract_override(overrides: Mapping[str, Any]) -> ContractAlerting | None:
    """The channel override in a raw ``floe`` mapping, or None; raises ValueError with a readable message.
    (A loaded contract has it typed already: ``asset.floe.alerts``.)"""
    raw = overrides.get("alerts")
    if raw is None:
        return None
    try:
        return ContractAlerting.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"floe.alerts: {describe(exc)}") from None


def _matches(route: Route, alert: Alert) -> bool:
    if alert.severity.rank < route.min_severity.rank:
        return False
    labels = alert.match_labels()
    for key, want in route.match.items():
        if key == "tags":
            if want not in alert.tags:
                return False
        elif labels.get(key) != want:
            return False
    for key, pattern in route.match_re.items():
        if key == "tags":
            if not any(re.fullmatch(pattern, t) for t in alert.tags):
                return False
        elif re.fullmatch(pattern, labels.get(key, "")) is None:
            return False
    return True


def route(alert: Alert, routes: Sequence[Route], override: ContractAlerting | None = None) -> tuple[str, ...]:
    """Channels a firing alert goes to (ordered, unique)."""
    if override is not None:
        return override.channels if alert.severity.rank >= override.min_severity.rank else ()
    out: list[str] = []
    for r in routes:
        if not _matches(r, alert):
            continue
        out.extend(t for t in r.targets() if t not in out)
        if not r.continue_:
            break
    return tuple(out)


def active_silence(alert: Alert, silences: Iterable[Silence], now: datetime) -> Silence | None:
    for s in silences:
        if s.active(now) and s.matches(alert):
            return s
    return None


def decide_one(
    alert: Alert,
    *,
    now: datetime,
    policy: Policy,
    channels: Sequence[str],
    dedup: DedupEntry | None,
    recent_notified: int,
    silences: Iterable[Silence],
    incident: Incident | None,
    resolve_capable: frozenset[str],
) -> Decision:
    """Whether ``alert`` is notified, and to which channels. ``channels`` = :func:`route` of the alert;
    ``recent_notified`` = firing alerts of its contract notified within the rate-limit window."""
    if alert.status == "resolved":
        if incident is None or incident.status != "open":
            return Decision(event_id=alert.violation_id, notify=False, reason="no_open_incident")
        targets = tuple(c for c in incident.channels if c in resolve_capable)
        if not targets:
            return Decision(event_id=alert.violation_id, notify=False, reason="no_resolve_channel")
        return Decision(event_id=alert.violation_id, notify=True, channels=targets, reason="resolved")

    silence = active_silence(alert, silences, now)
    if silence is not None:
        return Decision(event_id=alert.violation_id, notify=False, reason=f"silenced:{silence.silence_id}")
    if not channels:
        return Decision(event_id=alert.violation_id, notify=False, reason="no_route")
    escalates = dedup is not None and alert.severity.rank > dedup.severity.rank
    if dedup is not None and not escalates:
        age = (now - dedup.window_started_at).total_seconds()
        if policy.group_wait_s < age < policy.dedup_window_s or (age < 0 < policy.dedup_window_s):
            return Decision(event_id=alert.violation_id, notify=False, reason="duplicate")
    if recent_notified >= policy.rate_limit.max_alerts:
        return Decision(event_id=alert.violation_id, notify=False, reason="rate_limited")
    replaces = None
    if incident is not None and incident.status == "open" and alert.severity.rank > incident.severity.rank:
        replaces = incident.severity
    return Decision(
        event_id=alert.violation_id,
        notify=True,
        channels=tuple(channels),
        reason="escalation" if replaces or escalates else "new",
        replaces_severity=replaces,
    )


def next_dedup(alert: Alert, entry: DedupEntry | None, now: datetime, policy: Policy) -> DedupEntry:
    """Dedup state after notifying ``alert`` (call only for notified firing alerts)."""
    if entry is not None:
        age = (now - entry.window_started_at).total_seconds()
        same_window = 0 <= age < policy.dedup_window_s
        if same_window and alert.severity.rank <= entry.severity.rank:
            return entry  # a member of the window's first group
    return DedupEntry(
        asset=alert.asset,
        violation_type=alert.violation_type.value,
        window_started_at=now,
        severity=alert.severity,
    )


def next_incident(alert: Alert, decision: Decision, incident: Incident | None) -> Incident | None:
    """Incident state after a notified decision (None = unchanged)."""
    if not decision.notify:
        return None
    if alert.status == "resolved":
        assert incident is not None
        return incident.model_copy(update={"status": "resolved"})
    channels: tuple[str, ...] = decision.channels
    severity = alert.severity
    if incident is not None and incident.status == "open":
        channels = tuple(dict.fromkeys([*incident.channels, *decision.channels]))
        if incident.severity.rank > severity.rank:
            severity = incident.severity
    return Incident(
        correlation_key=alert.correlation_key,
        status="open",
        severity=severity,
        channels=channels,
        violation_id=alert.violation_id,
    )


def group_key(alert: Alert, group_by: str) -> str:
    return alert.contract_id if group_by == "contract" else alert.asset


def notifications(
    decided: Sequence[tuple[Alert, Decision]],
    *,
    group_by: str,
    grouping_channels: frozenset[str],
) -> list[Notification]:
    """One notification per (channel, status, group) for channels that group; one per alert otherwise.
    Firing notifications come first: resolved ones must not overtake them."""
    groups: dict[tuple[str, str, str], list[Alert]] = defaultdict(list)
    for alert, d in decided:
        if not d.notify:
            continue
        a = (
            alert
            if d.replaces_severity is None
            else alert.model_copy(update={"replaces_severity": d.replaces_severity})
        )
        for ch in d.channels:
            key = group_key(a, group_by) if ch in grouping_channels else a.violation_id
            groups[(ch, a.status, key)].append(a)
    out = [
        Notification(channel=ch, status=status, group_key=key, alerts=tuple(alerts))  # type: ignore[arg-type]
        for (ch, status, key), alerts in groups.items()
    ]
    return sorted(out, key=lambda n: n.status != "firing")


# --- a batch ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rules:
    """The configuration the decisions read, built once at start."""

    policy: Policy
    routes: tuple[Route, ...] = ()
    overrides: Mapping[str, ContractAlerting] = field(default_factory=dict)
    """asset id → its contract's ``floe.alerts`` (replaces the routes for that asset)"""
    resolve_capable: frozenset[str] = frozenset()
    """channels that send resolves (and are configured to)"""
    grouping_channels: frozenset[str] = frozenset()
    """channels that send one notification per group instead of one per alert"""

    def channels(self, alert: Alert) -> tuple[str, ...]:
        """Where a firing alert is routed; a resolved one follows its incident instead (none here)."""
        if alert.status != "firing":
            return ()
        return route(alert, self.routes, self.overrides.get(alert.asset))


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the decisions of a batch read: loaded by the store in one transaction, under the batch's
    contract locks (replicas decide one contract's alerts one batch at a time)."""

    decided: Mapping[str, Decision] = field(default_factory=dict)
    """violation id → its earlier decision, for the batch's alerts decided before (a replay keeps it)"""
    silences: tuple[Silence, ...] = ()
    """the silences active now"""
    notified_recently: Mapping[str, int] = field(default_factory=dict)
    """contract id → its firing alerts notified within the rate-limit window"""
    dedup: Mapping[tuple[str, str], DedupEntry] = field(default_factory=dict)
    """(asset, violation type) → the last notified window"""
    incidents: Mapping[str, Incident] = field(default_factory=dict)
    """correlation key → its incident"""


@dataclass(frozen=True, slots=True)
class Decisions:
    """What :func:`decide` concluded for a batch: every alert's decision, the state to write, what to send."""

    by_alert: Mapping[str, Decision]
    """violation id → decision, for every alert of the batch (earlier decisions included)"""
    made: tuple[tuple[Alert, Decision], ...] = ()
    """the decisions made now, in batch order (the store records them)"""
    dedup: tuple[DedupEntry, ...] = ()
    """dedup windows that changed"""
    opened: tuple[tuple[Incident, Alert], ...] = ()
    """incidents opened or escalated, with the firing alert that did it (re-sent while firing)"""
    resolved: tuple[str, ...] = ()
    """correlation keys of the incidents resolved"""
    notifications: tuple[Notification, ...] = ()
    """what the channels send: firing before resolved"""

    @property
    def suppressed(self) -> list[tuple[Alert, Decision]]:
        """The alerts decided now and not notified (each with its reason)."""
        return [(a, d) for a, d in self.made if not d.notify]


def decide(batch: Sequence[Alert], state: AlertState, *, now: datetime, rules: Rules) -> Decisions:
    """The decisions of a batch in order: each alert sees the dedup windows, rate-limit counts and incidents
    the alerts before it left."""
    alerts = list({a.violation_id: a for a in batch}.values())
    by_alert = {
        a.violation_id: state.decided[a.violation_id] for a in alerts if a.violation_id in state.decided
    }
    recent = dict(state.notified_recently)
    dedup = dict(state.dedup)
    incidents = dict(state.incidents)
    made: list[tuple[Alert, Decision]] = []
    dedup_changed: dict[tuple[str, str], DedupEntry] = {}
    opened: dict[str, tuple[Incident, Alert]] = {}
    resolved: dict[str, None] = {}
    for a in alerts:
        if a.violation_id in by_alert:
            continue
        dkey = (a.asset, a.violation_type.value)
        incident = incidents.get(a.correlation_key)
        d = decide_one(
            a,
            now=now,
            policy=rules.policy,
            channels=rules.channels(a),
            dedup=dedup.get(dkey),
            recent_notified=recent.get(a.contract_id, 0),
            silences=state.silences,
            incident=incident,
            resolve_capable=rules.resolve_capable,
        )
        by_alert[a.violation_id] = d
        made.append((a, d))
        if not d.notify:
            continue
        if a.status == "firing":
            recent[a.contract_id] = recent.get(a.contract_id, 0) + 1
            entry = next_dedup(a, dedup.get(dkey), now, rules.policy)
            if entry is not dedup.get(dkey):
                dedup[dkey] = dedup_changed[dkey] = entry
        new_incident = next_incident(a, d, incident)
        if new_incident is None:
            continue
        incidents[a.correlation_key] = new_incident
        if a.status == "firing":
            resolved.pop(a.correlation_key, None)
            opened[a.correlation_key] = (new_incident, a)
        else:
            opened.pop(a.correlation_key, None)
            resolved[a.correlation_key] = None
    notes = notifications(
        [(a, by_alert[a.violation_id]) for a in alerts],
        group_by=rules.policy.group_by,
        grouping_channels=rules.grouping_channels,
    )
    return Decisions(
        by_alert=by_alert,
        made=tuple(made),
        dedup=tuple(dedup_changed.values()),
        opened=tuple(opened.values()),
        resolved=tuple(resolved),
        notifications=tuple(notes),
    )
