"""Turn evaluations into check results and violation episodes (open, escalate, resolve). Pure.

Per finding key (``asset/check-key`` is the correlation key) the state machine is
``ok → pending → firing → (flapping) → resolved``, all kept in :class:`AssetState` (changelog-persisted):

* hysteresis: an episode opens after ``fail_after`` (N) consecutive failing evaluations that have been
  failing for at least ``fail_for_s``; it resolves after ``resolve_after`` (M) consecutive passes;
* flapping: every pass↔fail transition of a key is a flip; more than ``flap_threshold`` (K) flips in
  ``flap_window_s`` mark the key flapping: its episode opens (or stays) open, marked ``flapping`` in the
  violation ``context``, and is not resolved until the flips age out of the window — one episode, no storm;
* CRITICAL: each time an episode of a check type reaches ERROR the time is kept per asset; when more than
  ``critical_count`` breaches of that type fall in ``critical_window_s`` the new violation is CRITICAL;
* every open and every escalation is a new violation event (never swallowed); a resolve is a
  ``floe.contract.violation.resolved`` event with the same correlation key and the open duration;
* bounded whatever the input (``processors/bounds.py``): at most ``limits.max_findings`` findings per
  evaluation, texts clipped, breach times and finding keys per asset capped (``limits.max_tracked_keys``:
  the oldest settled tracks are forgotten first, then the oldest open episodes are resolved).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from hashlib import blake2b
from heapq import nsmallest
from operator import attrgetter

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.bounds import bound_findings
from floe_stream.processors.ids import stable_id
from floe_stream.processors.model import (
    EMPTY,
    AssetState,
    EvalContext,
    Evaluation,
    Finding,
    KeyTrack,
    OpenEpisode,
    Outputs,
)
from floe_stream.topics.bounds import clip
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.enums import Severity
from floe_stream.topics.violation import ResolvedData, ViolationData

_RESULT_FIELDS = set(CheckResult.model_fields)
"""Shared by every result built here: pydantic copies a fields set before it changes one (model_copy)."""
_VIOLATION_FIELDS = set(ViolationData.model_fields)
_RESOLVED_FIELDS = set(ResolvedData.model_fields)
_EPISODE_FIELDS = set(OpenEpisode.model_fields) - {"passes"}
"""What validating the same call would mark set (``passes`` was left to its default)."""
_TRACK_FIELDS = set(KeyTrack.model_fields)

TEXT_MAX = 2000
"""Characters of a message, expected or actual value in a check result or violation (a check's message may
list every column of a wide table)."""
EPISODE_MESSAGE_MAX = 500
"""Characters of an open episode's message kept in the asset's state (the resolved event quotes it)."""
BREACHES_MAX = 100
"""Breach times kept per check type (CRITICAL escalation needs the newest ``critical_count + 1``)."""
FLIPS_MAX = 64
"""Flip times kept per finding key: a flap threshold above it is never reached (the default is 4)."""
STATE_BYTES = 256 * 1024
"""About the most an asset's finding keys (episodes, tracks) weigh in its changelog record."""
SMALL_STATE_KEYS = 16
"""Up to this many keys the state is small by construction and is not weighed."""
_TRACK_BYTES = 100
"""What a track weighs in the state's JSON besides its key and flips (:meth:`_Machine._weight`)."""
_FLIP_BYTES = 36
"""What one flip time weighs there."""
_FLIPS = attrgetter("flips")
LABELS_MAX = 50
"""Labels a violation carries (a contract's, clipped like every other text from a contract)."""


def _clip(text: str | None, limit: int = TEXT_MAX) -> str | None:
    return text if text is None or len(text) <= limit else clip(text, limit)


def _bounded(pairs: dict[str, str]) -> dict[str, str]:
    """Labels or context for a violation: at most LABELS_MAX entries of clipped keys and values (the same dict
    when it is within bounds: the common case)."""
    if len(pairs) <= LABELS_MAX and all(len(k) <= 200 and len(v) <= 500 for k, v in pairs.items()):
        return pairs
    return {clip(k, 200): clip(v, 500) for k, v in list(pairs.items())[:LABELS_MAX]}


