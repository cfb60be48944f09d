"""The check policy: severity thresholds, hysteresis, flap control, quality and availability knobs.

The vocabulary shared by the global settings (``FLOE_CHECKS__…``, settings.py) and a contract's ``floe.checks``
overrides; merging the two is :func:`floe_stream.processors.policy.resolve_policy`. A data model, no logic
beyond its own validation: it sits at the bottom so that settings and processors both import it downwards.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
