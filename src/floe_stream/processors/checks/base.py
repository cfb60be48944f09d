"""The check protocol: pure functions of (asset, state, input, context) → evaluations, and each check's own
description of what it judges on an asset (``floe contracts explain``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation
from floe_stream.processors.policy import CheckPolicy
from floe_stream.topics.enums import CheckType, Severity

ProbeOf = Callable[[MonitoredAsset], str]
"""Where an asset is pinged, as shown (the caller passes it: probes/ is a layer above processors/)."""


@dataclass(frozen=True, slots=True)
class ExplainContext:
    """What a check needs besides the asset to explain itself: the asset's resolved policy (global settings
    with the contract's ``floe.checks`` merged in) and where its availability probe pings."""

    policy: CheckPolicy
    probe_of: ProbeOf | None = None

    @property
    def severities(self) -> str:
        """The SLA-consumed severity ladder of the resolved policy, as text."""
        p = self.policy
        return f"INFO at {p.info_at:.0%} of the SLA, WARNING at {p.warning_at:.0%}, ERROR on breach"

    def probe_where(self, asset: MonitoredAsset) -> str:
        return self.probe_of(asset) if self.probe_of is not None else "the probe target"


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

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        """What this check judges on ``asset``, as ``floe contracts explain`` shows it: one entry per thing
        judged (``check``, ``evaluates`` (a string or a list of strings), ``measured``, ``severity``), e.g.
        one per deadline; [] when the check does not apply to the asset."""
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
