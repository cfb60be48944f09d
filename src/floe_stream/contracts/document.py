"""Reading one ODCS v3 document: YAML text → the standard's pydantic model, and what is wrong with it in one line.

Every problem found while reading or building a contract is a :class:`DocumentProblem`;
:func:`floe_stream.contracts.loader.load_contract_text` turns it into a ``ContractError`` naming the source.

Reading is bounded before anything is built (:func:`load_yaml`): a document is at most ``MAX_DOCUMENT_CHARS``
long, its nodes nest at most ``MAX_DEPTH`` deep, and with every alias expanded it has at most ``MAX_NODES``
nodes — a 1 KB "billion laughs" document (nested aliases) is refused in microseconds instead of expanding
into gigabytes in whatever walks it; an alias that contains itself is refused too.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import yaml
from open_data_contract_standard.model import OpenDataContractStandard
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from floe_stream.printable import printable
from floe_stream.topics.bounds import text_problem
from floe_stream.validation import problems as validation_problems

__all__ = [
    "DocumentProblem",
    "Problems",
    "describe",
    "kind",
    "load_yaml",
    "parse",
    "problems_of",
    "required",
    "shown",
    "text_problems",
]

MAX_DOCUMENT_CHARS = 4 * 1024 * 1024
"""A contract is YAML text of at most this many characters (a contracts-topic record is ~1 MB at most)."""
MAX_NODES = 1_000_000
"""Nodes of the document with every alias expanded (a 1,000-column contract has ~50,000)."""
MAX_DEPTH = 64
"""Nesting depth of mappings and lists (ODCS needs about 12, nested properties a few more)."""

# pydantic puts union members into error locations ("Team", "list[TeamMember]", "str"); ODCS keys never
# start with a capital letter or contain brackets.
_UNION_MEMBER = re.compile(r"^(?:[A-Z].*|.*\[.*|str|int|float|bool|none)$")


class DocumentProblem(Exception):
    """What is wrong with the document (every problem found, not the first); the loader adds the source."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems: tuple[str, ...] = problems


class Problems:
    """Collects the problems of the parts of a document, so that one invalid contract names all its errors:
    ``with problems.each(): ...`` records a :class:`DocumentProblem` raised in the block and goes on;
    :meth:`raise_any` raises them together at the end."""

    def __init__(self) -> None:
        self.found: list[str] = []

    @contextmanager
    def each(self) -> Iterator[None]:
        try:
            yield
        except DocumentProblem as exc:
            self.found.extend(p for p in exc.problems if p not in self.found)

    def raise_any(self) -> None:
        if self.found:
            raise DocumentProblem(*self.found)


class _YamlLoader(yaml.CSafeLoader):
    """Safe loader that keeps dates and timestamps as the strings ODCS declares them to be (JSON is YAML)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """``text`` parsed (dates kept as strings), within the bounds above; DocumentProblem when out of them.
    YAML errors propagate (:func:`parse` describes them)."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise DocumentProblem(
            f"document too large: {len(text):,} characters, more than the {MAX_DOCUMENT_CHARS:,} floe reads"
        )
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_bounds(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_bounds(root: yaml.Node) -> None:
    """Expanded size and depth of the node graph (aliases are shared nodes), without expanding it:
    one post-order walk, each node once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            kids = _children(node)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(nid)
            if size[nid] > MAX_NODES:
                where = f" (at line {node.start_mark.line + 1})" if node.start_mark else ""
                raise DocumentProblem(
                    f"document too large: more than {MAX_NODES:,} nodes with its aliases expanded{where}"
                )
            if depth[nid] > MAX_DEPTH:
                raise DocumentProblem(f"document nested more than {MAX_DEPTH} levels deep")
            continue
        if nid in size:
            continue
        if nid in on_path:
            line = node.start_mark.line + 1 if node.start_mark else 0
            raise DocumentProblem(f"recursive alias: the node at line {line} contains itself")
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 80, 80


def shown(value: object) -> str:
    """A short repr of a value for a message (the value may be as large as the document)."""
    text = _REPR.repr(value)  # never builds the whole repr
    return text if len(text) <= 120 else text[:119] + "…"


def parse(text: str, warnings: list[str]) -> OpenDataContractStandard:
    """The ODCS model of ``text``; DocumentProblem (YAML syntax, too large, not ODCS v3) or pydantic's
    ValidationError."""
    try:
        doc = load_yaml(text)
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
    problems: list[str] = text_problems(doc)
    if problems:  # a NUL, an ESC, a bidi override: nothing of the document is read further
        raise DocumentProblem(*problems)
    if doc.get("kind") is None:
        problems.append("missing required key 'kind' (must be 'DataContract')")
    elif doc["kind"] != "DataContract":
        problems.append(f"kind {doc['kind']!r} is not supported, must be 'DataContract'")
    for key in ("id", "version", "status"):
        if doc.get(key) in (None, ""):
            problems.append(f"missing required key {key!r}")
    sla = doc.get("slaProperties")
    if isinstance(sla, dict):
        doc = {**doc, "slaProperties": _sla_map_to_list(sla)}
        warnings.append(
            "slaProperties is written as a map keyed by property (not ODCS); read as a list of "
            "{property, value, ...} items — write it as a list"
        )
    try:
        model = OpenDataContractStandard.model_validate(doc)
    except ValidationError as exc:
        problems += problems_of(exc)
    if problems:
        raise DocumentProblem(*problems)
    return model


MAX_TEXT_PROBLEMS = 10
"""Text problems named per document (a document may have thousands of them)."""


def text_problems(doc: Any) -> list[str]:
    """Every string of a parsed document (keys too) under the character rule of the input topics' free text
    (``topics/bounds.py``): no control character but tab and line breaks, no bidi or zero-width character —
    what would break PostgreSQL (NUL), a terminal or log (ESC) or make two names look alike. Each problem
    names its key path (``schema[0].properties[2].name``), never the text. Aliased nodes are read once."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack and len(found) < MAX_TEXT_PROBLEMS:
        value, where = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                found.append(f"{where or '<document>'}: {problem}")
            continue
        if not isinstance(value, dict | list) or id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(value))))
            continue
        for k, v in reversed(list(value.items())):
            key = str(k)
            shown_key = printable(key[:60]) + ("…" if len(key) > 60 else "")
            path = f"{where}.{shown_key}" if where else shown_key
            problem = text_problem(key)
            if problem is not None:
                found.append(f"{path} (a key): {problem}")
            stack.append((v, path))
    return found


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


def problems_of(exc: ValidationError) -> list[str]:
    """Every distinct problem of an ODCS validation error, each naming its ODCS key path."""
    return validation_problems(exc, location=_location, root="", wording=_odcs_wording)


def _odcs_wording(err: ErrorDetails, where: str) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown top-level key {where!r}: not an ODCS v3 field"
    if err["type"] == "string_type":
        return f"{where}: expected a string, got {shown(err['input'])}"
    if isinstance(err["input"], str | int | float):
        return f"{where}: {err['msg']}, got {shown(err['input'])}"
    return f"{where}: {err['msg']}"


def describe(exc: ValidationError) -> str:
    """:func:`problems_of` in one line."""
    return "; ".join(problems_of(exc))


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
