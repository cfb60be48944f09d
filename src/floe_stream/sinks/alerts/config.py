"""The alerts routing: channels, routes, policy. Given either inline in the settings (the ``alerts:`` section of
``FLOE_CONFIG_FILE``, or ``FLOE_ALERTS__ROUTES`` etc.) or as a separate YAML file (``alerts.config_file``,
``FLOE_ALERTS__CONFIG_FILE``) — not both. Neither: no routes, the sink delivers nothing and says so.

Example (the separate file, or the same keys under ``alerts:`` in FLOE_CONFIG_FILE)::

    policy: {dedup_window_s: 1800, rate_limit: {max_alerts: 10, per_s: 3600}, group_wait_s: 2, group_by: asset}
    channels:
      - {name: ops-hook, type: webhook, url: "https://hooks.example/floe", secret_env: FLOE_HOOK_SECRET}
      - {name: oncall, type: pagerduty, secret_env: PD_ROUTING_KEY, timeout_s: 5}
    routes:
      - {channel: oncall, min_severity: critical, continue: true}
      - {channel: ops-hook, match: {domain: payments}, match_re: {asset: "^orders\\\\..*"}}

Every model forbids unknown keys: a typo is a :class:`~floe_stream.settings.ConfigError` at start-up,
with one message naming the file and the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from floe_stream.settings import CONFIG_FILE_ENV, AlertsSettings, ConfigError
from floe_stream.topics.enums import Severity
from floe_stream.validation import describe

MATCH_KEYS = frozenset(
    {"contract", "contract_id", "asset", "owner", "team", "domain", "tags", "violation_type", "severity"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Strict):
    max_alerts: int = Field(default=10, ge=1, description="firing alerts per contract per window")
    per_s: float = Field(default=3600.0, gt=0)


class Policy(_Strict):
    dedup_window_s: float = Field(default=1800.0, ge=0, description="per (asset, violation type); 0 disables")
    rate_limit: RateLimit = RateLimit()
    group_wait_s: float = Field(
        default=2.0, ge=0, description="collect an asset's violations this long; 0 = off"
    )
    group_by: Literal["asset", "contract"] = "asset"
    resend_interval_s: float = Field(default=60.0, gt=0, description="re-send firing alerts (Alertmanager)")
    circuit_failures: int = Field(
        default=3, ge=1, description="consecutive dead-lettered deliveries that open a channel's circuit"
    )
    circuit_cooldown_s: float = Field(default=30.0, ge=0)


class ChannelConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    type: str
    url: str | None = None
    url_env: str | None = Field(
        default=None, description="env var holding the URL (e.g. a Slack webhook URL)"
    )
    secret: SecretStr | None = None
    secret_env: str | None = Field(default=None, description="env var holding the secret")
    timeout_s: float = Field(default=10.0, gt=0, description="per attempt")
    max_attempts: int = Field(default=4, ge=1)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_retry_after_s: float = Field(default=60.0, ge=0, description="cap on a receiver's Retry-After")
    send_resolved: bool = True
    max_in_flight: int = Field(
        default=16, ge=1, description="concurrent sends; the timeout starts with the slot"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="channel-type specific, validated by it"
    )

    def resolved_url(self) -> str | None:
        if self.url_env:
            return os.environ.get(self.url_env) or None
        return self.url

    def resolved_secret(self) -> SecretStr | None:
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            return SecretStr(value) if value else None
        return self.secret

    def budget_s(self) -> float:
        """Longest a delivery can take (attempts, backoff, Retry-After): a claim older than this is stale."""
        waits = max(self.backoff_max_s, self.max_retry_after_s)
        return self.max_attempts * self.timeout_s + (self.max_attempts - 1) * waits + 5.0


class Route(_Strict):
    channel: str | None = None
    channels: tuple[str, ...] = ()
    min_severity: Severity = Severity.INFO
    match: dict[str, str] = Field(default_factory=dict, description="exact label values (tags: one tag)")
    match_re: dict[str, str] = Field(default_factory=dict, description="full-match regular expressions")
    continue_: bool = Field(default=False, alias="continue")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("match", "match_re")
    @classmethod
    def _known_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - MATCH_KEYS)
        if unknown:
            raise ValueError(f"unknown matcher key(s) {unknown}; use {sorted(MATCH_KEYS)}")
        return value

    @field_validator("match_re")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for k, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"match_re.{k}: invalid regular expression {pattern!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_channel(self) -> Route:
        if not self.targets():
            raise ValueError("a route needs 'channel' or 'channels'")
        return self

    def targets(self) -> tuple[str, ...]:
        return ((self.channel,) if self.channel else ()) + tuple(
            c for c in self.channels if c != self.channel
        )


class AlertsConfig(_Strict):
    policy: Policy = Policy()
    channels: tuple[ChannelConfig, ...] = ()
    routes: tuple[Route, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> AlertsConfig:
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate channel name(s) {dupes}")
        for i, r in enumerate(self.routes):
            missing = [t for t in r.targets() if t not in names]
            if missing:
                raise ValueError(f"routes[{i}] names unknown channel(s) {missing}; declared: {names}")
        return self

    def channel(self, name: str) -> ChannelConfig:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)


def parse_config(raw: Any, source: str = "alerts config") -> AlertsConfig:
    """Validate a parsed YAML document; raise :class:`ConfigError` with one message."""
    if raw is None:
        raw = {}
    try:
        return AlertsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid alerts configuration {source}: {describe(exc)}") from None


def resolve_config(alerts: AlertsSettings, config_file: Path | None = None) -> AlertsConfig:
    """The routing of the settings: the separate file (``alerts.config_file``) or the inline keys; an empty
    :class:`AlertsConfig` (no channels, no routes) when neither is given."""
    inline = alerts.inline_routing()
    if alerts.config_file is not None:
        if inline:
            raise ConfigError(
                f"alerts routing is given twice: alerts.config_file ({alerts.config_file}) and "
                f"alerts.{'/'.join(inline)}; keep one"
            )
        return load_config(alerts.config_file)
    where = (
        f"(alerts section of {CONFIG_FILE_ENV}={config_file} or FLOE_ALERTS__*)"
        if config_file
        else ("(FLOE_ALERTS__*)")
    )
    return parse_config(inline, where)


def load_config(path: Path | None) -> AlertsConfig:
    if path is None:
        raise ConfigError("no alerts configuration file given: set FLOE_ALERTS__CONFIG_FILE")
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read alerts configuration {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"alerts configuration {path} is not valid YAML: {exc}") from None
    return parse_config(raw, str(path))
