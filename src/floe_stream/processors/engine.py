"""The evaluation engine of one processor: state of the assets it owns, checks, episodes. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.checks.base import Check
from floe_stream.processors.episodes import apply_evaluation
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Outputs
from floe_stream.processors.registry import CHECKS


class Engine:
    def __init__(
        self,
        checks: Sequence[Check] = CHECKS,
        *,
        clock_skew_s: float = 60.0,
        info_at: float = 0.8,
        warning_at: float = 0.9,
    ) -> None:
        self.checks = tuple(checks)
        self.clock_skew_s = clock_skew_s
        self.info_at = info_at
        self.warning_at = warning_at
        self.states: dict[str, AssetState] = {}
        self.dirty: set[str] = set()

    def _ctx(self, now: datetime, trigger: str) -> EvalContext:
        return EvalContext(
            now=now,
            clock_skew_s=self.clock_skew_s,
            info_at=self.info_at,
            warning_at=self.warning_at,
            trigger=trigger,  # type: ignore[arg-type]
        )

    def state(self, asset_id: str, now: datetime) -> AssetState:
        st = self.states.get(asset_id)
        if st is None:
            st = AssetState(asset_id=asset_id, watch_since=now)
            self.states[asset_id] = st
            self.dirty.add(asset_id)
        return st

    def load(self, states: Iterable[AssetState]) -> None:
        for st in states:
            self.states[st.asset_id] = st

    def drop(self, asset_ids: Iterable[str]) -> None:
        for aid in asset_ids:
            self.states.pop(aid, None)
            self.dirty.discard(aid)

    def take_dirty(self) -> list[AssetState]:
        out = [self.states[a] for a in self.dirty if a in self.states]
        self.dirty.clear()
        return out

    def apply_update(
        self, asset: MonitoredAsset, update: AssetUpdate, now: datetime, trigger: str = "event"
    ) -> Outputs:
        ctx = self._ctx(now, trigger)
        state = self.state(asset.asset_id, now)
        out = Outputs()
        for check in self.checks:
            for ev in check.on_update(asset, state, update, ctx):
                state, o = apply_evaluation(asset, state, ev, ctx, update.event_id)
                out.extend(o)
        changes: dict[str, object] = {}
        if state.last_update_at is None or update.data_time > state.last_update_at:
            changes["last_update_at"] = update.data_time
            changes["last_event_id"] = update.event_id
        if update.sequence is not None and (state.last_sequence is None or update.sequence > state.last_sequence):
            changes["last_sequence"] = update.sequence
        if changes:
            state = state.model_copy(update=changes)
        self.states[asset.asset_id] = state
        self.dirty.add(asset.asset_id)
        return out

    def apply_tick(self, assets: Iterable[MonitoredAsset], now: datetime) -> Outputs:
        ctx = self._ctx(now, "tick")
        source = f"tick:{now.isoformat()}"
        out = Outputs()
        for asset in assets:
            before = self.states.get(asset.asset_id)
            state = self.state(asset.asset_id, now)
            for check in self.checks:
                for ev in check.on_tick(asset, state, ctx):
                    state, o = apply_evaluation(asset, state, ev, ctx, source)
                    out.extend(o)
            if state is not before:
                self.states[asset.asset_id] = state
                self.dirty.add(asset.asset_id)
        return out
