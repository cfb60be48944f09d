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

from typing import Any

from pydantic import ValidationError

from floe_stream.contracts.policy import DEFAULT_POLICY, POLICY_FIELDS, CheckPolicy

__all__ = ["DEFAULT_POLICY", "POLICY_FIELDS", "CheckPolicy", "override_problems", "resolve_policy"]


def resolve_policy(base: CheckPolicy, overrides: dict[str, Any]) -> tuple[CheckPolicy, str | None]:
    """``base`` with the contract's ``floe.checks`` mapping merged field by field.

    Returns (policy, problem): on an invalid override the base policy and a one-line reason."""
    checks = overrides.get("checks")
    if not checks:
        return base, None
    if not isinstance(checks, dict):
        return base, f"floe.checks must be a mapping, got {type(checks).__name__}"
    known = {k: v for k, v in checks.items() if k in POLICY_FIELDS}
    unknown = sorted(set(checks) - POLICY_FIELDS)
    try:
        policy = CheckPolicy.model_validate({**base.model_dump(), **known})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "checks"
        return base, f"floe.checks.{where}: {err['msg']}"
    return policy, (f"floe.checks: unknown key(s) {', '.join(unknown)} ignored" if unknown else None)


def override_problems(asset: Any) -> list[str]:
    """Lint: what is wrong in an asset's ``floe.checks`` (a MonitoredAsset). The probe target's problems are
    :func:`floe_stream.probes.targets.probe_problems`; ``floe contracts lint`` runs both."""
    _, problem = resolve_policy(DEFAULT_POLICY, asset.overrides)
    return [f"{asset.asset_id}: {problem}"] if problem else []
