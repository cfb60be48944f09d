"""Memory: equal parts of loaded assets are held once (bench/state.py: one processor holding 100,000 assets).

Most tables of a contract (and of many contracts) declare the same columns, SLAs and notes, and every
instance of a model built by the loader sets the same fields: equal frozen sub-objects and equal
``__pydantic_fields_set__`` sets are shared between assets instead of being held once per asset (the
fields set of a MonitoredAsset alone is ~2.2 KB). Frozen models are never mutated in place (pydantic's
``model_copy`` copies the fields set before updating it), so sharing changes no behaviour; equality and
hashing of models look at field values only. Bounded: cleared when it grows past _SHARED_MAX entries
(a long-running processor that reloads edited contracts keeps only what the current ones share).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from pydantic import BaseModel

from floe_stream.contracts.models import MonitoredAsset

__all__ = ["compact"]

_T = TypeVar("_T")
_SHARED: dict[Any, Any] = {}
_SHARED_MAX = 200_000
_INTERNED_FIELDS = (
    "columns",
    "freshness",
    "availability",
    "quality_rules",
    "frequency",
    "time_of_availability",
    "lifecycle",
    "retention",
    "response",
    "sla_notes",
    "servers",
    "tags",
    "consumers",
)


def _shared(value: _T) -> _T:
    if len(_SHARED) > _SHARED_MAX:
        _SHARED.clear()
    try:
        return cast(_T, _SHARED.setdefault(value, value))
    except TypeError:  # unhashable (a dict inside): keep this one
        return value


def _share_fields_set(value: Any) -> None:
    """Share the fields sets of ``value`` and of every model inside it (tuples, dict values)."""
    if isinstance(value, BaseModel):
        fields = value.__pydantic_fields_set__
        key = ("fields set", type(value), frozenset(fields))
        object.__setattr__(value, "__pydantic_fields_set__", _shared_key(key, fields))
        for item in value.__dict__.values():
            _share_fields_set(item)
    elif isinstance(value, tuple):
        for item in value:
            _share_fields_set(item)
    elif isinstance(value, dict):
        for item in value.values():
            _share_fields_set(item)


def _shared_key(key: Any, value: _T) -> _T:
    if len(_SHARED) > _SHARED_MAX:
        _SHARED.clear()
    return cast(_T, _SHARED.setdefault(key, value))


def compact(asset: MonitoredAsset) -> None:
    """Share equal frozen sub-objects and fields sets of ``asset`` with the assets loaded before it."""
    _share_fields_set(asset)
    fields = asset.__dict__
    for name in _INTERNED_FIELDS:  # equal values only: the asset's fields keep their values
        fields[name] = _shared(fields[name])
