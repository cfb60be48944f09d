"""The evaluation engine of one processor: state of the assets it owns, checks, episodes. No I/O."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from floe_stream.contracts.extension import FloeExtension
from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.bounds import RejectedInput, admit_probe, admit_update
from floe_stream.processors.checks.base import Check
from floe_stream.processors.episodes import apply_evaluation, record_evaluation, resolved_event
from floe_stream.processors.model import (
    DEFAULT_LIMITS,
    AssetState,
    AssetUpdate,
    EvalContext,
    Evaluation,
    Outputs,
    counts_as_new_data,
    error_evaluation,
)
from floe_stream.processors.policy import CheckPolicy, resolve_policy
from floe_stream.processors.registry import CHECKS
from floe_stream.topics.bounds import InputLimits
from floe_stream.topics.enums import CheckType
from floe_stream.topics.probe import ProbeResult

log = logging.getLogger(__name__)
_POLICIES_MAX = 1_000_000
TICK_SLICE = 1000
"""Assets a tick sweep evaluates between two pauses (:meth:`Engine.tick_steps`): bench/state.py at 1,000,000
assets, where one partition's sweep in one go held the event loop for seconds; ~10–30 ms a slice here."""

__all__ = ["Engine", "RejectedInput"]


def _applies(check: Check, asset: MonitoredAsset) -> bool:
    """A check may say it has nothing to judge on an asset (``applies(asset)``); by default it applies."""
    applies = getattr(check, "applies", None)
    return applies is None or bool(applies(asset))


