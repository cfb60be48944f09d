"""The ``floe`` custom property of an ODCS contract, typed: one frozen model, validated when the contract loads.

A contract (or one of its tables, or one quality rule) may carry floe settings::

    customProperties:
      - property: floe
        value:
          asset: sales.orders            # the asset id (default: physicalName, else the table name)
          aliases: [orders_v2]           # other names that resolve to it
          consumers: [bi, ml]            # told about violations and lifecycle notices
          checks: {fail_after: 3, warning_at: 0.95}       # check-policy overrides (see processors/policy.py)
          probe: {type: http, url: "https://api.example/health", expected_status: [200, 204]}
          alerts: {channels: [pager], min_severity: error}  # replaces the routing table for this contract
          intervals: {quality: 6h}       # expected check cadence per check type (coverage in reports)
          timezone: Europe/Berlin        # zone of frequency / timeOfAvailability schedules (default UTC)
          updates: {zero_rows: false, replace: false, delete_only: false}   # what counts as new data
          lifecycle: {notice_days: 30}   # info notice this many days before endOfSupport / endOfLife
          weight: 2                      # on a quality rule: its weight in the quality score

Table settings win over contract settings key by key (``consumers`` are added up). A wrong value is a load
error naming the exact key; a top-level key floe does not know is a warning (other tools may share the
namespace), with a "did you mean" when it is close to a known one. Everyone downstream reads these typed
fields; nobody parses the raw mapping again.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from floe_stream.contracts.document import shown
from floe_stream.durations import interval_seconds
from floe_stream.topics.enums import Severity
from floe_stream.validation import dotted, message

__all__ = [
    "AlertsOverride",
    "ChecksOverride",
    "FloeExtension",
    "LifecycleSettings",
    "ProbeOverride",
    "UpdateSettings",
    "did_you_mean",
    "extension_problem",
    "unknown_keys",
]


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'latency'?"`` when ``word`` is close to one of ``known``, else ``""``."""
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.75)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChecksOverride(_Strict):
    """``floe.checks``: any field of the global check policy, each optional (None = the global value).

    Same names and bounds as :class:`floe_stream.processors.policy.CheckPolicy` (a unit test holds the two
    field sets equal); cross-field rules (``info_at <= warning_at``) are checked when merged over the policy.
    """

    info_at: float | None = Field(default=None, gt=0, le=1)
    warning_at: float | None = Field(default=None, gt=0, le=1)
    critical_count: int | None = Field(default=None, ge=1)
    critical_window_s: float | None = Field(default=None, gt=0)
    fail_after: int | None = Field(default=None, ge=1)
    fail_for_s: float | None = Field(default=None, ge=0)
    resolve_after: int | None = Field(default=None, ge=1)
    flap_threshold: int | None = Field(default=None, ge=1)
    flap_window_s: float | None = Field(default=None, gt=0)
    quality_threshold: float | None = Field(default=None, ge=0, le=1)
    availability_window_s: float | None = Field(default=None, gt=0)
    availability_min_samples: int | None = Field(default=None, ge=1)
    availability_down_after: int | None = Field(default=None, ge=1)
    availability_recovery_pings: int | None = Field(default=None, ge=1)
    ping_interval_s: float | None = Field(default=None, gt=0)
    ping_timeout_s: float | None = Field(default=None, gt=0)

    def values(self) -> dict[str, Any]:
        """Only the fields the contract sets."""
        return self.model_dump(exclude_none=True)


class ProbeOverride(BaseModel):
    """``floe.probe``: where to ping; wins field by field over the chosen ``servers`` entry.

    Keys other than the named ones are probe options (strings), e.g. ``method: HEAD`` for http."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535, strict=True)
    url: str | None = None
    database: str | None = None
    server: str | None = Field(default=None, description="which of the contract's servers to ping")
    expected_status: tuple[int, ...] | None = None

    @field_validator("expected_status", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return (value,)
        if isinstance(value, list | tuple) and value and all(type(v) is int for v in value):
            return tuple(value)
        if value is None:
            return None
        raise ValueError(f"must be a status code or a list of them, got {shown(value)}")

    def options(self) -> dict[str, str]:
        return {k: str(v) for k, v in (self.model_extra or {}).items()}

    def fields_set(self) -> set[str]:
        return set(self.model_fields_set) | set(self.model_extra or {})


class AlertsOverride(_Strict):
    """``floe.alerts``: this contract's violations go to exactly these channels (at or above min_severity)."""

    channels: tuple[str, ...] = Field(min_length=1)
    min_severity: Severity = Severity.INFO


