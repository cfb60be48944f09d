"""Text from input (asset ids, column names, messages, owners) made harmless for the reader it is shown to.

Input strings are written by producers and contract authors, not by floe: an asset id may carry an ESC sequence
that rewrites a terminal line, sets the window title or writes the clipboard (OSC 52), a carriage return that
overwrites the line before it, a newline that forges a log line, a bidi override that reorders what is read
(Trojan Source), or a leading ``=`` that a spreadsheet runs as a formula. Every text output passes input strings
through one of these functions; JSON outputs need none (JSON escapes control characters itself).

A leaf module: imports nothing of floe.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel

# C0 controls (incl. ESC, CR, LF, TAB), DEL, C1 controls (incl. the 8-bit CSI 0x9b), the Unicode line / paragraph
# separators and the bidi embeddings, overrides, isolates and marks (CVE-2021-42574).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape (ESC → ``\\x1b``, CR → ``\\r``, LF → ``\\n``):
    nothing a terminal or a log reader would act on. ``newlines=True`` keeps LF (multi-line output of floe's
    own making, e.g. a rendered block whose fields were already escaped). The same object when clean."""
    pattern = _CONTROL_BUT_NEWLINE if newlines else _CONTROL
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


M = TypeVar("M", bound=BaseModel)


def printable_model(model: M) -> M:
    """A copy of ``model`` whose every string (nested models, lists, tuples, dict keys and values) went through
    :func:`printable`; the model itself when there is nothing to escape. For renderers that show input text."""
    out = printable_data(model)
    return out  # type: ignore[no-any-return]


def printable_data(value: Any) -> Any:
    """:func:`printable_model` for any value: strings, models, lists, tuples and dicts of them."""
    return _walk(value)


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, BaseModel):
        update = {}
        for name in type(value).model_fields:
            old = getattr(value, name)
            new = _walk(old)
            if new is not old:
                update[name] = new
        return value.model_copy(update=update) if update else value
    if isinstance(value, list | tuple):
        items = [_walk(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        pairs = [(_walk(k), _walk(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet never runs (OWASP CSV injection): text starting with ``= + - @``, TAB or CR gets
    a leading ``'``; control characters are escaped as in :func:`printable` (a bare CR would split the row for
    many readers). Numbers pass unchanged (a negative number is a number, not a formula)."""
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA_START):
        value = "'" + value
    return printable(value)
