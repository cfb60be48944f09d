"""Typed inputs and outputs of the pure evaluation core (no Kafka, no I/O).

The per-event values (:class:`AssetUpdate`, :class:`Finding`, :class:`Evaluation`) are NamedTuples:
immutable like frozen dataclasses, and built ~2.5× faster (a frozen dataclass sets each field through
``object.__setattr__``), which is measurable at tens of thousands of events per second per core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

import orjson
from pydantic import AwareDatetime, Field
from pydantic_core import to_json

from floe_stream.processors.policy import DEFAULT_POLICY, CheckPolicy
from floe_stream.topics.base import WireModel, shared_fields_set
from floe_stream.topics.bounds import InputLimits
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.enums import CheckStatus, CheckType, DriftKind, Severity
from floe_stream.topics.materialization import ObservedColumn, QualityResult
from floe_stream.topics.violation import ResolvedData, ViolationData


class AssetUpdate(NamedTuple):
    """A normalized "this asset changed" fact, from any input format."""

    asset_id: str
    source: Literal["materialization", "openlineage", "catalog_commit"]
    event_id: str
    updated_at: datetime
    data_timestamp: datetime | None = None
    columns: tuple[ObservedColumn, ...] | None = None
    row_count: int | None = None
    quality: tuple[QualityResult, ...] | None = None
    sequence: int | None = None
    run_id: str | None = None
    job: str | None = None
    quality_only: bool = False
    """A test run's report on the asset (e.g. an OpenLineage input-dataset assertion): not a materialization."""
    operation: str | None = None
    """Iceberg snapshot operation (append, overwrite, replace, delete); None for other inputs."""
    added_rows: int | None = None
    """Rows the update added (Iceberg ``added-records``), when the input says."""
    oldest_data_time: datetime | None = None
    """The oldest value of the SLA element still in the table (a producer's report; retention)."""
    run_failed: str | None = None
    """The producing run failed (an OpenLineage FAIL or ABORT naming the asset as an output): what failed.
    Never new data; kept as the asset's "last run failed" context (``quality_only`` is set)."""
    declared_schema: bool = False
    """The producer's schema lists declared columns without types (dbt-ol without ``catalog.json``): not the
    table's observed schema, so ``columns`` is None and no drift is judged from it."""

    @property
    def data_time(self) -> datetime:
        """The time the data is fresh as of: the SLA column's newest value, else the update time."""
        return self.data_timestamp or self.updated_at


def counts_as_new_data(update: AssetUpdate, replace: bool, delete_only: bool, zero_rows: bool) -> bool:
    """Whether an update is new data for freshness, frequency and timeOfAvailability (commit-aware freshness).

    Iceberg ``append``/``overwrite`` with added records count; ``replace`` (compaction, rewrite) and
    ``delete`` (delete-only) snapshots count only when the contract says so (``floe.updates``); an update
    that reports zero rows (a zero-row append, an OpenLineage COMPLETE with ``rowCount: 0``) neither, by
    default. Everything else (materializations, OpenLineage with rows or without a count) counts."""
    op = update.operation
    if op == "replace":
        return replace
    if op == "delete":
        return delete_only
    rows = (
        update.added_rows
        if op is not None
        else (update.row_count if update.source == "openlineage" else None)
    )
    return zero_rows or rows != 0


DEFAULT_LIMITS = InputLimits()


@dataclass(frozen=True, slots=True)
class EvalContext:
    now: datetime
    clock_skew_s: float = 60.0
    info_at: float = 0.8
    warning_at: float = 0.9
    trigger: Literal["event", "tick", "replay"] = "event"
    policy: CheckPolicy = DEFAULT_POLICY
    limits: InputLimits = DEFAULT_LIMITS


class Finding(NamedTuple):
    """One condition an evaluation found firing (severity set) or clear (severity None)."""

    key: str
    severity: Severity | None
    message: str = ""
    element: str | None = None
    expected: str | None = None
    actual: str | None = None
    drift_kind: DriftKind | None = None
    sla_consumed: float | None = None
    context: dict[str, str] | None = None


