"""Map every accepted input format to :class:`AssetUpdate` facts. Pure.

What is read from an input's free-form parts (OpenLineage facets, Iceberg nested types) is validated by the
same wire models as the rest (``topics/bounds.py``): a bad value raises :class:`DecodeError`, like a bad
field of the record itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from floe_stream.processors.model import AssetUpdate
from floe_stream.topics.bounds import Identifier, as_text
from floe_stream.topics.commit import CatalogCommitEvent, IcebergField
from floe_stream.topics.decode import invalid
from floe_stream.topics.materialization import (
    MAX_INT64,
    MaterializationEvent,
    ObservedColumn,
    OLDataset,
    OpenLineageRunEvent,
    QualityResult,
)

_new = tuple.__new__


def from_materialization(ev: MaterializationEvent, fallback_id: str) -> list[tuple[str, AssetUpdate]]:
    return [(ev.asset, update_of_materialization(ev, fallback_id))]


def update_of_materialization(ev: MaterializationEvent, fallback_id: str) -> AssetUpdate:
    """The one update of floe's own event (it names exactly one asset)."""
    columns, quality = ev.columns, ev.quality
    # once per event: tuple.__new__ with every field in field order, not NamedTuple's Python-level __new__
    # (bench/processor_cpu.py; field order pinned by
    # tests/unit/test_hot_path.py::test_field_order_of_the_positionally_built_tuples)
    return _new(
        AssetUpdate,
        (
            ev.asset,
            "materialization",
            ev.event_id or fallback_id,
            ev.materialized_at,
            ev.data_timestamp,
            None if columns is None else tuple(columns),
            ev.row_count,
            None if quality is None else tuple(quality),
            None,
            ev.run_id,
            ev.job,
            False,
            None,
            None,
            ev.oldest_data_timestamp,
            None,
            False,
        ),
    )


DatasetRef = tuple[str, str, tuple[tuple[str, str], ...]]
"""An OpenLineage dataset as the registry resolves it: (namespace, name, symlinks' (namespace, name))."""


_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


def _identifier(value: Any, where: str) -> str:
    """``value`` as an identifier of the wire models (``topics/bounds.py``), else DecodeError naming ``where``."""
    try:
        return _IDENTIFIER.validate_python(str(value))
    except ValidationError as exc:
        raise invalid("OpenLineageRunEvent", exc, where) from None


def dataset_ref(ds: OLDataset, where: str = "dataset") -> DatasetRef:
    """(namespace, name, symlinks): Spark names a Hive or Iceberg table by its location and gives the table's
    catalog name in the ``symlinks`` facet (dbt-athena too). A symlink is bounded like the dataset's own names
    (DecodeError naming it: ``<where>.facets.symlinks.identifiers.<i>.name``); an entry without both parts is
    ignored."""
    symlinks: tuple[tuple[str, str], ...] = ()
    facet = ds.facets.get("symlinks") if ds.facets else None
    if isinstance(facet, dict) and isinstance(facet.get("identifiers"), list):
        at = f"{where}.facets.symlinks.identifiers"
        symlinks = tuple(
            (_identifier(i["namespace"], f"{at}.{j}.namespace"), _identifier(i["name"], f"{at}.{j}.name"))
            for j, i in enumerate(facet["identifiers"])
            if isinstance(i, dict) and i.get("namespace") and i.get("name")
        )
    return ds.namespace, ds.name, symlinks


def ol_identifiers(ds: OLDataset) -> list[str]:
    """Identifiers an OpenLineage dataset may be registered under, most specific first."""
    return [f"{ds.namespace}/{ds.name}", f"{ds.namespace}.{ds.name}", ds.name]


def _ol_columns(ds: OLDataset) -> tuple[tuple[ObservedColumn, ...] | None, bool]:
    """(observed columns, declared only): a schema facet with a field without a type is what the producer
    declares (dbt-ol without ``catalog.json`` lists the documented columns, untyped), not the table's schema."""
    facet = ds.facets.get("schema")
    if not isinstance(facet, dict) or not isinstance(facet.get("fields"), list):
        return None, False
    fields = [f for f in facet["fields"] if isinstance(f, dict) and f.get("name")]
    if any(not f.get("type") for f in fields):
        return None, True
    return tuple(ObservedColumn(name=str(f["name"]), type=str(f["type"])) for f in fields), False


def _ol_row_count(ds: OLDataset) -> int | None:
    for facets in (ds.outputFacets, ds.facets):
        stats = facets.get("outputStatistics") or facets.get("dataQualityMetrics")
        rows = stats.get("rowCount") if isinstance(stats, dict) else None
        if isinstance(rows, int) and not isinstance(rows, bool) and 0 <= rows <= MAX_INT64:
            return rows
    return None


