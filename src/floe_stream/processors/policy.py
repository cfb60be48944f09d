"""Check policy: severity thresholds, hysteresis, flap control, quality and availability knobs. Pure.

The global policy comes from settings (``FLOE_CHECKS__…``); a contract may override any field in its
``floe`` custom property under ``checks`` (and the probe target under ``probe``)::

    customProperties:
      - property: floe
        value:
          checks: {warning_at: 0.95, fail_after: 3, resolve_after: 2, quality_threshold: 0.9}
          probe: {type: http, url: "https://api.example.com/health", expected_status: 200}

Overrides are typed and validated when the contract loads (:class:`~floe_stream.contracts.extension.ChecksOverride`)
and merged field by field over the global policy by :func:`resolve_policy`; a cross-field problem leaves the
global values in force and is reported once, never crashes evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from floe_stream.contracts.extension import ChecksOverride, FloeExtension, extension_problem
from floe_stream.contracts.policy import DEFAULT_POLICY, POLICY_FIELDS, CheckPolicy
from floe_stream.validation import problems

__all__ = ["DEFAULT_POLICY", "POLICY_FIELDS", "CheckPolicy", "override_problems", "resolve_policy"]


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
        return base, f"floe.checks.{problems(exc, root='checks')[0]}"
    return policy, None


def override_problems(asset: Any) -> list[str]:
    """Lint: what is wrong in an asset's ``floe.checks`` (a MonitoredAsset). The probe target's problems are
    :func:`floe_stream.probes.targets.probe_problems`; ``floe contracts lint`` runs both."""
    _, problem = resolve_policy(DEFAULT_POLICY, asset.overrides)
    return [f"{asset.asset_id}: {problem}"] if problem else []
