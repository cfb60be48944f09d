"""Check policy: severity thresholds, hysteresis, flap control, quality and availability knobs. Pure.

The global policy comes from settings (``FLOE_CHECKS__…``); a contract may override any field in its
``floe`` custom property under ``checks`` (and the probe target under ``probe``)::

    customProperties:
      - property: floe
        value:
          checks: {warning_at: 0.95, fail_after: 3, resolve_after: 2, quality_threshold: 0.9}
          probe: {type: http, url: "https://api.example.com/health", expected_status: 200}

Overrides are merged field by field over the global policy by :func:`resolve_policy`; an invalid override
is ignored (the global value stays) and reported once, never crashes evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from floe_stream.contracts.extension import ChecksOverride, FloeExtension, extension_problem


class CheckPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    info_at: float = Field(
        default=0.8, gt=0, le=1, description="fraction of the SLA consumed that raises INFO"
    )
    warning_at: float = Field(
        default=0.9, gt=0, le=1, description="fraction of the SLA consumed that raises WARNING"
    )
    critical_count: int = Field(
        default=3,
        ge=1,
        description="more than this many breaches of one type for one asset in the window → CRITICAL",
    )
    critical_window_s: float = Field(default=86_400.0, gt=0)
    fail_after: int = Field(default=1, ge=1, description="N: failing evaluations before an episode opens")
    fail_for_s: float = Field(
        default=0.0, ge=0, description="and/or: failing for at least this long before opening"
    )
    resolve_after: int = Field(
        default=1, ge=1, description="M: passing evaluations before an open episode resolves"
    )
    flap_threshold: int = Field(default=4, ge=1, description="K: more than K flips in the window = flapping")
    flap_window_s: float = Field(default=3_600.0, gt=0)
    quality_threshold: float = Field(
        default=0.8, ge=0, le=1, description="weighted quality score below = violation"
    )
    availability_window_s: float = Field(
        default=86_400.0, gt=0, description="rolling availability ratio window"
    )
    availability_min_samples: int | None = Field(
        default=None,
        ge=1,
        description="pings in the window before the ratio is judged; None = the smallest count at which one "
        "failed ping stays within the error budget (ceil(1 / (1 - SLA))), capped at the pings one window holds",
    )
    availability_down_after: int = Field(
        default=3,
        ge=1,
        description="consecutive failed pings that raise ERROR even before the ratio is judged",
    )
    availability_recovery_pings: int = Field(
        default=5,
        ge=1,
        description="consecutive successful pings after which an open availability episode resolves, even "
        "while the window's ratio is still below the SLA (the spent budget stays in the report)",
    )
    ping_interval_s: float = Field(default=60.0, gt=0, description="availability ping period per asset")
    ping_timeout_s: float = Field(
        default=30.0, gt=0, description="a ping slower than this fails with 'timeout'"
    )

    @model_validator(mode="after")
    def _ordered(self) -> CheckPolicy:
        if self.info_at > self.warning_at:
            raise ValueError(f"info_at ({self.info_at}) must not exceed warning_at ({self.warning_at})")
        return self


DEFAULT_POLICY = CheckPolicy()
POLICY_FIELDS = frozenset(CheckPolicy.model_fields)


def resolve_policy(
    base: CheckPolicy, overrides: FloeExtension | Mapping[str, Any]
) -> tuple[CheckPolicy, str | None]:
    """``base`` with the contract's ``floe.checks`` merged field by field.

    ``overrides`` is the asset's typed :class:`FloeExtension` (a raw ``floe`` mapping is typed first).
    Returns (policy, problem): on an invalid override the base policy and a one-line reason."""
    if isinstance(overrides, FloeExtension):
        checks = overrides.checks.values() if overrides.checks else {}
    else:
        raw = overrides.get("checks")
        if not raw:
            return base, None
        if not isinstance(raw, dict):
            return base, f"floe.checks must be a mapping, got {type(raw).__name__}"
        try:
            checks = ChecksOverride.model_validate(raw).values()
        except ValidationError as exc:
            key, problem = extension_problem(exc, ChecksOverride)
            return base, f"floe.checks.{key}: {problem}"
    if not checks:
        return base, None
    try:
        policy = CheckPolicy.model_validate({**base.model_dump(), **checks})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "checks"
        return base, f"floe.checks.{where}: {err['msg']}"
    return policy, None


def override_problems(asset: Any) -> list[str]:
    """Lint: what is wrong or missing in an asset's ``floe.checks`` / ``floe.probe`` (a MonitoredAsset)."""
    from floe_stream.probes.targets import target_for

    out: list[str] = []
    _, problem = resolve_policy(DEFAULT_POLICY, asset.overrides)  # what is written, typed here
    if problem:
        out.append(f"{asset.asset_id}: {problem}")
    try:
        target = target_for(asset) if asset.availability is not None else None
        if asset.availability is not None and target is None:
            out.append(
                f"{asset.asset_id}: availability SLA but no probe target (servers or floe.probe); not pinged"
            )
    except ValueError as exc:
        out.append(f"{asset.asset_id}: {exc}")
    return out
