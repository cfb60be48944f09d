"""Impact and root-cause context for every violation (FR-040, FR-041, FR-047). Pure: no I/O.

What a violation gets (``ViolationData.consumers`` and ``ViolationData.context``):

* **consumers** — the contract's declared consumers (ODCS ``customProperties``), then the jobs that read the
  asset and the datasets they write, learnt from OpenLineage run events seen on the materializations topic
  (``inputs`` → job → ``outputs``);
* **upstream** — the datasets written by jobs that read into this asset, and which of them currently have an
  open violation episode (``upstream.violating``);
* **recent materializations** of the asset (time, rows, run, job) and its **violation pattern**: how many
  violations of each check type opened in the last 24 h, and whether this one is recurring.

Scope: lineage edges and upstream health are shared by all processor instances through the compacted
``lineage`` topic (:mod:`floe_stream.processors.enrich`; the topic's I/O: :mod:`floe_stream.runtime.deployables.lineage_view`).
Recent materializations and the violation pattern are kept in memory by the instance that owns the asset, since it started or was assigned
the asset (documented limitation: after a restart or rebalance the pattern starts empty).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from floe_stream.topics.materialization import OLDataset, OpenLineageRunEvent
from floe_stream.topics.violation import ViolationData

MAX_CONSUMERS = 50
MAX_VALUE = 500
PATTERN_WINDOW = timedelta(hours=24)


def dataset_id(ds: OLDataset) -> str:
    return f"{ds.namespace}/{ds.name}"


def split_dataset_id(ds_id: str) -> tuple[str, str]:
    """``namespace/name`` → (namespace, name): the name starts after the namespace's authority
    (``postgres://db:5432/shop.public.orders``, ``s3://bucket/raw/orders``, ``bigquery/p.d.t``); ("", id)
    when there is no slash."""
    if "://" in ds_id:
        scheme, rest = ds_id.split("://", 1)
        authority, sep, name = rest.partition("/")
        return (f"{scheme}://{authority}", name) if sep else ("", ds_id)
    ns, sep, name = ds_id.partition("/")
    return (ns, name) if sep else ("", ds_id)


def identifiers(ds_id: str) -> list[str]:
    """Identifiers a lineage dataset id may match an asset under (same rule as normalize.ol_identifiers)."""
    ns, _, name = ds_id.rpartition("/")
    return [ds_id, f"{ns}.{name}", name] if ns else [ds_id]


MAX_LINEAGE_EDGES = 100_000
"""Edges one processor keeps; past it the least recently seen go (``bench``: ~300 B an edge)."""
MAX_EDGES_PER_NODE = 500
"""Inputs (outputs) per job and readers (writers) per dataset; a new edge beyond it is refused, the known
ones stay (a flood of invented jobs around one dataset cannot push out the real ones)."""
LINEAGE_TTL = timedelta(days=7)
"""An edge not seen again for this long (tick time) is forgotten."""
LINEAGE_REFRESH = timedelta(days=1)
"""A known edge seen again is re-stamped (and shared again) at most this often."""

EdgeKey = tuple[str, str, str]
"""(job, direction "in"/"out", dataset)"""


@dataclass
class LineageGraph:
    """Jobs with their input and output datasets (ids ``namespace/name``), learnt from run events.

    Bounded: at most ``MAX_LINEAGE_EDGES`` edges and ``MAX_EDGES_PER_NODE`` per job or dataset and direction;
    an edge not seen for ``LINEAGE_TTL`` on the graph's clock (the latest tick time, :meth:`advance`) expires.
    Which run events feed it is the caller's choice (the processor: only those touching a monitored asset)."""

    job_inputs: dict[str, set[str]] = field(default_factory=dict)
    job_outputs: dict[str, set[str]] = field(default_factory=dict)
    readers: dict[str, set[str]] = field(default_factory=dict)
    writers: dict[str, set[str]] = field(default_factory=dict)
    _index: dict[str, set[str]] = field(default_factory=dict)
    seen: dict[EdgeKey, datetime | None] = field(default_factory=dict)
    """every edge → when it was last stamped; least recently stamped first"""
    clock: datetime | None = None
    refused: int = 0
    """new edges refused by the per-node bound"""

    def __len__(self) -> int:
        return len(self.seen)

    def _sides(self, direction: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        return (self.job_inputs, self.readers) if direction == "in" else (self.job_outputs, self.writers)

    def add_edge(self, job: str, dataset: str, direction: str, at: datetime | None = None) -> bool:
        """``direction`` "in": the job reads the dataset; "out": it writes it. ``at`` (default the clock):
        when it was seen. Returns whether the edge is new or re-stamped (to be shared)."""
        at = at if at is not None else self.clock
        key = (job, direction, dataset)
        if key in self.seen:
            last = self.seen[key]
            if at is None or (last is not None and at - last < LINEAGE_REFRESH):
                return False
            del self.seen[key]  # re-stamped: to the end (the most recently seen)
            self.seen[key] = at
            return True
        by_job, by_dataset = self._sides(direction)
        if (
            len(by_job.get(job, ())) >= MAX_EDGES_PER_NODE
            or len(by_dataset.get(dataset, ())) >= MAX_EDGES_PER_NODE
        ):
            self.refused += 1
            return False
        by_job.setdefault(job, set()).add(dataset)
        by_dataset.setdefault(dataset, set()).add(job)
        for ident in identifiers(dataset):
            self._index.setdefault(ident, set()).add(dataset)
        self.seen[key] = at
        while len(self.seen) > MAX_LINEAGE_EDGES:
            self.remove_edge(*next(iter(self.seen)))
        return True

    def remove_edge(self, job: str, direction: str, dataset: str) -> bool:
        if self.seen.pop((job, direction, dataset), False) is False:
            return False
        by_job, by_dataset = self._sides(direction)
        for index, k, v in ((by_job, job, dataset), (by_dataset, dataset, job)):
            members = index.get(k)
            if members is not None:
                members.discard(v)
                if not members:
                    del index[k]
        if dataset not in self.readers and dataset not in self.writers:
            for ident in identifiers(dataset):
                ids = self._index.get(ident)
                if ids is not None:
                    ids.discard(dataset)
                    if not ids:
                        del self._index[ident]
        return True

    def advance(self, now: datetime) -> list[EdgeKey]:
        """Move the clock to ``now`` (never back) and forget the edges not seen for ``LINEAGE_TTL``.
        Returns the forgotten edges."""
        if self.clock is None:
            for k, v in self.seen.items():  # learnt before the first tick: seen now
                if v is None:
                    self.seen[k] = now
        if self.clock is not None and now <= self.clock:
            return []
        self.clock = now
        cutoff = now - LINEAGE_TTL
        gone: list[EdgeKey] = []
        while self.seen:
            key, at = next(iter(self.seen.items()))
            if at is None or at >= cutoff:
                break
            self.remove_edge(*key)
            gone.append(key)
        return gone

    def observe(self, ev: OpenLineageRunEvent) -> list[tuple[str, str, str]]:
        """Record the job's inputs and outputs (any event type). Returns the (job, dataset, direction) that are
        new or re-stamped."""
        job = f"{ev.job.namespace}/{ev.job.name}"
        new = []
        for direction, datasets in (("in", ev.inputs), ("out", ev.outputs)):
            for ds in datasets:
                d = dataset_id(ds)
                if self.add_edge(job, d, direction):
                    new.append((job, d, direction))
        return new

    def nodes_of(self, asset_identifiers: Iterable[str]) -> set[str]:
        out: set[str] = set()
        index = self._index
        if index:  # no set made per identifier, none at all without lineage (bench/processor_cpu.py, drift)
            for ident in asset_identifiers:
                found = index.get(ident)
                if found:
                    out |= found
        return out

    def downstream(self, nodes: Iterable[str]) -> tuple[set[str], set[str]]:
        """(jobs reading any of ``nodes``, datasets those jobs write) — one hop."""
        jobs: set[str] = set()
        for n in nodes:
            jobs |= self.readers.get(n, set())
        datasets: set[str] = set()
        for j in jobs:
            datasets |= self.job_outputs.get(j, set())
        return jobs, datasets - set(nodes)

    def upstream(self, nodes: Iterable[str]) -> set[str]:
        """Datasets read by the jobs that write any of ``nodes`` — one hop."""
        jobs: set[str] = set()
        for n in nodes:
            jobs |= self.writers.get(n, set())
        out: set[str] = set()
        for j in jobs:
            out |= self.job_inputs.get(j, set())
        return out - set(nodes)


class Materialization(NamedTuple):
    at: datetime
    event_id: str
    rows: int | None = None
    run_id: str | None = None
    job: str | None = None

    def render(self) -> str:
        return _render_one(self.at, self.event_id, self.rows, self.run_id, self.job)


_LAST_MATERIALIZATIONS = 3
_LAST_VIOLATIONS = 200


_WIDTH = len(Materialization._fields)


@dataclass(slots=True)
class AssetHistory:
    # bench/state.py (one processor, 100,000 assets): the last 3 materializations are one flat tuple of their
    # fields (a tuple per materialization and a tuple of them cost ~150–240 B more an asset) and the violation
    # times' deque is made at the asset's first violation (an empty deque is ~620 B; most assets have none).
    recent: tuple[Any, ...] = ()
    """The last materializations' fields, oldest first: (at, event_id, rows, run_id, job) each."""
    violations: deque[tuple[datetime, str]] | tuple[()] = ()
    run_failed: tuple[datetime, str] | None = None
    """The last FAIL/ABORT of a run producing the asset, until a later materialization (when, what)."""

    @property
    def materializations(self) -> tuple[Materialization, ...]:
        r = self.recent
        return tuple(Materialization(*r[i : i + _WIDTH]) for i in range(0, len(r), _WIDTH))

    @property
    def last_event_id(self) -> str | None:
        r = self.recent
        return r[-_WIDTH + 1] if r else None

    def add(self, at: datetime, event_id: str, rows: int | None, run_id: str | None, job: str | None) -> None:
        r = self.recent
        if len(r) == _LAST_MATERIALIZATIONS * _WIDTH:
            r = r[_WIDTH:]
        self.recent = (*r, at, event_id, rows, run_id, job)

    def add_materialization(self, m: Materialization) -> None:
        self.add(*m)

    def add_violation(self, at: datetime, check_type: str) -> None:
        if not isinstance(self.violations, deque):
            self.violations = deque(maxlen=_LAST_VIOLATIONS)
        self.violations.append((at, check_type))


@dataclass(frozen=True, slots=True)
class OpenIssue:
    """An open episode of an upstream asset (from the processor's state)."""

    check_type: str
    severity: str
    since: datetime


def _clip(s: str) -> str:
    return s if len(s) <= MAX_VALUE else s[: MAX_VALUE - 1] + "…"


def _join(items: Iterable[str], limit: int = 10) -> str:
    items = list(items)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return _clip(", ".join(items[:limit]) + more)


_ISO_MAX = 1024
_iso_of: dict[int, tuple[datetime, str]] = {}


def _iso(t: datetime) -> str:
    """``t.isoformat()`` with "Z" for UTC, remembered for the datetime object (each materialization time is shown
    on the next three violations of its asset, the last violation time on the next one: ~1 µs each,
    bench/processor_cpu.py, drift). Keyed by id and holding the datetime (immutable), so an id found is its
    own; at most :data:`_ISO_MAX` (~200 KB), then all are forgotten."""
    hit = _iso_of.get(id(t))
    if hit is not None and hit[0] is t:
        return hit[1]
    s = t.isoformat().replace("+00:00", "Z")
    if len(_iso_of) >= _ISO_MAX:
        _iso_of.clear()
    _iso_of[id(t)] = (t, s)
    return s


def _render_recent(r: tuple[Any, ...]) -> str:
    """``AssetHistory.recent`` rendered newest first, as ``Materialization.render`` joined by "; ", read off
    the flat tuple (no tuple per materialization: bench/processor_cpu.py, drift)."""
    return "; ".join(_render_one(*r[i : i + _WIDTH]) for i in range(len(r) - _WIDTH, -1, -_WIDTH))


def _render_one(at: datetime, event_id: str, rows: int | None, run_id: str | None, job: str | None) -> str:
    """One materialization as the violation context shows it: ``<time> id=… [rows=…] [job=…] [run=…]``."""
    one = f"{_iso(at)} id={event_id}"
    if rows is not None:
        one = f"{one} rows={rows}"
    if job:
        one = f"{one} job={job}"
    if run_id:
        one = f"{one} run={run_id}"
    return one


def violation_pattern(history: AssetHistory, check_type: str, now: datetime) -> dict[str, str]:
    # one pass over the (up to 200) violation times, no list, Counter or generators: once per violation
    # (bench/processor_cpu.py, drift)
    since = now - PATTERN_WINDOW
    counts: dict[str, int] = {}
    last: datetime | None = None
    n = 0
    for t, ct in history.violations:
        if t >= since:
            n += 1
            counts[ct] = counts.get(ct, 0) + 1
            if last is None or t > last:
                last = t
    if last is None:
        return {"pattern.violations_24h": "0", "pattern": "first violation of this asset in 24h"}
    same = counts.get(check_type, 0)
    out = {
        "pattern.violations_24h": str(n),
        "pattern.by_type_24h": ", ".join(f"{k}={counts[k]}" for k in sorted(counts)),
        "pattern.last_violation_at": _iso(last),
    }
    if same:
        out["pattern"] = f"recurring: {same} earlier {check_type} violation(s) in 24h"
    else:
        out["pattern"] = f"first {check_type} violation in 24h ({n} of other types)"
    return out


def enrich(
    v: ViolationData,
    *,
    declared_consumers: Sequence[str],
    asset_identifiers: Iterable[str],
    lineage: LineageGraph,
    history: AssetHistory | None,
    upstream_health: Callable[[str], tuple[str, Sequence[OpenIssue]] | None],
    now: datetime,
) -> ViolationData:
    """Return ``v`` with consumers and context filled in. ``upstream_health(dataset_id)`` gives the monitored
    asset id behind a lineage dataset and its open issues, or None when it is not monitored / not known."""
    # Once per violation (bench/processor_cpu.py, drift): no lineage walk when the asset has no lineage node,
    # each sort once, the copy with the new fields not validated again (``evolve``: values typed here).
    nodes = lineage.nodes_of(asset_identifiers)
    jobs: list[str] = []
    down_ds: list[str] = []
    up: list[str] = []
    if nodes:
        job_set, ds_set = lineage.downstream(nodes)
        jobs, down_ds, up = sorted(job_set), sorted(ds_set), sorted(lineage.upstream(nodes))
    consumers: list[str] = []
    for c in (*declared_consumers, *v.consumers, *jobs, *down_ds):
        if c and c not in consumers:
            consumers.append(c)
    ctx: dict[str, str] = dict(v.context)
    ctx["impact.consumers"] = str(len(consumers))
    if declared_consumers:
        ctx["impact.declared_consumers"] = _join(declared_consumers)
    if jobs:
        ctx["impact.downstream_jobs"] = _join(jobs)
    if down_ds:
        ctx["impact.downstream_datasets"] = _join(down_ds)
    if up:
        ctx["upstream.datasets"] = _join(up)
        violating: list[str] = []
        for d in up:
            hit = upstream_health(d)
            if hit is None:
                continue
            aid, issues = hit
            for i in issues:
                since = i.since.isoformat().replace("+00:00", "Z")
                violating.append(f"{aid}: {i.check_type} {i.severity} since {since}")
        ctx["upstream.violating"] = _join(violating) if violating else "none"
    if history is not None:
        recent = history.recent
        ctx["recent.materializations"] = _clip(_render_recent(recent)) if recent else "none seen"
        if history.run_failed is not None:
            at, what = history.run_failed
            ctx["last_run.failed"] = _clip(f"{at.isoformat().replace('+00:00', 'Z')} {what}")
        ctx.update(violation_pattern(history, v.violation_type.value, now))
    return v.evolve(consumers=consumers[:MAX_CONSUMERS], context=ctx)


class ImpactContext:
    """The per-processor holder of lineage and per-asset history; call :meth:`enrich_violation` before
    encoding a violation. Bounded memory: 3 materializations and 200 violation times per asset."""

    def __init__(self) -> None:
        self.lineage = LineageGraph()
        self.history: dict[str, AssetHistory | tuple[Any, ...]] = {}
        """Per asset: its :class:`AssetHistory`, or while it has had no violation and no failed run only the
        flat tuple of its last materializations (``AssetHistory.recent``): bench/state.py, ~60–80 B less an
        asset."""

    def history_of(self, asset_id: str) -> AssetHistory:
        """The asset's history, kept from now on as an :class:`AssetHistory` (a violation or a failed run)."""
        h = self.history.get(asset_id)
        if not isinstance(h, AssetHistory):
            h = self.history[asset_id] = AssetHistory(h or ())
        return h

    def observe_openlineage(self, ev: OpenLineageRunEvent) -> list[tuple[str, str, str]]:
        return self.lineage.observe(ev)

    def note_update(
        self,
        asset_id: str,
        at: datetime,
        event_id: str,
        rows: int | None,
        run_id: str | None,
        job: str | None,
    ) -> None:
        h = self.history.get(asset_id)
        if h is None or h.__class__ is tuple:  # no violation, no failed run: the tuple alone
            r: tuple[Any, ...] = h or ()  # type: ignore[assignment]
            if r and r[1 - _WIDTH] == event_id:
                return
            if len(r) == _LAST_MATERIALIZATIONS * _WIDTH:
                r = r[_WIDTH:]
            self.history[asset_id] = (*r, at, event_id, rows, run_id, job)
            return
        assert isinstance(h, AssetHistory)
        if h.last_event_id == event_id:
            return
        h.add(at, event_id, rows, run_id, job)
        if h.run_failed is not None and h.run_failed[0] <= at:
            h.run_failed = None  # produced again since

    def note_run_failed(self, asset_id: str, at: datetime, what: str) -> None:
        """A run producing the asset failed (shown on its violations until it is materialized again)."""
        h = self.history_of(asset_id)
        if h.run_failed is None or h.run_failed[0] <= at:
            h.run_failed = (at, what)

    def forget(self, asset_ids: Iterable[str]) -> None:
        for a in asset_ids:
            self.history.pop(a, None)

    def enrich_violation(
        self,
        v: ViolationData,
        *,
        declared_consumers: Sequence[str],
        asset_identifiers: Iterable[str],
        upstream_health: Callable[[str], tuple[str, Sequence[OpenIssue]] | None],
        now: datetime,
    ) -> ViolationData:
        h = self.history_of(v.asset)
        out = enrich(
            v,
            declared_consumers=declared_consumers,
            asset_identifiers=asset_identifiers,
            lineage=self.lineage,
            history=h,
            upstream_health=upstream_health,
            now=now,
        )
        if v.detected_at == v.episode_started_at:  # a new episode (not an escalation) counts in the pattern
            h.add_violation(v.detected_at, v.violation_type.value)
        return out


def open_issues(open_episodes: Mapping[str, object]) -> list[OpenIssue]:
    """OpenIssue list from ``AssetState.open`` (duck-typed: check_type, severity, opened_at)."""
    out = []
    for ep in open_episodes.values():
        ct = getattr(ep, "check_type", None)
        sev = getattr(ep, "severity", None)
        since = getattr(ep, "opened_at", None)
        if ct is not None and sev is not None and isinstance(since, datetime):
            out.append(OpenIssue(getattr(ct, "value", str(ct)), getattr(sev, "value", str(sev)), since))
    return out


DISPLAY = (
    ("last_run.failed", "Last run failed"),
    ("upstream.violating", "Upstream violating"),
    ("pattern", "Pattern"),
    ("impact.downstream_jobs", "Downstream jobs"),
    ("impact.downstream_datasets", "Downstream datasets"),
    ("recent.materializations", "Recent materializations"),
)


def display_lines(context: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, value) pairs for alert channels, most useful first; absent or empty facts are left out
    (``upstream.violating`` = "none" is shown only when upstreams are known, as reassurance)."""
    return [(label, context[key]) for key, label in DISPLAY if context.get(key)]