def check_result(
    asset: MonitoredAsset, ev: Evaluation, ctx: EvalContext, source_event_id: str
) -> CheckResult:
    # one per evaluation (the hot path, bench/processor_cpu.py): built without validation from values typed
    # by construction (tests/unit/test_checks.py holds it equal to the validated model); the id is
    # stable_id("result", asset, check type, source event), spelled out
    aid = asset.asset_id
    expected, actual, message = ev.expected, ev.actual, ev.message
    return CheckResult.from_fields(
        {
            "result_id": blake2b(
                f"result\x1f{aid}\x1f{ev.check_type}\x1f{source_event_id}".encode(), digest_size=16
            ).hexdigest(),
            "asset": aid,
            "contract_id": asset.contract_id,
            "contract_version": asset.contract_version,
            "check_type": ev.check_type,
            "status": ev.status,
            "severity": ev.severity,
            "evaluated_at": ctx.now,
            "trigger": ctx.trigger,
            "metric": ev.metric,
            "sla_consumed": ev.sla_consumed,
            # _clip inline (a call each, per event)
            "expected": expected
            if expected is None or len(expected) <= TEXT_MAX
            else clip(expected, TEXT_MAX),
            "actual": actual if actual is None or len(actual) <= TEXT_MAX else clip(actual, TEXT_MAX),
            "message": message if len(message) <= TEXT_MAX else clip(message, TEXT_MAX),
            "source_event_id": source_event_id,
        },
        _RESULT_FIELDS,
    )


def _open(
    asset: MonitoredAsset,
    ev: Evaluation,
    f: Finding,
    ctx: EvalContext,
    opened: OpenEpisode | None,
    severity: Severity,
    context: dict[str, str],
    flapping: bool,
) -> tuple[OpenEpisode, ViolationData]:
    # the violation and the episode are built without validation from values typed by construction (a drift
    # burst opens one per event: bench/processor_cpu.py "drift"); tests/unit/test_hot_path.py holds them
    # equal to the validated models
    corr = opened.correlation_key if opened else f"{asset.asset_id}/{f.key}"
    started = opened.opened_at if opened else ctx.now
    vid = stable_id("violation", corr, started.isoformat(), severity)
    sla = f.sla_consumed
    data = ViolationData.from_fields(
        {
            "violation_id": vid,
            "correlation_key": corr,
            "contract_id": asset.contract_id,
            "contract_name": clip(asset.contract_name, TEXT_MAX),
            "contract_version": asset.contract_version,
            "asset": asset.asset_id,
            "violation_type": ev.check_type,
            "severity": severity,
            "message": clip(f.message, TEXT_MAX),
            "owner": _clip(asset.owner),
            "team": _clip(asset.team),
            "labels": _bounded(asset.labels()),
            "drift_kind": f.drift_kind,
            "element": _clip(f.element),
            "expected_value": _clip(f.expected),
            "actual_value": _clip(f.actual),
            "detected_at": ctx.now,
            "episode_started_at": started,
            "sla_consumed": None if sla is None else float(sla),
            "consumers": [clip(c, 500) for c in asset.consumers[:LABELS_MAX]],
            "context": dict(_bounded(context)),
        },
        _VIOLATION_FIELDS,
    )
    episode = OpenEpisode.from_fields(
        {
            "key": f.key,
            "check_type": ev.check_type,
            "violation_id": vid,
            "correlation_key": corr,
            "severity": severity,
            "opened_at": started,
            "message": clip(f.message, EPISODE_MESSAGE_MAX),
            "passes": 0,
            "flapping": flapping,
        },
        _EPISODE_FIELDS,
    )
    return episode, data