class Evaluation(NamedTuple):
    """What one check concluded about one asset at one moment."""

    check_type: CheckType
    status: CheckStatus
    findings: tuple[Finding, ...] = ()
    scope: str | None = None
    """Open episodes whose key starts with ``scope`` and are absent from ``findings`` are resolved."""
    severity: Severity | None = None
    metric: float | None = None
    sla_consumed: float | None = None
    expected: str | None = None
    actual: str | None = None
    message: str = ""
    state_update: dict[str, Any] | None = None


def error_evaluation(check_type: CheckType, reason: str) -> Evaluation:
    """The result of a check that could not reach a verdict: status ``error`` with the reason. It has no
    findings and no scope, so it opens, escalates and resolves nothing ("no verdict" is not a breach)."""
    return Evaluation(check_type=check_type, status=CheckStatus.ERROR, message=reason[:500])


class OpenEpisode(WireModel):
    key: str
    check_type: CheckType
    violation_id: str
    correlation_key: str
    severity: Severity
    opened_at: AwareDatetime
    message: str = ""
    passes: int = Field(default=0, description="consecutive passing evaluations while open (hysteresis M)")
    flapping: bool = False


class KeyTrack(WireModel):
    """Hysteresis and flap bookkeeping of one finding key (kept only while it carries information)."""

    failing: bool = False
    fails: int = Field(default=0, description="consecutive failing evaluations not yet opened (hysteresis N)")
    failing_since: AwareDatetime | None = None
    flips: list[AwareDatetime] = Field(
        default_factory=list, description="pass↔fail transitions in the flap window"
    )


EMPTY: dict[str, Any] = {}
"""The empty mapping every state shares (never mutated: states are copy-on-write, see :class:`AssetState`)."""


class AssetStateRecord(WireModel):
    """The changelog's form of :class:`AssetState` (the ``processor-state`` topic's values): the wire format
    a state is written in and read back from."""

    asset_id: str
    watch_since: AwareDatetime | None = None
    last_update_at: AwareDatetime | None = None
    last_event_id: str | None = None
    last_sequence: int | None = None
    open: dict[str, OpenEpisode] = Field(default_factory=dict)
    tracks: dict[str, KeyTrack] = Field(
        default_factory=dict, description="per finding key: hysteresis, flips"
    )
    breaches: dict[str, list[AwareDatetime]] = Field(
        default_factory=dict, description="per check type: times episodes reached ERROR (CRITICAL escalation)"
    )
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-check private state")