class UpdateSettings(_Strict):
    """``floe.updates``: which updates count as new data for freshness (commit-aware freshness).

    Defaults: appends and overwrites that add records count; a ``replace`` snapshot (compaction, rewrite),
    a delete-only snapshot and an update that reports zero rows (a zero-row append, an OpenLineage
    COMPLETE with ``rowCount: 0``) do not."""

    replace: bool = False
    delete_only: bool = False
    zero_rows: bool = False


class LifecycleSettings(_Strict):
    """``floe.lifecycle``: an info notice ``notice_days`` before endOfSupport / endOfLife, a warning past it."""

    notice_days: float = Field(default=30.0, ge=0)


class FloeExtension(BaseModel):
    """The merged ``floe`` settings of one asset (or one quality rule)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    asset: str | None = None
    aliases: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    weight: float = 1.0
    checks: ChecksOverride | None = None
    probe: ProbeOverride | None = None
    alerts: AlertsOverride | None = None
    intervals: dict[str, float] = Field(default_factory=dict, description="seconds per check type")
    timezone: str | None = Field(default=None, description="IANA zone of schedules; None = UTC")
    updates: UpdateSettings = UpdateSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    slo: dict[str, float] = Field(default_factory=dict, description="compliance target % per check type")

    @field_validator("slo", mode="before")
    @classmethod
    def _slo(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a mapping of check type to a percentage, got {shown(value)}")
        out: dict[str, float] = {}
        for key, raw in value.items():
            pct = raw.strip().removesuffix("%").strip() if isinstance(raw, str) else raw
            try:
                number = float(pct)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{key}: must be a percentage like 99 or '99.5%', got {shown(raw)}"
                ) from None
            number = number * 100 if 0 < number <= 1 else number  # 0.995 reads as a ratio: 99.5 %
            if isinstance(raw, bool) or not (0 < number <= 100):
                raise ValueError(f"{key}: must be a percentage in (0, 100], got {shown(raw)}")
            out[str(key)] = number
        return out

    @field_validator("asset", mode="before")
    @classmethod
    def _asset(cls, value: Any) -> Any:
        if not (isinstance(value, str) and value.strip()):
            raise ValueError(f"must be a non-empty string, got {shown(value)}")
        return value

    @field_validator("aliases", "consumers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if value is None:
            return ()
        if not (isinstance(value, list | tuple) and all(isinstance(x, str) and x.strip() for x in value)):
            raise ValueError(f"must be a list of non-empty strings, got {shown(value)}")
        return tuple(value)

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> Any:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= 0)
        ):
            raise ValueError(f"must be a number >= 0, got {shown(value)}")
        return value

    @field_validator("intervals", mode="before")
    @classmethod
    def _intervals(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a mapping of check type to duration, got {shown(value)}")
        out: dict[str, float] = {}
        for key, v in value.items():
            try:
                out[str(key)] = interval_seconds(v)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return out

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be an IANA time zone name such as 'Europe/Berlin', got {shown(value)}")
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{shown(value)} is not an IANA time zone (e.g. 'Europe/Berlin', 'UTC')"
            ) from None
        return value.strip()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")


KNOWN_KEYS = frozenset(FloeExtension.model_fields)


def unknown_keys(raw: Mapping[str, Any]) -> list[str]:
    """One warning per top-level key floe does not read, with a "did you mean" when close to a known one."""
    return [
        f"unknown floe setting {key!r} ignored{did_you_mean(str(key), KNOWN_KEYS)}"
        for key in raw
        if key not in KNOWN_KEYS
    ]


def extension_problem(exc: ValidationError, model: type[BaseModel] | None = None) -> tuple[str, str]:
    """(dotted key, problem) of the first error: ``("checks.fail_after", "input should be ...")``.

    ``model`` is the model that was validated (default :class:`FloeExtension`)."""
    err = exc.errors(include_url=False)[0]
    loc = dotted(err["loc"])
    if err["type"] == "extra_forbidden":
        parent, _, key = loc.rpartition(".")
        known = _fields_at(parent, model or FloeExtension)
        return loc, f"unknown key{did_you_mean(key, known)} (known: {', '.join(sorted(known))})"
    msg = message(err)
    if msg != err["msg"]:  # a validator's own words
        return loc, msg
    value = err.get("input")
    got = f", got {shown(value)}" if isinstance(value, str | int | float | bool) or value is None else ""
    return loc, f"{msg[0].lower()}{msg[1:]}{got}"


def _fields_at(dotted: str, model: type[BaseModel]) -> set[str]:
    for part in dotted.split(".") if dotted else []:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        nested = next(
            (
                a
                for a in getattr(annotation, "__args__", (annotation,))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if nested is None:
            return set()
        model = nested
    return set(model.model_fields)
