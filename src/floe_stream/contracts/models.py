"""The monitoring view of an ODCS contract: one :class:`MonitoredAsset` per contract table.

Built by :mod:`floe_stream.contracts.loader` from ODCS v3 YAML; consumed by the pure checks. The SLAs are typed
here (what the checks read); which ODCS property becomes which SLA is :mod:`floe_stream.contracts.slas`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import time
from typing import Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from floe_stream.contracts.extension import FloeExtension

QualityOperator = Literal[
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnSpec(_Frozen):
    name: str
    physical_name: str | None = Field(default=None, description="column name in the table when it differs")
    logical_type: str | None = None
    physical_type: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = False


class FreshnessSla(_Frozen):
    threshold_s: float = Field(gt=0)
    element: str | None = Field(default=None, description="timestamp column the SLA is measured on")
    source_property: str = "latency"


class AvailabilitySla(_Frozen):
    target_ratio: float = Field(gt=0, le=1, description="e.g. 0.999 for '99.9%'")


class FrequencySla(_Frozen):
    """``frequency``: an update is expected every ``interval_s`` or at each ``cron`` run (in ``timezone``)."""

    interval_s: float | None = Field(default=None, gt=0)
    cron: str | None = None
    timezone: str = "UTC"
    element: str | None = None


class TimeOfAvailabilitySla(_Frozen):
    """``timeOfAvailability``: each day by ``deadline`` (wall clock in ``timezone``) an update has arrived since
    the previous day's deadline. ``timezone`` is an IANA name (DST-aware) or a fixed offset such as ``-08:00``."""

    deadline: time
    timezone: str = "UTC"
    element: str | None = None


class RetentionSla(_Frozen):
    """``retention``: data younger than ``period_s`` stays available."""

    period_s: float = Field(gt=0)
    element: str | None = None


class LifecycleSla(_Frozen):
    general_availability: AwareDatetime | None = None
    end_of_support: AwareDatetime | None = None
    end_of_life: AwareDatetime | None = None
    notice_days: float = 30.0


class ResponseSla(_Frozen):
    """Targets on floe's own response (seconds): detection, notification, repair."""

    time_to_detect_s: float | None = None
    time_to_notify_s: float | None = None
    time_to_repair_s: float | None = None


class SlaNote(_Frozen):
    """One SLA property of the contract as it applies to one asset: which check evaluates it, or why not."""

    index: int
    property: str
    value: str
    evaluated_by: str | None
    detail: str


class QualityRule(_Frozen):
    name: str
    column: str | None = None
    metric: str = Field(description="nullValues, missingValues, invalidValues, duplicateValues, rowCount …")
    operator: QualityOperator
    threshold: float | tuple[float, float]
    unit: Literal["rows", "percent"] = "rows"
    severity: str | None = None
    weight: float = 1.0
    dimension: str | None = None


class ServerRef(_Frozen):
    """An ODCS ``servers`` entry: where the contract's tables live (what :mod:`~floe_stream.contracts.identity`
    turns into OpenLineage dataset identifiers, and the availability probe's default target)."""

    server: str
    type: str
    host: str | None = None
    port: int | None = None
    database: str | None = None
    schema_name: str | None = None
    url: str | None = None
    catalog: str | None = None
    project: str | None = None
    dataset: str | None = None
    account: str | None = None
    region: str | None = None
    service_name: str | None = None
    location: str | None = Field(default=None, description="location (or a local server's path) as written")
    catalog_url: str | None = Field(
        default=None, description="Iceberg REST catalog URL (ODCS iceberg servers)"
    )
    warehouse: str | None = None
    namespace: str | None = Field(default=None, description="Iceberg namespace (ODCS iceberg servers)")
    environment: str | None = None