class AssetState(NamedTuple):
    """Per-asset state, kept in the processor-state changelog topic (as :class:`AssetStateRecord`) and rebuilt
    from it.

    A tuple, not a pydantic model: one processor holds one per asset it owns (bench/state.py, 100,000 assets:
    ~110 B a state instead of ~360 B for a model and its ``__dict__``). Immutable and copy-on-write: a change
    builds a new state (:meth:`evolve`) with new mappings (processors/episodes.py); no mapping is updated in
    place, so empty ones are the one shared :data:`EMPTY`. The pydantic model's methods that callers use are
    kept (``model_dump_json``, ``model_validate_json``, ``model_copy``…), through the record."""

    asset_id: str
    watch_since: datetime | None = None
    last_update_at: datetime | None = None
    last_event_id: str | None = None
    last_sequence: int | None = None
    open: dict[str, OpenEpisode] = EMPTY
    tracks: dict[str, KeyTrack] = EMPTY
    """per finding key: hysteresis, flips"""
    breaches: dict[str, list[datetime]] = EMPTY
    """per check type: times episodes reached ERROR (CRITICAL escalation)"""
    checks: dict[str, dict[str, Any]] = EMPTY
    """per-check private state"""

    def evolve(self, **changes: Any) -> AssetState:
        """This state with ``changes`` (values of the right type: not validated)."""
        return self._replace(**changes)

    def model_copy(self, *, update: dict[str, Any] | None = None) -> AssetState:
        return self._replace(**update) if update else self

    def with_update(self, last_update_at: datetime, last_event_id: str) -> AssetState:
        """:meth:`evolve` of the two fields an update changes, without keyword handling (once per event:
        bench/processor_cpu.py)."""
        aid, watch, _, _, seq, open_, tracks, breaches, checks = self
        return _new_state(
            AssetState, (aid, watch, last_update_at, last_event_id, seq, open_, tracks, breaches, checks)
        )

    def compact(self) -> AssetState:
        """This state holding the one shared empty dict for each of its empty mappings (most assets have
        nothing open, tracked or private: bench/state.py)."""
        if all(m or m is EMPTY for m in self[5:]):
            return self
        return _new_state(AssetState, (*self[:5], *(m or EMPTY for m in self[5:])))

    def record(self) -> AssetStateRecord:
        """The wire form (not validated again: the values are of the right types)."""
        return AssetStateRecord.from_fields(self._asdict(), _RECORD_FIELDS)

    def model_dump_json(self) -> str:
        return self.record().model_dump_json()

    def json_size(self) -> int:
        """``len(self.model_dump_json().encode())``, the bytes of its changelog record, without serializing
        its tracks again: each (key, track) pair's bytes are remembered for the track object (tracks are
        immutable and shared from state to state; a column-churning asset keeps up to max_tracked_keys of them,
        one or two new an event). The rest is serialized with no tracks, and the pairs and their commas added
        (compact JSON: ``"tracks":{}`` becomes ``"tracks":{p1,p2,…}``). Measured after every event of such an
        asset, a quiet one too: bench/processor_cpu.py --events 160000, mix 250 → 134 µs an event;
        tests/unit/test_hot_path.py holds it equal to the record's length."""
        tracks = self.tracks
        rec = (self._replace(tracks=EMPTY) if tracks else self).record()
        size = len(rec.__pydantic_serializer__.to_json(rec))
        if not tracks:
            return size
        sizes = _track_bytes
        if len(sizes) + len(tracks) > _TRACK_BYTES_MAX:
            sizes.clear()
        size += len(tracks) - 1  # the commas
        for key, t in tracks.items():
            hit = sizes.get(id(t))
            if hit is None or hit[0] is not t or hit[1] != key:
                hit = sizes[id(t)] = (t, key, len(to_json(key)) + 1 + len(_TRACK_JSON(t)))
            size += hit[2]
        return size

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return self.record().model_dump(**kwargs)

    @classmethod
    def of(cls, record: AssetStateRecord) -> AssetState:
        """The compact state of a validated record."""
        return _new_state(cls, tuple(getattr(record, f) for f in _FIELDS)).compact()

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> AssetState:
        """A changelog value read back (validated: raises pydantic's ``ValidationError``)."""
        return cls.of(AssetStateRecord.model_validate_json(data))

    @classmethod
    def model_validate(cls, obj: Any) -> AssetState:
        return cls.of(AssetStateRecord.model_validate(obj))


_new_state = tuple.__new__
_TRACK_JSON = KeyTrack.__pydantic_serializer__.to_json
_TRACK_BYTES_MAX = 8192
_track_bytes: dict[int, tuple[KeyTrack, str, int]] = {}
"""(track, its key, the bytes of ``"key":{track}``) by the track's id, for :meth:`AssetState.json_size`: keyed
by id and holding the track (immutable), so an id found is its own; at most :data:`_TRACK_BYTES_MAX` (~1 MB), then
all are forgotten."""
_FIELDS = AssetState._fields
_RECORD_FIELDS = shared_fields_set(set(_FIELDS))
_QUIET_TAIL = b',"open":{},"tracks":{},"breaches":{},"checks":{}}'
_SCALARS = ("asset_id", "watch_since", "last_update_at", "last_event_id", "last_sequence")