# OpenLineage assertion / dbt test names → ODCS library metrics (so contract rules can re-judge them)
ASSERTION_METRICS = {
    "not_null": "nullValues",
    "notnull": "nullValues",
    "not_null_proportion": "nullValues",
    "unique": "duplicateValues",
    "accepted_values": "invalidValues",
    "relationships": "invalidValues",
    "row_count": "rowCount",
    "rowcount": "rowCount",
    **{m.lower(): m for m in ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")},
}
COUNTS_VALUES = frozenset({"unique", "accepted_values"})
"""dbt tests whose failure count is not a count of rows: ``unique`` and ``accepted_values`` count distinct
failing *values* (their SQL groups by value), so a non-zero count is no ODCS ``duplicateValues`` /
``invalidValues`` (rows) and only the verdict is kept; zero failures is zero rows either way. ``not_null``
and ``relationships`` count rows."""
_SEVERITY_NAMES = {
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "info": "info",
    "critical": "critical",
}


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _severity(value: Any) -> Any:
    return _SEVERITY_NAMES.get(str(value).strip().lower()) if value else None


def ol_assertion(a: dict[str, Any]) -> QualityResult | None:
    """One ``dataQualityAssertions`` entry (1-0-x / 1-1-0 fields) → a quality result."""
    kind = a.get("assertion")
    if not isinstance(kind, str) or not kind or not isinstance(a.get("success"), bool):
        return None
    column = a.get("column") if isinstance(a.get("column"), str) and a.get("column") else None
    metric = ASSERTION_METRICS.get(kind.lower())
    observed = _float(a.get("actual")) if metric == "rowCount" else _float(a.get("failures"))
    if observed is None and metric not in (None, "rowCount"):
        observed = _float(a.get("actual"))
    if observed and kind.lower() in COUNTS_VALUES:
        observed = None  # a count of distinct values, not of rows: the verdict alone is what it tells
    name = (
        a.get("name")
        if isinstance(a.get("name"), str) and a.get("name")
        else (f"{kind}({column})" if column else kind)
    )
    return QualityResult(
        name=str(name),
        column=column,
        metric=metric,
        passed=a["success"],
        observed_value=observed,
        expected=str(a["expected"]) if a.get("expected") is not None else None,
        severity=_severity(a.get("severity")),
    )


def _ol_quality(facet_maps: list[dict[str, Any]]) -> tuple[QualityResult, ...] | None:
    """Quality results of a dataset's facet maps; an assertion found in several maps (dbt-ol writes the same
    facet in ``facets`` and ``inputFacets``) counts once."""
    found = False
    out: list[QualityResult] = []
    earlier: set[bytes] = set()  # the assertions of the maps already read
    for facets in facet_maps:
        here: set[bytes] = set()
        dqa = facets.get("dataQualityAssertions")
        if isinstance(dqa, dict) and isinstance(dqa.get("assertions"), list):
            found = True
            for a in dqa["assertions"]:
                if not isinstance(a, dict):
                    continue
                key = orjson.dumps(a, option=orjson.OPT_SORT_KEYS, default=str)
                here.add(key)
                if key in earlier:
                    continue
                r = ol_assertion(a)
                if r is not None:
                    out.append(r)
        dqm = facets.get("dataQualityMetrics")
        if isinstance(dqm, dict):
            key = b"dqm:" + orjson.dumps(dqm, option=orjson.OPT_SORT_KEYS, default=str)
            here.add(key)
            if key in earlier:
                continue
            if (rows := _float(dqm.get("rowCount"))) is not None:
                found = True
                out.append(QualityResult(name="rowCount", metric="rowCount", observed_value=rows))
            cols = dqm.get("columnMetrics")
            for col, m in cols.items() if isinstance(cols, dict) else ():
                if isinstance(m, dict) and (nulls := _float(m.get("nullCount"))) is not None:
                    found = True
                    out.append(
                        QualityResult(
                            name=f"nullValues({col})", column=col, metric="nullValues", observed_value=nulls
                        )
                    )
        earlier |= here
    return tuple(out) if found else None


def _run_failure(ev: OpenLineageRunEvent, kind: str) -> str:
    """``FAIL of job ns/name (run id): <errorMessage>``, clipped."""
    text = f"{kind} of job {ev.job.namespace}/{ev.job.name} (run {ev.run.runId})"
    err = ev.run.facets.get("errorMessage") if ev.run.facets else None
    if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"].strip():
        text += f": {err['message'].strip()}"
    return as_text(text, 500)  # the facet's message is input: no control character goes on


def from_openlineage(ev: OpenLineageRunEvent) -> list[tuple[DatasetRef, AssetUpdate]]:
    """:func:`updates_of_openlineage`; a facet value the wire models refuse raises :class:`DecodeError`."""
    try:
        return updates_of_openlineage(ev)
    except ValidationError as exc:
        raise invalid("OpenLineage facet", exc) from None


def updates_of_openlineage(ev: OpenLineageRunEvent) -> list[tuple[DatasetRef, AssetUpdate]]:
    """What a run event means for each dataset it names (the emitter's meaning):

    * ``COMPLETE``: each output dataset was materialized (with any quality facets on it); quality facets on an
      input dataset (where OpenLineage puts ``dataQualityAssertions``: the job tested it) are a quality report
      on that dataset, not a materialization.
    * ``FAIL`` / ``ABORT``: the quality facets still count (a failed dbt test ends its test job with FAIL); an
      output dataset was *not* produced: never new data, recorded as its "last run failed" (``run_failed``).
    * ``START``, ``RUNNING``, ``OTHER``: nothing (a run in progress; the final event says what happened).
    """
    kind = (ev.eventType or "").upper()
    if kind not in ("COMPLETE", "FAIL", "ABORT"):
        return []
    out: list[tuple[DatasetRef, AssetUpdate]] = []
    job = f"{ev.job.namespace}/{ev.job.name}"
    failed = _run_failure(ev, kind) if kind != "COMPLETE" else None
    for n, ds in enumerate(ev.outputs):
        quality = _ol_quality([ds.facets, ds.outputFacets, ds.inputFacets])
        if failed is not None:
            update = AssetUpdate(
                asset_id="",
                source="openlineage",
                event_id=f"ol:{ev.run.runId}:{kind.lower()}:{ds.namespace}/{ds.name}",
                updated_at=ev.eventTime,
                quality=quality,
                run_id=ev.run.runId,
                job=job,
                quality_only=True,
                run_failed=failed,
            )
        else:
            columns, declared = _ol_columns(ds)
            update = AssetUpdate(
                asset_id="",
                source="openlineage",
                event_id=f"ol:{ev.run.runId}:{ds.namespace}/{ds.name}",
                updated_at=ev.eventTime,
                columns=columns,
                row_count=_ol_row_count(ds),
                quality=quality,
                run_id=ev.run.runId,
                job=job,
                declared_schema=declared,
            )
        out.append((dataset_ref(ds, f"outputs.{n}"), update))
    for n, ds in enumerate(ev.inputs):
        quality = _ol_quality([ds.inputFacets, ds.facets])
        if quality is None:
            continue
        update = AssetUpdate(
            asset_id="",
            source="openlineage",
            event_id=f"ol:{ev.run.runId}:in:{ds.namespace}/{ds.name}",
            updated_at=ev.eventTime,
            quality=quality,
            run_id=ev.run.runId,
            job=job,
            quality_only=True,
        )
        out.append((dataset_ref(ds, f"inputs.{n}"), update))
    return out


def iceberg_type_name(t: str | dict[str, Any]) -> str:
    if isinstance(t, str):
        return t
    return str(t.get("type", "struct"))


def _nested(t: str | dict[str, Any]) -> list[ObservedColumn] | None:
    """The children of a nested Iceberg type (struct fields, list element, map key/value), else None."""
    if not isinstance(t, dict):
        return None
    kind = t.get("type")
    if kind == "struct":
        return [
            _observed(f.get("name", "?"), f.get("type", "?"), bool(f.get("required")))
            for f in t.get("fields", [])
        ]
    if kind == "list":
        return [_observed("element", t.get("element", "?"), bool(t.get("element-required")))]
    if kind == "map":
        return [
            _observed("key", t.get("key", "?"), True),
            _observed("value", t.get("value", "?"), bool(t.get("value-required"))),
        ]
    return None


def _observed(name: str, t: str | dict[str, Any], required: bool, key: bool | None = None) -> ObservedColumn:
    return ObservedColumn(
        name=str(name), type=iceberg_type_name(t), nullable=not required, primary_key=key, fields=_nested(t)
    )


def iceberg_columns(
    fields: list[IcebergField], identifier_ids: list[int] | None = None
) -> tuple[ObservedColumn, ...]:
    """Observed columns of an Iceberg schema; ``identifier-field-ids`` give the key (when the table has one)."""
    ids = set(identifier_ids or ())
    return tuple(_observed(f.name, f.type, f.required, (f.id in ids) if ids else None) for f in fields)


def _count(text: str | None) -> int | None:
    """A record count of an Iceberg summary (a string of ASCII digits that fits a long), else None."""
    if text and len(text) <= 18 and text.isascii() and text.isdigit():
        return int(text)
    return None


def from_commit(ev: CatalogCommitEvent, fallback_id: str) -> list[tuple[str, AssetUpdate]]:
    summary = ev.summary
    rows = summary.get("total-records")
    added = summary.get("added-records")
    try:
        columns = iceberg_columns(ev.table_schema.fields, ev.table_schema.identifier_field_ids)
    except ValidationError as exc:
        raise invalid("Iceberg nested type", exc, "schema.fields") from None
    update = AssetUpdate(
        asset_id=ev.table,
        source="catalog_commit",
        event_id=ev.event_id or f"commit:{ev.table}:{ev.snapshot_id}",
        updated_at=datetime.fromtimestamp(ev.timestamp_ms / 1000, tz=UTC),
        columns=columns,
        row_count=_count(rows),
        sequence=ev.sequence_number,
        operation=ev.operation,
        added_rows=_count(added),
    )
    return [(ev.table, update)]
