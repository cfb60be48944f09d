"""Reading one ODCS v3 document: YAML text → the standard's pydantic model, and what is wrong with it in one line.

Every problem found while reading or building a contract is a :class:`DocumentProblem`;
:func:`floe_stream.contracts.loader.load_contract_text` turns it into a ``ContractError`` naming the source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml
from open_data_contract_standard.model import OpenDataContractStandard
from pydantic import ValidationError

__all__ = ["DocumentProblem", "describe", "kind", "parse", "required"]

# pydantic puts union members into error locations ("Team", "list[TeamMember]", "str"); ODCS keys never
# start with a capital letter or contain brackets.
_UNION_MEMBER = re.compile(r"^(?:[A-Z].*|.*\[.*|str|int|float|bool|none)$")


class DocumentProblem(Exception):
    """A problem in the document; the loader adds the source."""


class _YamlLoader(yaml.CSafeLoader):
    """Safe loader that keeps dates and timestamps as the strings ODCS declares them to be."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


def parse(text: str, warnings: list[str]) -> OpenDataContractStandard:
    """The ODCS model of ``text``; DocumentProblem (YAML syntax, not ODCS v3) or pydantic's ValidationError."""
    try:
        doc = yaml.load(text, Loader=_YamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = (
            f" ({exc.context}, line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else ""
        )
        raise DocumentProblem(f"YAML syntax error{where}: {exc.problem or exc.context}{context}") from None
    except yaml.YAMLError as exc:
        raise DocumentProblem(f"YAML syntax error: {exc}") from None
    if doc is None:
        raise DocumentProblem("empty document: not an ODCS v3 contract")
    if not isinstance(doc, dict):
        raise DocumentProblem(f"not an ODCS v3 document: the top level is {kind(doc)}, expected a mapping")
    api_version = doc.get("apiVersion")
    if api_version is None:
        hint = (
            " (this is a datacontract.com Data Contract Specification file, not ODCS)"
            if "dataContractSpecification" in doc
            else ""
        )
        raise DocumentProblem(f"not an ODCS v3 document: apiVersion is missing{hint}")
    if not str(api_version).startswith("v3."):
        raise DocumentProblem(
            f"not an ODCS v3 document: apiVersion {api_version!r} is not supported, use v3.x"
        )
    if doc.get("kind") is None:
        raise DocumentProblem("missing required key 'kind' (must be 'DataContract')")
    if doc["kind"] != "DataContract":
        raise DocumentProblem(f"kind {doc['kind']!r} is not supported, must be 'DataContract'")
    for key in ("id", "version", "status"):
        if doc.get(key) in (None, ""):
            raise DocumentProblem(f"missing required key {key!r}")
    sla = doc.get("slaProperties")
    if isinstance(sla, dict):
        doc = {**doc, "slaProperties": _sla_map_to_list(sla)}
        warnings.append(
            "slaProperties is written as a map keyed by property (not ODCS); read as a list of "
            "{property, value, ...} items — write it as a list"
        )
    return OpenDataContractStandard.model_validate(doc)


def _sla_map_to_list(sla: dict[Any, Any]) -> list[dict[str, Any]]:
    """``{freshness: {value: PT6H, element: x}, availability: "99.9%"}`` → ODCS list items."""
    items: list[dict[str, Any]] = []
    for name, spec in sla.items():
        if isinstance(spec, dict):
            if "value" in spec:  # groups such as ``quality: {completeness: 99%}`` are not SLA properties
                items.append({**spec, "property": str(name)})
        else:
            items.append({"property": str(name), "value": spec})
    return items


def describe(exc: ValidationError) -> str:
    """Up to three distinct problems of an ODCS validation error, each naming its ODCS key path."""
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        where = _location(err["loc"])
        if err["type"] == "extra_forbidden":
            problem = f"unknown top-level key {where!r}: not an ODCS v3 field"
        elif err["type"] == "string_type":
            problem = f"{where}: expected a string, got {err['input']!r}"
        elif isinstance(err["input"], str | int | float):
            problem = f"{where}: {err['msg']}, got {err['input']!r}"
        else:
            problem = f"{where}: {err['msg']}"
        if problem not in problems:
            problems.append(problem)
    return "; ".join(problems[:3])


def _location(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _UNION_MEMBER.match(part):
            out += f".{part}" if out else part
    return out


def required(value: str | None, where: str, key: str) -> str:
    """``value``, or DocumentProblem ``<where>: missing required key '<key>'``."""
    if not value:
        raise DocumentProblem(
            f"{where}: missing required key {key!r}" if where else f"missing required key {key!r}"
        )
    return value


def kind(value: object) -> str:
    """``a list``, ``a mapping``, ``a str`` … for messages."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