class AssetSpec(_Frozen):
    """What :class:`MonitoredAsset` is built from, validated (types, defaults, the typed ``floe`` from the raw
    mapping): the loader, tools and tests build assets through it; the compiled form (contracts/compiled.py)
    does not need to."""

    asset_id: str = Field(description="stable id; the Kafka key of events about this asset")
    aliases: frozenset[str] = Field(
        default_factory=frozenset, description="other identifiers that resolve to it"
    )
    contract_id: str
    contract_name: str
    contract_version: str
    contract_status: str = "active"
    table: str
    physical_name: str | None = None
    identities: tuple[tuple[str, str], ...] = Field(
        default=(),
        description="OpenLineage dataset identifiers (namespace, name) of this table on the contract's servers "
        "(contracts/identity.py), as the naming spec writes them",
    )
    columns: tuple[ColumnSpec, ...] = ()
    nested: dict[str, tuple[ColumnSpec, ...]] = Field(
        default_factory=dict,
        description="column path ('address', 'tags.element') → its nested properties (an array's items: 'element')",
    )
    freshness: FreshnessSla | None = None
    availability: AvailabilitySla | None = None
    quality_rules: tuple[QualityRule, ...] = ()
    frequency: FrequencySla | None = None
    time_of_availability: tuple[TimeOfAvailabilitySla, ...] = ()
    lifecycle: LifecycleSla | None = None
    retention: RetentionSla | None = None
    response: ResponseSla | None = None
    sla_notes: tuple[SlaNote, ...] = Field(
        default=(),
        description="every SLA property applying to this table: the check evaluating it, or why not",
    )
    owner: str | None = None
    team: str | None = None
    domain: str | None = None
    tags: tuple[str, ...] = ()
    servers: tuple[ServerRef, ...] = ()
    consumers: tuple[str, ...] = ()
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="the raw merged 'floe' customProperty (read `floe` instead)"
    )
    floe: FloeExtension = Field(
        default_factory=FloeExtension, description="the typed 'floe' customProperty (contracts/extension.py)"
    )

    @model_validator(mode="before")
    @classmethod
    def _typed_floe(cls, data: Any) -> Any:
        # built by hand (tests, tools) with only the raw mapping: type it the way the loader does; an invalid
        # mapping keeps the defaults (the loader rejects it; lint reports it from ``overrides``)
        if isinstance(data, dict) and "floe" not in data and data.get("overrides"):
            try:
                return {**data, "floe": FloeExtension.model_validate(data["overrides"])}
            except ValidationError:
                return data
        return data


_ASSET_FIELDS: tuple[str, ...] = tuple(AssetSpec.model_fields)


class _AssetSlots:
    """MonitoredAsset's storage: its slots and a positional constructor that assigns them plainly (~4× faster
    than a setter call per field: 100,000 assets built from their compiled form, bench/state.py)."""

    __slots__ = _ASSET_FIELDS

    def __init__(self, *values: Any) -> None:  # replaced below by one assignment per field
        raise NotImplementedError


def _positional_init() -> Callable[..., None]:
    args = ", ".join(_ASSET_FIELDS)
    body = "".join(f"\n    self.{name} = {name}" for name in _ASSET_FIELDS)
    scope: dict[str, Any] = {}
    exec(f"def __init__(self, {args}):{body}", scope)
    init: Callable[..., None] = scope["__init__"]
    return init


_AssetSlots.__init__ = _positional_init()  # type: ignore[method-assign]