def resolved_event(
    asset: MonitoredAsset, ep: OpenEpisode, now: datetime, reason: str | None = None
) -> ResolvedData:
    # unvalidated like _open's violation (bench/processor_cpu.py "drift"; tests/unit/test_hot_path.py)
    return ResolvedData.from_fields(
        {
            "violation_id": stable_id("resolved", ep.correlation_key, ep.opened_at.isoformat()),
            "correlation_key": ep.correlation_key,
            "contract_id": asset.contract_id,
            "contract_name": clip(asset.contract_name, TEXT_MAX),
            "contract_version": asset.contract_version,
            "asset": asset.asset_id,
            "violation_type": ep.check_type,
            "severity": ep.severity,
            "message": f"resolved ({reason}): {ep.message}" if reason else f"resolved: {ep.message}",
            "owner": _clip(asset.owner),
            "team": _clip(asset.team),
            "labels": _bounded(asset.labels()),
            "opened_at": ep.opened_at,
            "resolved_at": now,
            "open_duration_s": max(0.0, (now - ep.opened_at).total_seconds()),
        },
        _RESOLVED_FIELDS,
    )


def _resolve(asset: MonitoredAsset, ep: OpenEpisode, ctx: EvalContext) -> ResolvedData:
    return resolved_event(asset, ep, ctx.now)


def _within(times: list[datetime], now: datetime, window_s: float) -> list[datetime]:
    """The times less than ``window_s`` before ``now`` (the same test as :func:`_unsettled`'s)."""
    if not times:
        return []
    cutoff = now - timedelta(seconds=window_s)
    return [t for t in times if t > cutoff]


