"""The check protocol: pure functions of (asset, state, input, context) → evaluations."""

from __future__ import annotations

from typing import Protocol

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation
from floe_stream.topics.enums import CheckType, Severity


class Check(Protocol):
    check_type: CheckType

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        """Evaluate an arriving materialization / commit. Return [] when the check does not apply."""
        ...

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        """Evaluate the passing of time (deadlines). Return [] when nothing is due."""
        ...


def sla_severity(consumed: float, breached: bool, ctx: EvalContext) -> Severity | None:
    """INFO at ``info_at`` of the SLA consumed, WARNING at ``warning_at``, ERROR when breached."""
    if breached:
        return Severity.ERROR
    if consumed >= ctx.warning_at:
        return Severity.WARNING
    if consumed >= ctx.info_at:
        return Severity.INFO
    return None
