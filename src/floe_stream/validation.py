"""The one reading of a pydantic ``ValidationError`` for people: each problem as ``<where>: <what>``.

Every message built from a validation error (settings, alert routing, channel options, contracts, the
``floe`` extension, check policies, dead-letter reasons) goes through :func:`problems`; a caller chooses how a
location is named (dotted keys, ``FLOE_…`` variables, ODCS paths) and, where its readers need it, how one error
is worded. A leaf module: imports nothing of floe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

__all__ = ["Location", "describe", "dotted", "message", "problems"]

Location = Callable[[Sequence[int | str]], str]
"""How a caller names an error's location (``loc``)."""


def dotted(loc: Sequence[int | str]) -> str:
    """``checks.fail_after``, ``channels.0.url``."""
    return ".".join(str(p) for p in loc)


def message(err: ErrorDetails) -> str:
    """pydantic's message; a validator's own ``ValueError`` in its own words (without ``Value error, ``)."""
    return str(err["msg"]).removeprefix("Value error, ")


def _located(err: ErrorDetails, where: str) -> str:
    return f"{where}: {message(err)}"


def problems(
    exc: ValidationError,
    *,
    location: Location = dotted,
    root: str = "(top)",
    wording: Callable[[ErrorDetails, str], str] = _located,
) -> list[str]:
    """One line per distinct error, in pydantic's order: ``wording(error, location or root)``, by default
    ``<location>: <message>``."""
    out: list[str] = []
    for err in exc.errors(include_url=False):
        line = wording(err, location(err["loc"]) or root)
        if line not in out:
            out.append(line)
    return out


def describe(
    exc: ValidationError,
    *,
    location: Location = dotted,
    root: str = "(top)",
    wording: Callable[[ErrorDetails, str], str] = _located,
) -> str:
    """:func:`problems` on one line, ``; `` between them."""
    return "; ".join(problems(exc, location=location, root=root, wording=wording))