class StateDecoder:
    """Reads changelog records back into compact states (a restore: every asset a processor owns).

    Most assets have nothing open, tracked or private: their record ends with four empty mappings, in field
    order (``model_dump_json``). Such a record is read without them, its times parsed once per distinct value
    and shared, and the state built directly with the shared empties: bench/state.py, 100,000 states, ~0.5 s
    and ~50 MB of RSS instead of ~1.2 s and ~170 MB through ``model_validate_json`` (whose four fresh empty
    dicts and fields set per state, freed at once, stay in the allocator's pools). Any other record, or one
    whose values are not of the expected types, goes through ``model_validate_json`` as before."""

    def __init__(self) -> None:
        self._times: dict[str, datetime] = {}

    def decode(self, value: bytes) -> AssetState:
        if value.endswith(_QUIET_TAIL):
            fast = self._quiet(value)
            if fast is not None:
                return fast
        return AssetState.model_validate_json(value)

    def _quiet(self, value: bytes) -> AssetState | None:
        try:
            d = orjson.loads(value[: -len(_QUIET_TAIL)] + b"}")
        except orjson.JSONDecodeError:
            return None
        if not isinstance(d, dict) or len(d) != len(_SCALARS) or any(k not in d for k in _SCALARS):
            return None
        aid, event, seq = d["asset_id"], d["last_event_id"], d["last_sequence"]
        if not isinstance(aid, str) or not (event is None or isinstance(event, str)):
            return None
        if not (seq is None or (isinstance(seq, int) and not isinstance(seq, bool))):
            return None
        watch, last = self._time(d["watch_since"]), self._time(d["last_update_at"])
        if watch is False or last is False:
            return None
        return _new_state(AssetState, (aid, watch, last, event, seq, EMPTY, EMPTY, EMPTY, EMPTY))

    def _time(self, raw: Any) -> datetime | Literal[False] | None:
        """An aware datetime (shared between the states that hold the same one), None, or False (invalid)."""
        if raw is None:
            return None
        if not isinstance(raw, str):
            return False
        t = self._times.get(raw)
        if t is None:
            try:
                t = datetime.fromisoformat(raw)
            except ValueError:
                return False
            if t.tzinfo is None:
                return False
            if len(self._times) < 1_000_000:
                self._times[raw] = t
        return t


class PartitionCheckpoint(WireModel):
    """Per input partition: the last offsets whose effects are complete, and the last tick applied."""

    partition: int
    offsets: dict[str, int] = Field(default_factory=dict)
    last_tick: AwareDatetime | None = None


class Record(Protocol):
    """An input record as the pipeline reads it (aiokafka's ``ConsumerRecord`` is one; so is a test's)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class DeadLetter(NamedTuple):
    """An input that cannot be evaluated (undecodable, too large, an internal error), with the reason."""

    record: Record
    reason: str


class Forward(NamedTuple):
    """An input that arrived on another asset's partition, to be copied once to its owner's partition."""

    record: Record
    partition: int
    asset_id: str


@dataclass(slots=True, init=False)
class Outputs:
    """What evaluation produced: check results, violations (and resolutions); from the pipeline also the
    dead letters and forwards of the input records."""

    check_results: list[CheckResult]
    violations: list[ViolationData | ResolvedData]
    dead_letters: list[DeadLetter]
    forwards: list[Forward]

    def __init__(
        self,
        check_results: list[CheckResult] | None = None,
        violations: list[ViolationData | ResolvedData] | None = None,
        dead_letters: list[DeadLetter] | None = None,
        forwards: list[Forward] | None = None,
    ) -> None:
        # list literals instead of the dataclass's default_factory calls: one per input record (bench/versus.py)
        self.check_results = [] if check_results is None else check_results
        self.violations = [] if violations is None else violations
        self.dead_letters = [] if dead_letters is None else dead_letters
        self.forwards = [] if forwards is None else forwards

    def extend(self, other: Outputs) -> None:
        self.check_results.extend(other.check_results)
        self.violations.extend(other.violations)
        self.dead_letters.extend(other.dead_letters)
        self.forwards.extend(other.forwards)