class MonitoredAsset(_AssetSlots):
    """One contract table as the checks see it: immutable, slotted (bench/state.py: ~1 KB less per asset than
    a pydantic model's ``__dict__``, at 100,000 assets per processor). Its parts (columns, SLAs, servers, the
    ``floe`` settings) are frozen pydantic models shared between the assets that have equal ones
    (contracts/interning.py). ``MonitoredAsset(**fields)`` and :meth:`model_validate` validate through
    :class:`AssetSpec`; the compiled form builds assets from values it already validated (:meth:`trusted`)."""

    __slots__ = ()
    asset_id: str
    aliases: tuple[str, ...]
    """Other identifiers that resolve to it, sorted (a tuple: ~160 B less per asset than a frozenset)."""
    contract_id: str
    contract_name: str
    contract_version: str
    contract_status: str
    table: str
    physical_name: str | None
    identities: tuple[tuple[str, str], ...]
    columns: tuple[ColumnSpec, ...]
    nested: dict[str, tuple[ColumnSpec, ...]]
    freshness: FreshnessSla | None
    availability: AvailabilitySla | None
    quality_rules: tuple[QualityRule, ...]
    frequency: FrequencySla | None
    time_of_availability: tuple[TimeOfAvailabilitySla, ...]
    lifecycle: LifecycleSla | None
    retention: RetentionSla | None
    response: ResponseSla | None
    sla_notes: tuple[SlaNote, ...]
    owner: str | None
    team: str | None
    domain: str | None
    tags: tuple[str, ...]
    servers: tuple[ServerRef, ...]
    consumers: tuple[str, ...]
    overrides: dict[str, Any]
    floe: FloeExtension

    def __init__(self, **fields: Any) -> None:
        spec = AssetSpec.model_validate(fields).__dict__
        for name in _ASSET_FIELDS:
            _SETTERS[name](self, spec[name])
        _SETTERS["aliases"](self, tuple(sorted(spec["aliases"])))

    @classmethod
    def model_validate(cls, data: Any) -> MonitoredAsset:
        if isinstance(data, MonitoredAsset):
            return data
        if isinstance(data, AssetSpec):
            return cls.trusted({**data.__dict__, "aliases": tuple(sorted(data.aliases))})
        return cls(**data)

    @classmethod
    def trusted(cls, values: Mapping[str, Any]) -> MonitoredAsset:
        """An asset from values of the right types (every field given), not validated again."""
        obj = cls.__new__(cls)
        for name, setter in _SETTER_ITEMS:
            setter(obj, values[name])
        return obj

    @classmethod
    def of_values(cls, values: Sequence[Any]) -> MonitoredAsset:
        """An asset from every field's value in declaration order (``_ASSET_FIELDS``), not validated again."""
        obj: Any = _AssetSlots(*values)
        obj.__class__ = MonitoredAsset  # same layout: the frozen class, no copy
        return cast(MonitoredAsset, obj)

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _ASSET_FIELDS}

    def replace(self, **changes: Any) -> MonitoredAsset:
        """A copy with ``changes`` (validated)."""
        return MonitoredAsset(**{**self.fields(), **changes})

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> MonitoredAsset:
        """:meth:`replace` under pydantic's name (code written when assets were pydantic models)."""
        return self.replace(**(update or {}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"MonitoredAsset is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"MonitoredAsset is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, MonitoredAsset):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _ASSET_FIELDS)

    __hash__ = object.__hash__  # identity: assets are compared by value, cached by identity

    def __repr__(self) -> str:
        return f"MonitoredAsset(asset_id={self.asset_id!r}, contract_id={self.contract_id!r}, table={self.table!r})"

    def __reduce__(self) -> Any:
        return (_rebuild_asset, (self.fields(),))

    def labels(self) -> dict[str, str]:
        out = {"contract": self.contract_name, "asset": self.asset_id}
        if self.owner:
            out["owner"] = self.owner
        if self.team:
            out["team"] = self.team
        if self.domain:
            out["domain"] = self.domain
        if self.tags:
            out["tags"] = ",".join(self.tags)
        return out


_SETTERS: dict[str, Callable[[MonitoredAsset, Any], None]] = {
    name: getattr(MonitoredAsset, name).__set__ for name in _ASSET_FIELDS
}
_SETTER_ITEMS = tuple(_SETTERS.items())


def _rebuild_asset(fields: dict[str, Any]) -> MonitoredAsset:
    return MonitoredAsset.trusted(fields)


class LoadedContract(_Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    contract_id: str
    name: str
    version: str
    status: str
    source: str
    assets: tuple[MonitoredAsset, ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = Field(
        default=(),
        description="for lint: SLA properties beyond freshness/availability that attach to no table",
    )


_MAX_PROBLEM = 2_000


class ContractError(Exception):
    """A contract file that cannot be monitored; the message names the file and the exact problem."""

    def __init__(self, source: str, problem: str, problems: tuple[str, ...] | None = None) -> None:
        if len(problem) > _MAX_PROBLEM:  # a message quoting a value as large as the document
            problem = problem[: _MAX_PROBLEM - 1] + "…"
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem
        self.problems: tuple[str, ...] = (
            tuple(p if len(p) <= _MAX_PROBLEM else p[: _MAX_PROBLEM - 1] + "…" for p in problems)
            if problems
            else (problem,)
        )
        """Each problem on its own (an invalid contract names all of them; ``problem`` joins them)."""