class Engine:
    def __init__(
        self,
        checks: Sequence[Check] = CHECKS,
        *,
        untimed: Sequence[Check] | None = None,
        clock_skew_s: float = 60.0,
        info_at: float | None = None,
        warning_at: float | None = None,
        policy: CheckPolicy | None = None,
        limits: InputLimits | None = None,
    ) -> None:
        self.checks = tuple(checks)
        self.untimed = tuple(untimed) if untimed is not None else self.checks
        """The same checks without their measuring wrappers (telemetry's ``InstrumentedCheck``), in the same
        order: an update goes through ``checks`` while :attr:`timed_updates` lasts, then through these."""
        if [c.check_type for c in self.untimed] != [c.check_type for c in self.checks]:
            raise ValueError("untimed must be the same checks as checks, in the same order")
        self.timed_updates = sys.maxsize
        """Updates left that go through the measured ``checks``; the processor renews it per batch (the
        duration histogram keeps a few samples per batch). The per-event path then skips the wrapper's
        call: bench/processor_cpu.py (fresh) and bench/versus.py."""
        self.clock_skew_s = clock_skew_s
        self.limits = limits or DEFAULT_LIMITS
        self._future = timedelta(seconds=self.limits.max_future_s)
        self._past = timedelta(days=self.limits.max_past_days)
        self._bounds_at: datetime | None = None
        self._horizon = self._floor = datetime.min.replace(tzinfo=UTC)
        """Bounds on what one input may do (processors/bounds.py): implausible times and sequence jumps are
        refused with :class:`RejectedInput` before anything changes; findings and state keys are capped."""
        base = policy or CheckPolicy()
        if info_at is not None or warning_at is not None:
            base = base.model_copy(
                update={"info_at": info_at or base.info_at, "warning_at": warning_at or base.warning_at}
            )
        self.policy = base
        self.states: dict[str, AssetState] = {}
        self.dirty: set[str] = set()
        self.retired: set[str] = set()
        """Asset ids whose state was removed (contract retired): the changelog gets a tombstone."""
        self._policies: dict[int, tuple[FloeExtension, CheckPolicy]] = {}
        """id(asset.floe) → (that floe, its policy): per distinct settings, not per asset (bench/state.py)."""
        self._warned: set[str] = set()
        self._errors_logged: set[tuple[str, str]] = set()
        self._last_ctx: EvalContext | None = None
        self._quality_checks = tuple(c for c in self.checks if c.check_type == CheckType.QUALITY)
        self._probe_checks = tuple(c for c in self.checks if hasattr(c, "on_probe"))
        pairs = [(c, u) for c, u in zip(self.checks, self.untimed, strict=True)]
        self._update_pairs = tuple(p for p in pairs if getattr(p[0], "reacts_to_updates", True))
        self._structure_pairs = tuple(
            p for p in self._update_pairs if not getattr(p[0], "judges_new_data", False)
        )
        """Checks for an update that is not new data (a compaction, a zero-row append): drift, quality."""
        self._checks_of: dict[str, tuple[Any, ...]] = {}
        self._check_sets: dict[tuple[tuple[bool, ...], tuple[bool, ...]], tuple[tuple[Any, ...], ...]] = {}
        """Per asset: (asset, measured new-data checks, measured structure checks, the two untimed)."""
        self.tick_slice = TICK_SLICE
        """Assets a tick sweep evaluates between two pauses (:meth:`tick_steps`)."""
        self.counters: dict[str, int] = {}
        """``late_data`` (an update older than the newest seen: freshness unchanged) and ``not_new_data``
        (an update that does not count as new data, see :func:`counts_as_new_data`); for telemetry."""

    @property
    def info_at(self) -> float:
        return self.policy.info_at

    @property
    def warning_at(self) -> float:
        return self.policy.warning_at

    def policy_for(self, asset: MonitoredAsset) -> CheckPolicy:
        """The global policy with the contract's ``floe.checks`` overrides merged in (cached per asset)."""
        floe = asset.floe  # the policy depends on it alone; assets with equal settings share one object
        hit = self._policies.get(id(floe))
        if hit is not None and hit[0] is floe:
            return hit[1]
        policy, problem = resolve_policy(self.policy, floe)
        if problem and asset.asset_id not in self._warned:
            self._warned.add(asset.asset_id)
            log.warning("contract %s, asset %s: %s", asset.contract_id, asset.asset_id, problem)
        if len(self._policies) >= _POLICIES_MAX:  # contracts changed many times: drop what went with them
            self._policies.clear()
        self._policies[id(floe)] = (floe, policy)
        return policy

    def _error(self, asset: MonitoredAsset, check: Check, exc: Exception, what: str) -> Evaluation:
        """A check that raised: an ``error`` result for that check only (no verdict, no episode change); the
        other checks of the input still run. Logged once per (asset, check type) with the traceback."""
        reason = f"check raised {type(exc).__name__}: {exc}"
        key = (asset.asset_id, str(check.check_type))
        if key not in self._errors_logged:
            self._errors_logged.add(key)
            log.error(
                "check %s raised on %s of asset %s (contract %s); recorded as an error result",
                check.check_type, what, asset.asset_id, asset.contract_id, exc_info=exc,
            )  # fmt: skip
        return error_evaluation(check.check_type, reason)

    def _ctx(self, now: datetime, trigger: str, asset: MonitoredAsset | None = None) -> EvalContext:
        policy = self.policy_for(asset) if asset is not None else self.policy
        last = self._last_ctx
        if last is not None and last.now == now and last.policy is policy and last.trigger == trigger:
            return last  # records of one batch often share a timestamp (ms) and a policy (bench/processor_cpu.py)
        self._last_ctx = ctx = EvalContext(
            now=now,
            clock_skew_s=self.clock_skew_s,
            info_at=policy.info_at,
            warning_at=policy.warning_at,
            trigger=trigger,  # type: ignore[arg-type]
            policy=policy,
            limits=self.limits,
        )
        return ctx

    def state(self, asset_id: str, now: datetime) -> AssetState:
        st = self.states.get(asset_id)
        if st is None:
            st = AssetState(asset_id, now)
            self.states[asset_id] = st
            self.dirty.add(asset_id)
        return st

    def state_of(self, asset_id: str) -> AssetState | None:
        """The state of an asset this engine owns, else None (read-only: enrichment, telemetry)."""
        return self.states.get(asset_id)

    def load(self, states: Iterable[AssetState]) -> None:
        # restored from the changelog: shared empties (bench/state.py, memory)
        for st in states:
            self.states[st.asset_id] = st.compact()

    def drop(self, asset_ids: Iterable[str]) -> None:
        for aid in asset_ids:
            self.states.pop(aid, None)
            self.dirty.discard(aid)
            self._checks_of.pop(aid, None)

    def take_dirty(self) -> list[AssetState]:
        out = [self.states[a] for a in self.dirty if a in self.states]
        self.dirty.clear()
        return out

    def take_retired(self) -> list[str]:
        out = sorted(self.retired)
        self.retired.clear()
        return out

    def _check_set(self, asset: MonitoredAsset) -> tuple[tuple[Any, ...], ...]:
        """(measured new-data checks, measured structure checks, the two untimed) that apply to ``asset``;
        assets to which the same checks apply share one (bench/state.py: ~250 B less per asset)."""
        upd = tuple(_applies(p[0], asset) for p in self._update_pairs)
        struct = tuple(_applies(p[0], asset) for p in self._structure_pairs)
        found = self._check_sets.get((upd, struct))
        if found is None:
            u = [p for p, yes in zip(self._update_pairs, upd, strict=True) if yes]
            s = [p for p, yes in zip(self._structure_pairs, struct, strict=True) if yes]
            found = self._check_sets[(upd, struct)] = (
                tuple(p[0] for p in u),
                tuple(p[0] for p in s),
                tuple(p[1] for p in u),
                tuple(p[1] for p in s),
            )
        return found

    def apply_update(
        self, asset: MonitoredAsset, update: AssetUpdate, now: datetime, trigger: str = "event"
    ) -> Outputs:
        out = Outputs()
        self.update_into(asset, update, now, out, trigger)
        return out

    def update_into(
        self, asset: MonitoredAsset, update: AssetUpdate, now: datetime, out: Outputs, trigger: str = "event"
    ) -> None:
        """:meth:`apply_update` appending to ``out`` (the processor's per-event path). Raises
        :class:`RejectedInput` (nothing changed) for an implausible update (processors/bounds.py)."""
        aid = asset.asset_id
        known = self.states.get(aid)
        # the bounds of "now" once per distinct record time; the common update (no sequence, times within them)
        # costs two comparisons here, the full check with its reasons runs only otherwise (bench/processor_cpu.py)
        if now is not self._bounds_at:
            self._bounds_at = now
            self._horizon, self._floor = now + self._future, now - self._past
        at, data = update.updated_at, update.data_timestamp
        if (
            at > self._horizon
            or at < self._floor
            or (data is not None and data > self._horizon)
            or update.sequence is not None
            or update.oldest_data_time is not None
        ):
            admit_update(update, known.last_sequence if known is not None else None, now, self.limits)
        ctx = self._ctx(now, trigger, asset)
        state = known or self.state(aid, now)
        source = update.event_id
        new_data = True
        if update.operation is not None or update.row_count == 0:  # rare: is it new data? (commit-aware)
            u = asset.floe.updates
            new_data = counts_as_new_data(update, u.replace, u.delete_only, u.zero_rows)
            if not new_data:
                self.counters["not_new_data"] = self.counters.get("not_new_data", 0) + 1
        if update.quality_only:
            if update.quality is None:  # a failed run's report without assertions: context only, no verdict
                return
            checks = self._quality_checks
        else:
            # only the checks that apply to this asset (a check without an SLA here is not even called):
            # cached per asset object, one dict lookup per event (bench/processor_cpu.py, fresh)
            hit = self._checks_of.get(aid)
            if hit is None or hit[0] is not asset:
                hit = self._checks_of[aid] = (asset, *self._check_set(asset))
            if self.timed_updates > 0:
                self.timed_updates -= 1
                checks = hit[1] if new_data else hit[2]
            else:
                checks = hit[3] if new_data else hit[4]
        for check in checks:
            # try costs nothing until a check raises (3.11 zero-cost exceptions; bench/processor.py)
            try:
                evs = check.on_update(asset, state, update, ctx)
            except Exception as exc:
                evs = [self._error(asset, check, exc, "update")]
            for ev in evs:
                state = record_evaluation(asset, state, ev, ctx, source, out)
        if not update.quality_only and new_data:
            data_time = update.data_time
            last = state.last_update_at
            if last is not None and data_time < last:
                self.counters["late_data"] = self.counters.get("late_data", 0) + 1
            seq = update.sequence
            newer_seq = seq is not None and (state.last_sequence is None or seq > state.last_sequence)
            if last is None or data_time > last:
                if newer_seq:
                    state = state.evolve(last_update_at=data_time, last_event_id=source, last_sequence=seq)
                else:
                    state = state.with_update(data_time, source)
            elif newer_seq:
                state = state.evolve(last_sequence=seq)
        self.states[aid] = state
        self.dirty.add(aid)

    def apply_probe(self, asset: MonitoredAsset, result: ProbeResult, now: datetime) -> Outputs:
        """Judge one availability ping outcome (pure: the ping itself happened elsewhere). Raises
        :class:`RejectedInput` (nothing changed) when its times are implausible at ``now``."""
        admit_probe(result, now, self.limits)
        ctx = self._ctx(now, "event", asset)
        before = self.states.get(asset.asset_id)
        state = self.state(asset.asset_id, now)
        out = Outputs()
        for check in self._probe_checks:
            try:
                evs = check.on_probe(asset, state, result, ctx)  # type: ignore[attr-defined]
            except Exception as exc:
                evs = [self._error(asset, check, exc, "probe")]
            for ev in evs:
                state, o = apply_evaluation(asset, state, ev, ctx, result.probe_id)
                out.extend(o)
        if state is not before:
            self.states[asset.asset_id] = state
            self.dirty.add(asset.asset_id)
        return out

    def apply_tick(self, assets: Iterable[MonitoredAsset], now: datetime) -> Outputs:
        out = Outputs()
        for _ in self.tick_steps(assets, now, out):
            pass
        return out

    def tick_steps(self, assets: Iterable[MonitoredAsset], now: datetime, out: Outputs) -> Iterator[None]:
        """:meth:`apply_tick` into ``out``, pausing (yielding) after every :attr:`tick_slice` assets: the caller may let
        other work run between two slices (the processor yields to its event loop, so a sweep of a partition
        with a million assets does not stall heartbeats and fetches). Each asset is evaluated once; the result
        is that of one uninterrupted sweep over ``assets`` as given (the caller passes a snapshot)."""
        source = f"tick:{now.isoformat()}"
        contexts: dict[int, EvalContext] = {}  # one context per distinct policy in this sweep
        left = every = self.tick_slice
        for asset in assets:
            policy = self.policy_for(asset)
            ctx = contexts.get(id(policy))
            if ctx is None:
                ctx = contexts[id(policy)] = self._ctx(now, "tick", asset)
            before = self.states.get(asset.asset_id)
            state = self.state(asset.asset_id, now)
            for check in self.checks:
                try:
                    evs = check.on_tick(asset, state, ctx)
                except Exception as exc:
                    evs = [self._error(asset, check, exc, "tick")]
                for ev in evs:
                    state, o = apply_evaluation(asset, state, ev, ctx, source)
                    out.extend(o)
            if state is not before:
                self.states[asset.asset_id] = state
                self.dirty.add(asset.asset_id)
            left -= 1
            if not left:
                left = every
                yield

    def retire(self, asset: MonitoredAsset, now: datetime) -> Outputs:
        """The asset's contract was retired: resolve its open episodes (reason 'contract retired') and
        forget its state (the changelog gets a tombstone, see :meth:`take_retired`)."""
        out = Outputs()
        state = self.states.pop(asset.asset_id, None)
        self.dirty.discard(asset.asset_id)
        self._checks_of.pop(asset.asset_id, None)
        if state is None:
            return out
        for ep in state.open.values():
            out.violations.append(resolved_event(asset, ep, now, "contract retired"))
        self.retired.add(asset.asset_id)
        return out