class _Machine:
    """Mutable working copy of one asset's episode state for the duration of one evaluation."""

    def __init__(
        self, asset: MonitoredAsset, state: AssetState, ev: Evaluation, ctx: EvalContext, out: Outputs
    ):
        self.asset, self.ev, self.ctx, self.out = asset, ev, ctx, out
        self.open = dict(state.open)
        self.tracks = dict(state.tracks)
        self.breaches = dict(state.breaches)
        self.changed = False

    def _severity(self, wanted: Severity, context: dict[str, str]) -> Severity:
        """ERROR becomes CRITICAL when this is one breach too many of its type in the window."""
        if wanted.rank < Severity.ERROR.rank:
            return wanted
        pol, now = self.ctx.policy, self.ctx.now
        kind = self.ev.check_type.value
        times = [*_within(self.breaches.get(kind, []), now, pol.critical_window_s), now]
        times = times[-min(pol.critical_count + 1, BREACHES_MAX) :]  # the newest decide "more than N"
        self.breaches[kind] = times
        if len(times) > pol.critical_count:
            context["breaches_in_window"] = str(len(times))
            return Severity.CRITICAL
        return wanted

    def step(self, key: str, f: Finding | None) -> None:
        pol, now = self.ctx.policy, self.ctx.now
        failing = f is not None and f.severity is not None
        track = self.tracks.get(key)
        was_failing = track.failing if track else False
        flips = _within(track.flips, now, pol.flap_window_s) if track else []
        if failing != was_failing:
            flips.append(now)
        # the newest K+1 decide "more than K in the window" (at most FLIPS_MAX kept, whatever K)
        flips = flips[-(min(pol.flap_threshold, FLIPS_MAX) + 1) :]
        flapping = len(flips) > pol.flap_threshold
        ep = self.open.get(key)
        fails = 0
        since: datetime | None = None
        if failing:
            assert f is not None
            assert f.severity is not None
            since = track.failing_since if track and track.failing and track.failing_since else now
            context = dict(f.context or {})
            if flapping:
                context.update(flapping="true", flips=str(len(flips)))
            if ep is not None:
                if f.severity.rank > ep.severity.rank:
                    severity = self._severity(f.severity, context)
                    new_ep, data = _open(
                        self.asset, self.ev, f, self.ctx, ep, severity, context, ep.flapping or flapping
                    )
                    self.open[key] = new_ep
                    self.out.violations.append(data)
                elif ep.passes or (flapping and not ep.flapping):
                    self.open[key] = ep.model_copy(update={"passes": 0, "flapping": ep.flapping or flapping})
            else:
                fails = (track.fails if track and track.failing else 0) + 1
                if fails >= pol.fail_after and (now - since).total_seconds() >= pol.fail_for_s:
                    severity = self._severity(f.severity, context)
                    new_ep, data = _open(self.asset, self.ev, f, self.ctx, None, severity, context, flapping)
                    self.open[key] = new_ep
                    self.out.violations.append(data)
                    fails = 0
        elif ep is not None:
            passes = ep.passes + 1
            if passes >= pol.resolve_after and not flapping:
                self.out.violations.append(_resolve(self.asset, ep, self.ctx))
                del self.open[key]
            else:
                self.open[key] = ep.model_copy(update={"passes": passes, "flapping": ep.flapping or flapping})
        if not failing and not flips:
            if key in self.tracks:
                del self.tracks[key]
                self.changed = True
        elif (
            track is None
            or track.failing != failing
            or track.fails != fails
            or track.failing_since != since
            or track.flips != flips
        ):
            # compared field by field, built unvalidated (bench/processor_cpu.py "drift")
            self.tracks[key] = KeyTrack.from_fields(
                {"failing": failing, "fails": fails, "failing_since": since, "flips": flips}, _TRACK_FIELDS
            )
            self.changed = True

    def bound(self, limit: int) -> None:
        """At most ``limit`` finding keys (tracked or open) and about :data:`STATE_BYTES` of them in the
        state: forget the tracks of keys not open, settled ones (flips only) before pending failures, oldest
        first; then resolve the oldest open episodes (their key is tracked again if it fires next time)."""
        open_, tracks = self.open, self.tracks
        n = len(open_) + len(tracks)
        if n <= SMALL_STATE_KEYS and n <= limit:
            return  # the common case: a few keys cannot weigh STATE_BYTES (texts and flips are capped)
        light = (
            _TRACK_BYTES * len(tracks)
            + _FLIP_BYTES * sum(map(len, map(_FLIPS, tracks.values())))
            + 4 * sum(map(len, tracks))
            + sum(map(self._weight_open, open_))
            <= STATE_BYTES
        )  # at most what _weight sums (a key's UTF-8: ≤ 4 bytes a character), without a call per track
        if light and n <= limit:
            # a column-churning asset keeps up to max_tracked_keys settled tracks (with _unsettled's one loop:
            # bench/processor_cpu.py --events 60000 --batch 4, drift 317 → 279 µs an event)
            return
        keys = open_.keys() | tracks.keys()
        excess = len(keys) - limit
        if light:
            # over the count, not the weight (a churning asset at max_tracked_keys: a key more each event):
            # the loops below would drop the `excess` oldest settled tracks; picked without weighing every key
            # or sorting them all (with AssetState.json_size, bench/processor_cpu.py --events 160000, ~250
            # drift events an asset: drift 533 → 373 µs an event; tests/unit/test_episodes.py holds it equal
            # to the loops)
            if excess <= 0:
                return
            settled = [k for k in tracks if k not in open_]
            if len(settled) >= excess:
                for key in nsmallest(excess, settled, key=lambda k: (self._age(k), k)):
                    del tracks[key]
                self.changed = True
                return
        weight = sum(self._weight(k) for k in keys)
        if excess <= 0 and weight <= STATE_BYTES:
            return

        for key in sorted((k for k in self.tracks if k not in self.open), key=lambda k: (self._age(k), k)):
            if excess <= 0 and weight <= STATE_BYTES:
                return
            weight -= self._weight(key)
            del self.tracks[key]
            excess -= 1
            self.changed = True
        for ep in sorted(self.open.values(), key=lambda e: (e.opened_at, e.key)):
            if excess <= 0 and weight <= STATE_BYTES:
                return
            weight -= self._weight(ep.key)
            why = f"more than limits.max_tracked_keys ({limit}) or {STATE_BYTES // 1024} KiB of episodes open"
            self.out.violations.append(resolved_event(self.asset, ep, self.ctx.now, why))
            del self.open[ep.key]
            self.tracks.pop(ep.key, None)
            excess -= 1

    def _age(self, key: str) -> tuple[bool, datetime]:
        """The order in which :meth:`bound` forgets tracks: settled before failing, then the oldest last flip
        (or failure) first."""
        t = self.tracks[key]
        last = max(t.flips) if t.flips else (t.failing_since or self.ctx.now)
        return (t.failing, last)

    def _weight(self, key: str) -> int:
        """About the bytes ``key`` costs in the state's JSON (its track and its open episode)."""
        size = 0
        t = self.tracks.get(key)
        if t is not None:
            size += len(key.encode()) + _TRACK_BYTES + _FLIP_BYTES * len(t.flips)
        if key in self.open:
            size += self._weight_open(key)
        return size

    def _weight_open(self, key: str) -> int:
        """About the bytes the open episode of ``key`` costs in the state's JSON."""
        ep = self.open[key]
        return 2 * len(key.encode()) + len(ep.correlation_key.encode()) + len(ep.message.encode()) + 250


