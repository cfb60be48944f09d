"""User-defined metrics (FR-046): configured instruments fed by a field of an event.

Example (environment, JSON)::

    FLOE_TELEMETRY__CUSTOM_METRICS='[{"name": "floe_rows_materialized", "instrument": "histogram",
      "source": "materialization", "field": "row_count", "labels": ["asset"], "unit": "rows"}]'

``source`` is ``materialization`` (floe's materialization event or an OpenLineage run event, as decoded),
``check_result`` or ``violation``. ``field`` and ``labels`` are dotted paths (``labels.region``,
``run.facets.x``); ``where`` keeps only events whose field equals the given string.

A label value comes from an event, so it follows the producers' rule for identifiers (``topics/bounds.py``): at
most 1,024 printable characters, no control, line-break, bidi or zero-width character. A value that breaks it (an
OpenLineage facet is free-form JSON: nothing bounded it at decode) is recorded as :data:`INVALID_LABEL`, never
as itself: a megabyte string or an ESC sequence never becomes a label of the ``/metrics`` page.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from opentelemetry import metrics

from floe_stream.settings import ConfigError, CustomMetric
from floe_stream.topics.bounds import identifier_problem

INVALID_LABEL = "(invalid)"
"""The label value recorded instead of one that is no identifier (too long, or a character the rule refuses)."""


def lookup(obj: Any, path: str) -> Any:
    """Resolve a dotted path over pydantic models, dataclasses and dicts; a missing step gives None."""
    cur = obj
    for part in path.split("."):
        if cur is None:
            return None
        # pydantic extra="allow" fields are attributes too
        cur = cur.get(part) if isinstance(cur, dict) else getattr(cur, part, None)
    if isinstance(cur, Enum):
        return cur.value
    return cur


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def label_value(v: Any) -> str:
    """``v`` as a label value: its text when that is an identifier (topics/bounds.py), else :data:`INVALID_LABEL`."""
    text = str(v)
    return text if identifier_problem(text) is None else INVALID_LABEL


class _Custom:
    def __init__(self, spec: CustomMetric, meter: metrics.Meter) -> None:
        self.spec = spec
        if spec.instrument == "counter":
            self.inst: Any = meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
        elif spec.instrument == "histogram":
            self.inst = meter.create_histogram(spec.name, unit=spec.unit, description=spec.description)
        else:
            self.inst = meter.create_gauge(spec.name, unit=spec.unit, description=spec.description)

    def observe(self, event: Any) -> None:
        spec = self.spec
        for path, want in spec.where.items():
            if str(lookup(event, path)) != want:
                return
        value: float | None = 1.0
        if spec.field is not None:
            value = _number(lookup(event, spec.field))
        if value is None:
            return  # the event does not carry the field: nothing to record
        attrs = {label.replace(".", "_"): label_value(lookup(event, label)) for label in spec.labels}
        if spec.instrument == "counter":
            if value >= 0:
                self.inst.add(value, attrs)
        elif spec.instrument == "histogram":
            self.inst.record(value, attrs)
        else:
            self.inst.set(value, attrs)


class CustomMetrics:
    """The configured metrics, grouped by source. ``observe`` is free when none is configured."""

    def __init__(self, specs: Sequence[CustomMetric]) -> None:
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"custom metric name(s) defined twice: {', '.join(dupes)}")
        for s in specs:
            if s.instrument != "counter" and s.field is None:
                raise ConfigError(f"custom metric {s.name}: a {s.instrument} needs 'field'")
        meter = metrics.get_meter("floe_stream.custom")
        self.by_source: dict[str, list[_Custom]] = {}
        for s in specs:
            self.by_source.setdefault(s.source, []).append(_Custom(s, meter))

    def __bool__(self) -> bool:
        return bool(self.by_source)

    def observe(self, source: str, event: Any) -> None:
        for m in self.by_source.get(source, ()):
            m.observe(event)
