"""Bytes → typed input models. Raises :class:`DecodeError` with a reason fit for the dead-letter header.

Every string of an input is bounded here, by the models' string types (``topics/bounds.py``): a record with
an over-long string or a control character in one is refused with the field and the rule in its reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from floe_stream.printable import printable
from floe_stream.topics.bounds import RULES, clip
from floe_stream.topics.commit import CatalogCommitEvent
from floe_stream.topics.materialization import MaterializationEvent, OpenLineageRunEvent
from floe_stream.topics.probe import ProbeResult
from floe_stream.topics.tick import Tick
from floe_stream.validation import problems

M = TypeVar("M", bound=BaseModel)


class DecodeError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _loads(value: bytes | None) -> dict[str, Any]:
    if not value:
        raise DecodeError("empty message")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def invalid(what: str, exc: ValidationError, where: str = "") -> DecodeError:
    """The dead-letter reason of a validation error: ``invalid <what>: <field>: <problem> (+N more)``; a string
    that breaks a bound names the rule (``topics/bounds.py``), not its pattern."""
    found = problems(exc, location=lambda loc: _escaped(where, loc), root=where or "<root>", wording=_rule)
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return DecodeError(f"invalid {what}: {found[0]}{more}")


def _escaped(where: str, loc: Sequence[int | str]) -> str:
    path = ".".join(clip(printable(str(p)), 100) for p in loc)  # a dict key is input: escaped
    return f"{where}.{path}" if where and path else path


def _rule(err: ErrorDetails, where: str) -> str:
    """A string that breaks a bound names the rule (``topics/bounds.py``), not its pattern."""
    msg = str(err["msg"])
    if err["type"] == "string_pattern_mismatch":
        msg = RULES.get(str((err.get("ctx") or {}).get("pattern")), msg)
    return f"{where}: {msg}"


def _validate(model: type[M], obj: dict[str, Any]) -> M:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise invalid(model.__name__, exc) from None


def decode_materialization(value: bytes | None) -> MaterializationEvent | OpenLineageRunEvent:
    # Fast path: floe's own event, parsed and validated in one pass from the bytes (no dict in between).
    if value and b'"eventType"' not in value:
        try:
            return MaterializationEvent.model_validate_json(value)
        except ValidationError:
            pass  # fall through for a precise reason (or an OpenLineage event without eventType)
    obj = _loads(value)
    if "eventType" in obj or ("run" in obj and "job" in obj):
        return _validate(OpenLineageRunEvent, obj)
    return _validate(MaterializationEvent, obj)


def decode_commit(value: bytes | None) -> CatalogCommitEvent:
    if value:
        try:
            return CatalogCommitEvent.model_validate_json(value)
        except ValidationError:
            pass
    return _validate(CatalogCommitEvent, _loads(value))


def decode_tick(value: bytes | None) -> Tick:
    if value:
        try:
            return Tick.model_validate_json(value)
        except ValidationError:
            pass
    return _validate(Tick, _loads(value))


def decode_probe(value: bytes | None) -> ProbeResult:
    return _validate(ProbeResult, _loads(value))