def _unsettled(m: _Machine, scope: str, seen: set[str], now: datetime, window_s: float) -> list[str]:
    """The keys of ``scope`` absent from the evaluation that a pass step could change: every open one, and the
    tracked ones that are failing, counting failures, or have a flip past the flap window (a pass step would
    leave any other track exactly as it is) — in key order. One loop without a call per key: a
    column-churning asset keeps dozens of settled tracks (bench/processor_cpu.py "drift")."""
    open_ = m.open
    keys = [k for k in open_ if k not in seen and k.startswith(scope)]
    cutoff = now - timedelta(seconds=window_s)  # the window test of _within, once
    for k, t in m.tracks.items():
        if k in seen or k in open_ or not k.startswith(scope):
            continue
        if t.failing or t.fails or (t.flips and min(t.flips) <= cutoff):
            keys.append(k)
    keys.sort()
    return keys


def _quiet(state: AssetState, ev: Evaluation) -> bool:
    """True when the evaluation cannot change any episode: no finding fires and none of its keys (nor any
    key of its scope) is open or tracked. The common case — a healthy asset — skips the state machine."""
    open_, tracks = state.open, state.tracks
    for f in ev.findings:
        if f.severity is not None or f.key in open_ or f.key in tracks:
            return False
    scope = ev.scope
    return (
        scope is None
        or not (open_ or tracks)
        or not (any(k.startswith(scope) for k in open_) or any(k.startswith(scope) for k in tracks))
    )


def apply_evaluation(
    asset: MonitoredAsset,
    state: AssetState,
    ev: Evaluation,
    ctx: EvalContext,
    source_event_id: str,
) -> tuple[AssetState, Outputs]:
    """Record ``ev``: a check result always; a violation when a finding opens or escalates an episode
    (after hysteresis); a resolved event when a firing finding clears (or disappears from the
    evaluation's scope) for long enough and is not flapping."""
    out = Outputs()
    return record_evaluation(asset, state, ev, ctx, source_event_id, out), out


def record_evaluation(
    asset: MonitoredAsset,
    state: AssetState,
    ev: Evaluation,
    ctx: EvalContext,
    source_event_id: str,
    out: Outputs,
) -> AssetState:
    """:func:`apply_evaluation` appending to ``out``; returns the new state."""
    if len(ev.findings) > ctx.limits.max_findings:
        ev = bound_findings(ev, ctx.limits.max_findings)
    out.check_results.append(check_result(asset, ev, ctx, source_event_id))
    if ev.state_update is None and _quiet(state, ev):
        return state  # nothing firing, nothing open or tracked for these keys: no state change
    m = _Machine(asset, state, ev, ctx, out)
    seen: set[str] = set()
    for f in ev.findings:
        seen.add(f.key)
        m.step(f.key, f)
    if ev.scope is not None:
        # stepping a settled key would change nothing: O(open keys) steps, not O(tracked)
        for key in _unsettled(m, ev.scope, seen, ctx.now, ctx.policy.flap_window_s):
            m.step(key, None)
    m.bound(ctx.limits.max_tracked_keys)
    checks = state.checks
    if ev.state_update is not None:
        checks = {**checks, ev.check_type.value: ev.state_update}
    if m.open != state.open or m.changed or m.breaches != state.breaches or checks is not state.checks:
        # an emptied mapping becomes the shared empty one (AssetState.compact; bench/state.py, memory)
        state = state.evolve(
            open=m.open or EMPTY,
            tracks=m.tracks or EMPTY,
            breaches=m.breaches or EMPTY,
            checks=checks or EMPTY,
        )
    return state
