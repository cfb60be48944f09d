"""Bounds on every input string, in one place: the string types of the input wire models (``topics/``).

Anything a producer sends is checked when it is decoded (``topics/decode.py``), by pydantic-core in Rust: a
length cap and a character rule per kind of string. A record that breaks one is dead-lettered with the field
and the rule in its reason; nothing behind the decoder (checks, state, violations, the sinks' PostgreSQL
rows, alert texts, logs) ever sees an unbounded string or a control character from the input.

* :data:`Identifier` — what names a thing: asset ids, OpenLineage namespaces and names, table and column names,
  event/run/job ids, label keys. Up to :data:`IDENTIFIER_MAX` characters of **printable text**: any letter,
  digit, punctuation, symbol or space of any script (real emitters send ``postgres://db:5432``,
  ``duckdb:///data/x.duckdb``, ``s3://bucket/My Folder/part-0.parquet``, ``db.schema.table``, quoted
  identifiers with spaces or non-Latin letters, Iceberg ``ns.sub.table``), but no control character (C0, DEL,
  C1: NUL, ESC, CR, LF, TAB …), no line or paragraph separator, no bidirectional-text control and no invisible
  zero-width space or BOM — the characters that break PostgreSQL (NUL), terminals (ESC), log lines and
  e-mail headers (CR/LF) or make two different names look alike (bidi overrides, zero-width spaces).
* :data:`Text` — free text (types, descriptions, expectations, probe failure reasons, label values): up to
  :data:`TEXT_MAX` characters, the same rule except that TAB, LF and CR are allowed.

The patterns are plain character classes (linear in the input, in pydantic-core's Rust regex engine) and are
published in the topics' JSON Schemas (``maxLength``, ``pattern``), so a producer can check before sending.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

IDENTIFIER_MAX = 1024
"""Characters in one identifier (PostgreSQL's own identifiers stop at 63 bytes, BigQuery column names at 300,
object-store paths at 1,024 bytes)."""
TEXT_MAX = 8192
"""Characters in one free-text field (a Spark/BigQuery struct type spelled out, a long expectation)."""

# Not allowed in text: C0 controls but TAB, LF, CR; DEL and C1 controls; ALM (U+061C); ZWSP (U+200B); LRM/RLM
# (U+200E/F); line and paragraph separators (U+2028/9); LRE..RLO (U+202A–E); WJ (U+2060); LRI..PDI
# (U+2066–9); BOM/ZWNBSP (U+FEFF). Lone surrogates never get this far (JSON decoders refuse them).
_NOT_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff"
_NOT_IDENTIFIER = r"\t\n\r" + _NOT_TEXT  # and neither TAB, LF nor CR
NOT_TEXT = _NOT_TEXT
"""The characters :data:`Text` refuses, as the inside of a regex character class."""
IDENTIFIER_PATTERN = rf"^[^{_NOT_IDENTIFIER}]*$"
TEXT_PATTERN = rf"^[^{_NOT_TEXT}]*$"

Identifier = Annotated[str, StringConstraints(max_length=IDENTIFIER_MAX, pattern=IDENTIFIER_PATTERN)]
NonEmptyIdentifier = Annotated[
    str, StringConstraints(min_length=1, max_length=IDENTIFIER_MAX, pattern=IDENTIFIER_PATTERN)
]
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX, pattern=TEXT_PATTERN)]
NonEmptyText = Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX, pattern=TEXT_PATTERN)]

RULES = {
    IDENTIFIER_PATTERN: f"must be printable text (no control, line-break, bidi or zero-width character; "
    f"at most {IDENTIFIER_MAX} characters)",
    TEXT_PATTERN: f"must be text without control characters other than tab and line breaks "
    f"(at most {TEXT_MAX} characters)",
}
"""The reason a dead letter gives for a pattern mismatch, by pattern (instead of the pattern itself)."""


class InputLimits(BaseModel):
    """What one input record may make the processor do, beyond its strings (settings: ``limits``,
    ``FLOE_LIMITS__…``). The defaults are safe for every producer floe knows; docs/CONFIGURATION.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_future_s: float = Field(
        default=300.0,
        ge=0,
        description="an input time (materialized_at, data_timestamp, OpenLineage eventTime, Iceberg commit "
        "time, probe times) later than its record's timestamp by more than this is dead-lettered (reason "
        "'implausible time') and moves nothing: a producer's clock is never this far ahead",
    )
    max_past_days: float = Field(
        default=3650.0,
        gt=0,
        description="an event time (materialized_at, eventTime, Iceberg commit time, probe times) older than "
        "its record's timestamp by more than this is dead-lettered (an unset clock, epoch 0); data timestamps "
        "may be older. Backfills of older history need a larger value",
    )
    max_sequence_jump: int = Field(
        default=1_000_000,
        ge=1,
        description="an Iceberg commit whose sequence number is more than this ahead of the newest one seen "
        "for its table is dead-lettered (reason 'sequence jump'): it would make every later commit look older",
    )
    max_findings: int = Field(
        default=50,
        ge=2,
        description="findings one check reports about one asset in one evaluation: beyond this the rest are "
        "one finding ('N more …'), so one record makes at most this many violations per check",
    )
    max_tracked_keys: int = Field(
        default=200,
        ge=10,
        description="finding keys (open episodes + hysteresis and flap tracks) an asset's state keeps: the "
        "oldest settled tracks are forgotten first, so a state record stays small whatever the input",
    )


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut (for texts floe builds
    from input: messages, lists of names)."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


_NOT_TEXT_RE = re.compile(rf"[{_NOT_TEXT}]")
_NOT_IDENTIFIER_RE = re.compile(rf"[{_NOT_IDENTIFIER}]")


def _found(m: re.Match[str]) -> str:
    return f"U+{ord(m.group()):04X} at character {m.start() + 1}"


def identifier_problem(value: str) -> str | None:
    """Why ``value`` is no :data:`Identifier` (its length, or the first character the rule refuses, by code
    point), or None. Never quotes the value: it may be a megabyte, or an ESC sequence. For identifiers that do
    not come through a wire model (a contract's id, names, owner, asset ids, aliases, servers)."""
    if len(value) > IDENTIFIER_MAX:
        return f"{len(value):,} characters, more than the {IDENTIFIER_MAX:,} of an identifier"
    if (
        value.isascii() and value.isprintable()
    ):  # the usual case, without a regex (ASCII printable: 0x20-0x7e)
        return None
    m = _NOT_IDENTIFIER_RE.search(value)
    return None if m is None else f"{RULES[IDENTIFIER_PATTERN]}: {_found(m)}"


def text_problem(value: str) -> str | None:
    """Why ``value`` breaks the character rule of :data:`Text` (the first character it refuses, by code point;
    its length is not judged), or None."""
    m = _NOT_TEXT_RE.search(value)
    if m is None:
        return None
    return f"must be text without control, bidi or zero-width characters (tab and line breaks allowed): {_found(m)}"


def as_text(text: str, limit: int = TEXT_MAX) -> str:
    """``text`` as valid :data:`Text`: characters the rule refuses replaced by U+FFFD, clipped to ``limit`` (for
    texts floe itself puts on an input topic, e.g. a probe's failure reason quoting an exception)."""
    return clip(_NOT_TEXT_RE.sub("\ufffd", text), limit)
