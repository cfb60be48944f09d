"""Base classes for wire models: our own formats are frozen and strict, foreign ones tolerant."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

WIRE_UTC: tzinfo = TypeAdapter(AwareDatetime).validate_json(b'"1970-01-01T00:00:00Z"').tzinfo  # type: ignore[assignment]
"""The tzinfo of every UTC time the wire models decode (pydantic-core's own UTC object, not ``datetime.UTC``).
Two aware datetimes with the same tzinfo object compare and subtract ~25x faster than two with different ones
(~40 ns against ~1 µs: CPython asks each for its ``utcoffset()`` otherwise): the core's "now" carries this one,
so comparing it with an input's times costs nothing (bench/processor_cpu.py, bench/versus.py throughput)."""

_set = object.__setattr__  # frozen models: the fast constructors below bypass the frozen __setattr__

# bench/state.py (one processor holding 100,000 assets' state): a validated or evolved instance gets its own
# ``__pydantic_fields_set__`` (~200–700 B each); equal ones are shared instead. Safe for frozen models: pydantic
# and :meth:`WireModel.evolve` never update a fields set in place (they copy or build a new one). Bounded by
# the combinations of field names our own models have.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def shared_fields_set(fields: set[str]) -> set[str]:
    """The one shared set equal to ``fields``."""
    key = frozenset(fields)
    found = _FIELDS_SETS.get(key)
    if found is None:
        found = _FIELDS_SETS[key] = fields
    return found


class WireModel(BaseModel):
    """A wire format we own: frozen, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @classmethod
    def from_fields(cls, fields: dict[str, Any], fields_set: set[str] | None = None) -> Self:
        """An instance from a dict that already holds every field, in declaration order, built from values our
        own code produced with the right types — without validation (the processor's hot path: ~0.5 µs
        instead of ~2 µs, bench/processor_cpu.py). Unit tests hold such instances equal to validated ones."""
        obj = cls.__new__(cls)
        _set(obj, "__dict__", fields)
        _set(obj, "__pydantic_fields_set__", set(fields) if fields_set is None else fields_set)
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj

    def share_fields_set(self) -> Self:
        """This instance, its fields set replaced by the shared equal one (see ``shared_fields_set``)."""
        _set(self, "__pydantic_fields_set__", shared_fields_set(self.__pydantic_fields_set__))
        return self

    def evolve(self, **changes: Any) -> Self:
        """``model_copy(update=changes)`` (no validation either), without its generic copying: ~0.6 µs
        instead of ~1.5 µs. For values of the right type only (the processor's per-event state update)."""
        obj = self.__class__.__new__(self.__class__)
        d = self.__dict__.copy()
        d.update(changes)
        _set(obj, "__dict__", d)
        fields_set = self.__pydantic_fields_set__  # shared when unchanged: frozen, never mutated in place
        if not changes.keys() <= fields_set:
            fields_set = shared_fields_set(fields_set | changes.keys())
        _set(obj, "__pydantic_fields_set__", fields_set)
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj


class ForeignModel(BaseModel):
    """A wire format somebody else owns (OpenLineage, Iceberg): frozen, unknown fields kept."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)
