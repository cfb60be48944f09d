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

from floe_stream.contracts.extension import FloeExtension
from floe_stream.contracts.models import MonitoredAsset

__all__ = ["compact", "shared_part"]

_T = TypeVar("_T")
_SHARED: dict[Any, Any] = {}
_SHARED_MAX = 200_000
_INTERNED_FIELDS: tuple[str, ...] = (
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


_SHARED_FIELDS = frozenset(_INTERNED_FIELDS)


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


def shared_part(field: str, value: _T) -> _T:
    """``value`` of an asset's ``field``, or the equal one loaded before (the compiled form's loader)."""
    if field in _SHARED_FIELDS:
        value = _shared(value)
        _share_fields_set(value)
    elif field == "floe":
        floe = cast(FloeExtension, value)
        if not floe.asset and not floe.aliases:
            value = _shared_key(("floe", floe.model_dump_json()), value)
            _share_fields_set(value)
    elif field in ("overrides", "nested") and not value:
        return cast(_T, _EMPTY)
    return value


def compact(asset: MonitoredAsset) -> None:
    """Share equal frozen sub-objects and fields sets of ``asset`` with the assets loaded before it."""
    for name in _INTERNED_FIELDS:  # equal values only: the asset's fields keep their values
        value = _shared(getattr(asset, name))
        _share_fields_set(value)
        object.__setattr__(asset, name, value)
    floe = asset.floe
    if not floe.asset and not floe.aliases:  # most tables set neither: one typed floe for all of them
        # by its JSON: a FloeExtension holds dicts (intervals, probe options), so it has no hash
        floe = _shared_key(("floe", floe.model_dump_json()), floe)
        _share_fields_set(floe)
        object.__setattr__(asset, "floe", floe)
    if not asset.overrides:
        object.__setattr__(asset, "overrides", _EMPTY)
    if not asset.nested:
        object.__setattr__(asset, "nested", _EMPTY)


_EMPTY: dict[str, Any] = {}
"""The empty ``overrides`` / ``nested`` of most assets, held once (assets are never mutated)."""
