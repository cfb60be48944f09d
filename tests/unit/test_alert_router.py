"""Routing, silences, dedup, rate limit, escalation, resolve-follows-firing and grouping: pure decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from floe_stream.settings import ConfigError
from floe_stream.sinks.alerts import decisions
from floe_stream.sinks.alerts.config import Policy, RateLimit, parse_config
from floe_stream.sinks.alerts.model import Decision, Incident, Silence
from floe_stream.topics.enums import Severity
from tests.unit.alert_factory import T0, alert, resolved, violation

CONFIG = {
    "channels": [
        {"name": "pager", "type": "pagerduty", "secret": "k"},
        {"name": "sales-slack", "type": "slack", "url": "http://x"},
        {"name": "all-hook", "type": "webhook", "url": "http://y"},
        {"name": "tagged", "type": "webhook", "url": "http://z"},
    ],
    "routes": [
        {"channel": "pager", "min_severity": "critical", "continue": True},
        {"channel": "tagged", "match": {"tags": "pii"}},
        {"channel": "sales-slack", "match": {"domain": "sales"}, "match_re": {"asset": r"orders\..*"}},
        {"channel": "all-hook"},
    ],
}
POLICY = Policy(dedup_window_s=1800, rate_limit=RateLimit(max_alerts=3, per_s=3600), group_wait_s=2)
ALL = frozenset({"pager", "sales-slack", "all-hook", "tagged"})


def decide(a, **kw):  # type: ignore[no-untyped-def]
    args = {
        "now": T0,
        "policy": POLICY,
        "channels": decisions.route(a, parse_config(CONFIG).routes),
        "dedup": None,
        "recent_notified": 0,
        "silences": [],
        "incident": None,
        "resolve_capable": ALL,
    }
    args.update(kw)
    return decisions.decide_one(a, **args)


def test_routes_first_match_wins_and_continue_adds() -> None:
    routes = parse_config(CONFIG).routes
    assert decisions.route(alert(violation()), routes) == ("sales-slack",)
    assert decisions.route(alert(violation(severity=Severity.CRITICAL)), routes) == ("pager", "sales-slack")
    assert decisions.route(alert(violation(asset="payments.v1")), routes) == ("all-hook",)
    assert decisions.route(alert(violation(labels={"tags": "gold,pii"})), routes) == ("tagged",)


def test_contract_override_replaces_the_routing_table() -> None:
    ov = decisions.contract_override({"alerts": {"channels": ["pager"], "min_severity": "error"}})
    routes = parse_config(CONFIG).routes
    assert decisions.route(alert(violation()), routes, ov) == ("pager",)
    assert decisions.route(alert(violation(severity=Severity.WARNING)), routes, ov) == ()
    with pytest.raises(ValueError, match="channels"):
        decisions.contract_override({"alerts": {"channel": "x"}})


def test_bad_config_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\] names unknown channel"):
        parse_config({"channels": [], "routes": [{"channel": "nope"}]})
    with pytest.raises(ConfigError, match="colour"):
        parse_config({"channels": [{"name": "a", "type": "webhook", "colour": "red"}]})
    with pytest.raises(ConfigError, match="unknown matcher"):
        parse_config(
            {
                "channels": [{"name": "a", "type": "webhook"}],
                "routes": [{"channel": "a", "match": {"x": "1"}}],
            }
        )


def test_silence_mutes_firing_of_its_contract_only() -> None:
    s = Silence(
        silence_id="s1", contract="orders", starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=1)
    )
    d = decide(alert(violation()), silences=[s])
    assert not d.notify
    assert d.reason == "silenced:s1"
    assert decide(alert(violation(contract="payments")), silences=[s]).notify
    ended = s.model_copy(update={"ends_at": T0})
    assert decide(alert(violation()), silences=[ended]).notify


def test_dedup_window_suppresses_repeats_but_escalation_passes() -> None:
    a = alert(violation())
    first = decide(a)
    assert first.notify
    assert first.channels == ("sales-slack",)
    entry = decisions.next_dedup(a, None, T0, POLICY)
    later = T0 + timedelta(minutes=10)
    repeat = alert(violation(at=later))
    assert decide(repeat, now=later, dedup=entry).reason == "duplicate"
    # same grouping round (within group_wait of the window start): joins the notification
    sibling = alert(violation(element="id"))
    assert decide(sibling, now=T0 + timedelta(seconds=1), dedup=entry).notify
    worse = alert(violation(at=later, severity=Severity.CRITICAL))
    assert decide(worse, now=later, dedup=entry).notify
    after_window = T0 + timedelta(minutes=31)
    assert decide(alert(violation(at=after_window)), now=after_window, dedup=entry).notify


def test_rate_limit_per_contract() -> None:
    assert decide(alert(violation()), recent_notified=2).notify
    d = decide(alert(violation()), recent_notified=3)
    assert not d.notify
    assert d.reason == "rate_limited"


def test_resolved_follows_the_channels_of_its_incident_even_when_silenced() -> None:
    v = violation(severity=Severity.CRITICAL)
    inc = Incident(correlation_key=v.correlation_key, status="open", severity=Severity.CRITICAL,
                   channels=("pager", "sales-slack"), violation_id=v.violation_id)  # fmt: skip
    r = alert(resolved(v))
    s = Silence(silence_id="s1", contract="orders", starts_at=T0, ends_at=T0 + timedelta(hours=2))
    d = decide(r, incident=inc, silences=[s], resolve_capable=frozenset({"pager"}))
    assert d.notify
    assert d.channels == ("pager",)
    assert decide(r, incident=None).reason == "no_open_incident"
    assert decide(r, incident=inc.model_copy(update={"status": "resolved"})).reason == "no_open_incident"


def test_escalation_of_an_open_incident_names_the_severity_it_replaces() -> None:
    v = violation(severity=Severity.WARNING)
    inc = Incident(correlation_key=v.correlation_key, status="open", severity=Severity.WARNING,
                   channels=("sales-slack",), violation_id=v.violation_id)  # fmt: skip
    up = alert(violation(severity=Severity.CRITICAL))
    d = decide(up, incident=inc)
    assert d.notify
    assert d.replaces_severity == Severity.WARNING
    assert d.reason == "escalation"
    nxt = decisions.next_incident(up, d, inc)
    assert nxt is not None
    assert nxt.severity == Severity.CRITICAL
    assert set(nxt.channels) == {"sales-slack", "pager"}


def test_grouping_one_notification_per_asset_per_grouping_channel() -> None:
    a1, a2 = alert(violation(element="a")), alert(violation(element="b"))
    other = alert(violation(asset="orders.v2", element="a"))
    r = alert(resolved(violation(asset="orders.v3")))
    dec = [
        (a1, Decision(event_id=a1.violation_id, notify=True, channels=("slack", "hook"))),
        (a2, Decision(event_id=a2.violation_id, notify=True, channels=("slack", "hook"))),
        (other, Decision(event_id=other.violation_id, notify=True, channels=("slack",))),
        (r, Decision(event_id=r.violation_id, notify=True, channels=("slack",))),
    ]
    notes = decisions.notifications(dec, group_by="asset", grouping_channels=frozenset({"slack"}))
    slack = [n for n in notes if n.channel == "slack"]
    assert sorted(len(n.alerts) for n in slack) == [1, 1, 2]
    assert len([n for n in notes if n.channel == "hook"]) == 2  # the webhook sends one event per request
    assert notes[-1].status == "resolved"  # resolves never overtake firing notifications
    by_contract = decisions.notifications(dec, group_by="contract", grouping_channels=frozenset({"slack"}))
    assert len([n for n in by_contract if n.channel == "slack" and n.status == "firing"]) == 1


def test_a_batch_is_decided_in_order_from_the_loaded_state_alone() -> None:
    """decide(batch, state): records in a list → decisions, state changes and notifications out; no database."""
    rules = decisions.Rules(
        policy=POLICY.model_copy(update={"rate_limit": RateLimit(max_alerts=2, per_s=3600)}),
        routes=tuple(parse_config(CONFIG).routes),
        resolve_capable=ALL,
        grouping_channels=frozenset({"sales-slack"}),
    )
    first, again = violation(element="a"), violation(element="a", at=T0 + timedelta(seconds=1))
    earlier = violation(element="z")
    batch = [alert(first), alert(violation(element="b")), alert(violation(element="c")), alert(earlier)]
    kept = Decision(event_id=earlier.violation_id, notify=False, reason="duplicate")
    state = decisions.AlertState(decided={earlier.violation_id: kept}, notified_recently={"orders": 1})
    out = decisions.decide([*batch, alert(first)], state, now=T0, rules=rules)
    assert [d.reason for _, d in out.made] == [
        "new",
        "rate_limited",
        "rate_limited",
    ]  # one left in the window
    assert out.by_alert[earlier.violation_id] == kept  # decided before: kept, not decided again
    assert [(i.correlation_key, a.violation_id) for i, a in out.opened] == [
        (first.correlation_key, first.violation_id)
    ]
    assert [d.asset for d in out.dedup] == ["orders.v1"]
    assert [(n.channel, n.event_ids) for n in out.notifications] == [("sales-slack", (first.violation_id,))]
    assert [a.violation_id for a, _ in out.suppressed] == [batch[1].violation_id, batch[2].violation_id]

    closing = decisions.AlertState(incidents={first.correlation_key: out.opened[0][0]})
    done = decisions.decide([alert(again), alert(resolved(first))], closing, now=T0, rules=rules)
    assert done.resolved == (first.correlation_key,) and not done.opened  # resolved after the repeat: closed
    assert [n.status for n in done.notifications] == ["firing", "resolved"]
