"""The compiled form of a contract: its monitoring view, parsed and validated once, loaded in milliseconds.

Reading an ODCS document (YAML, the standard's pydantic models, every check of :mod:`.loader`) costs ~0.4 ms
per table: 40 s for 100,000 tables at every processor start (bench/state.py). The compiled form is the
:class:`~floe_stream.contracts.models.LoadedContract` the loader built, written column by column: per asset
field, its distinct values (JSON) and, when they repeat, each asset's index into them. 1,000 tables declaring
the same four columns and SLA hold those once. Loading it validates each distinct value once and builds the
slotted assets directly (:meth:`MonitoredAsset.trusted`), sharing equal parts with the contracts loaded before
(:mod:`.interning`).

    floe-compiled/<version>\\n<zlib(JSON)>

``COMPILED_VERSION`` is the layout *and* the meaning: it goes up whenever the loader derives something else
from the same document (a new field, another identity rule), so a form compiled by an older floe is refused
rather than trusted. A reader refuses a version it cannot read with one line (:class:`CompiledFormError`) and
the caller compiles the YAML again (the YAML always travels with it: the contracts topic's value, the
directory's file). Where it lives: docs/DESIGN.md (a header of the contracts topic record, a cache file
per contract file for the directory).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

import orjson
from pydantic import TypeAdapter, ValidationError

from floe_stream import __version__
from floe_stream.contracts.document import MAX_DOCUMENT_CHARS, MAX_NODES
from floe_stream.contracts.interning import shared_part
from floe_stream.contracts.loader import identifier_problems
from floe_stream.contracts.models import (
    _ASSET_FIELDS,
    LoadedContract,
    MonitoredAsset,
)
from floe_stream.printable import printable
from floe_stream.topics.bounds import NOT_TEXT

__all__ = [
    "COMPILED_HEADER",
    "COMPILED_VERSION",
    "CompiledFormError",
    "ContractCache",
    "compile_contract",
    "load_compiled",
]

log = logging.getLogger(__name__)

COMPILED_VERSION = 1
"""Bumped whenever the layout changes or the loader derives something else from the same document."""
COMPILED_HEADER = "floe-compiled"
"""The contracts topic record header carrying the compiled form of the record's YAML (`floe contracts publish`)."""
_MAGIC = b"floe-compiled/"
_CONTRACT_FIELDS = ("contract_id", "name", "version", "status", "warnings", "notes")
_UNIQUE = frozenset({"asset_id", "aliases", "identities", "table", "physical_name"})
"""Fields whose values are (mostly) one per asset: kept as a plain column, no index."""
_STRINGS = frozenset({"asset_id", "table", "physical_name"})


class CompiledFormError(ValueError):
    """A compiled form this floe cannot read (another version, or damaged): the YAML is read instead."""


@cache
def _hints() -> dict[str, Any]:
    # once: get_type_hints evaluates every annotation of the class, ~2 ms a call, and each of the 28 asset
    # fields' adapters asked for them at every processor start (bench/versus.py: CPU per event, start-up included)
    return get_type_hints(MonitoredAsset)


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    annotation: Any = _hints()[name]
    return TypeAdapter(list[annotation])  # type: ignore[valid-type]


def compile_contract(contract: LoadedContract) -> bytes:
    """The compiled form of ``contract`` (what :func:`load_compiled` reads back into an equal contract)."""
    assets = contract.assets
    columns: dict[str, Any] = {}
    for name in _ASSET_FIELDS:
        values = [getattr(a, name) for a in assets]
        dumped = _adapter(name).dump_python(values, mode="json", exclude_defaults=True)
        if name in _UNIQUE:
            columns[name] = {"values": dumped}
            continue
        distinct: dict[bytes, int] = {}
        table: list[Any] = []
        index: list[int] = []
        for value in dumped:
            key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
            i = distinct.get(key)
            if i is None:
                i = distinct[key] = len(table)
                table.append(value)
            index.append(i)
        columns[name] = {"values": table} if len(table) == 1 else {"values": table, "index": index}
    doc = {
        "version": COMPILED_VERSION,
        "compiler": f"floe-stream {__version__}",
        "contract": {f: getattr(contract, f) for f in _CONTRACT_FIELDS},
        "assets": len(assets),
        "fields": columns,
    }
    body = orjson.dumps(doc)
    return _MAGIC + str(COMPILED_VERSION).encode() + b"\n" + zlib.compress(body, 6)


def compiled_version(data: bytes) -> int | None:
    """The version a compiled form says it is, None when ``data`` is not one."""
    if not data.startswith(_MAGIC):
        return None
    head = data[len(_MAGIC) : data.find(b"\n", 0, 64)]
    return int(head) if head.isdigit() else None


def load_compiled(data: bytes, source: str) -> LoadedContract:
    """Read a compiled form back into the contract it was compiled from (``source`` names where it came from).
    Raises :class:`CompiledFormError` (one line) for a version this floe cannot read or a damaged form."""
    version = compiled_version(data)
    if version is None:
        raise CompiledFormError(f"{source}: not a compiled contract (no {_MAGIC.decode()}<version> prefix)")
    if version != COMPILED_VERSION:
        raise CompiledFormError(
            f"{source}: compiled contract form version {version} cannot be read by this floe "
            f"(floe-stream {__version__} reads version {COMPILED_VERSION})"
        )
    try:
        inflate = zlib.decompressobj()
        body = inflate.decompress(data[data.index(b"\n") + 1 :], MAX_INFLATED_BYTES + 1)
        if len(body) > MAX_INFLATED_BYTES:  # a zlib bomb: a 1 MB header would have been a gigabyte
            raise _refused(source, f"more than the {MAX_INFLATED_BYTES:,} bytes floe inflates")
        # what the YAML path refuses (topics/bounds.py) a form never brings in: it travels in a header anyone
        # who may write the contracts topic writes, and is read instead of the YAML. One scan of the JSON
        # (raw or escaped)
        found = _not_text(body)
        if found is not None:
            raise _refused(
                source,
                f"a string holds a control, bidi or zero-width character: {printable(found.group())} at "
                f"character {found.start() + 1} of its JSON",
            )
        contract = _build(orjson.loads(body), source)
    except (zlib.error, ValidationError, KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, CompiledFormError):
            raise
        raise CompiledFormError(
            f"{source}: damaged compiled contract form ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    problems = identifier_problems(contract)
    if problems:
        raise _refused(source, problems[0])
    return contract


_RAW = re.compile(rf"[{NOT_TEXT}]")
_ESCAPE = re.compile(
    r"(\\+)(?:[bf]|u(?:00(?:0[0-8bcef]|1[0-9a-f]|[89][0-9a-f]|7f)|061c|200[bef]|202[89a-e]|2060|206[6-9]|feff))",
    re.IGNORECASE,
)


def _not_text(body: bytes) -> re.Match[str] | None:
    """The first character :data:`~floe_stream.topics.bounds.Text` refuses in a JSON document, raw or escaped
    (not the escapes of tab and line breaks; an escape after an escaped backslash is text). A raw one can only
    be DEL or beyond ASCII (raw C0 controls are no JSON), an escaped one only follows a backslash: the usual
    ASCII form without either is judged in microseconds (load_compiled's cost: bench/state.py)."""
    raw_possible = b"\x7f" in body or not body.isascii()
    if not raw_possible and b"\\" not in body:
        return None
    text = body.decode("utf-8")
    raw = _RAW.search(text) if raw_possible else None
    for m in _ESCAPE.finditer(text, 0, raw.start() if raw is not None else len(text)):
        if len(m.group(1)) % 2:
            return m
    return raw


MAX_INFLATED_BYTES = 16 * MAX_DOCUMENT_CHARS
"""The most a compiled form inflates to (its JSON holds each distinct value of a document of at most
``MAX_DOCUMENT_CHARS`` once: a few times less than this)."""


def _refused(source: str, problem: str) -> CompiledFormError:
    return CompiledFormError(f"{source}: compiled contract form refused ({problem})")


def _build(doc: dict[str, Any], source: str) -> LoadedContract:
    n: int = doc["assets"]
    if not isinstance(n, int) or not 0 <= n <= MAX_NODES:  # a count that only allocates
        raise ValueError(f"{n!r} assets")
    fields: dict[str, Any] = doc["fields"]
    strings: dict[str, str] = {}
    intern: Callable[[str, str], str] = strings.setdefault  # equal strings of this contract held once
    columns: list[Sequence[Any]] = []
    for name in _ASSET_FIELDS:
        col = fields[name]
        values = _adapter(name).validate_python(col["values"])
        if name in _STRINGS:
            values = [v if v is None else intern(v, v) for v in values]
        elif name == "aliases":
            values = [tuple([intern(s, s) for s in v]) for v in values]
        elif name == "identities":
            values = [tuple([(intern(ns, ns), intern(nm, nm)) for ns, nm in v]) for v in values]
        elif name in ("contract_id", "contract_name", "contract_version", "contract_status"):
            values = [intern(v, v) for v in values]
        else:
            values = [shared_part(name, v) for v in values]
        index = col.get("index")
        if index is not None:
            values = [values[i] for i in index]
        elif name not in _UNIQUE:
            if len(values) != 1:
                raise ValueError(f"field {name}: {len(values)} values and no index")
            values = values * n
        if len(values) != n:
            raise ValueError(f"field {name}: {len(values)} values for {n} assets")
        columns.append(values)
    assets = tuple(MonitoredAsset.of_values(row) for row in zip(*columns, strict=True)) if n else ()
    c = doc["contract"]
    return LoadedContract.model_construct(
        contract_id=c["contract_id"],
        name=c["name"],
        version=c["version"],
        status=c["status"],
        source=source,
        assets=assets,
        warnings=tuple(c["warnings"]),
        notes=tuple(c["notes"]),
    )


# --- the contracts directory's cache --------------------------------------------------------------------
def default_cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "floe-stream" / "compiled"


class ContractCache:
    """Compiled forms of a contracts directory's files, one cache file per file content (its SHA-256 and the
    compiled version): a file read once is loaded from its compiled form afterwards, until it changes.

    ``folder`` defaults to the user's cache (``$XDG_CACHE_HOME/floe-stream/compiled``, else
    ``~/.cache/floe-stream/compiled``): entries are named by content, so one folder serves every contracts
    directory, and floe never writes into a contracts directory (a clone's examples, an installed package, a
    mount). A folder that cannot be written (a read-only root file system) is reported once and the YAML is read
    every time; ``floe contracts compile DIR`` fills it ahead (an image build, an init container)."""

    def __init__(self, folder: Path | None, *, explicit: bool = True) -> None:
        self.folder = folder
        self.explicit = explicit
        """Set by the operator (a folder that cannot be written is then a warning; the default's, beside a
        read-only mount, only an info line)."""
        self._warned = False
        self.hits = 0
        self.misses = 0

    @classmethod
    def configured(cls, folder: Path | None = None) -> ContractCache:
        """The operator's folder (``checks.contracts_cache_dir``), else the user's cache folder."""
        if folder is not None:
            return cls(folder)
        return cls(default_cache_folder(), explicit=False)

    def _path(self, data: bytes) -> Path | None:
        if self.folder is None:
            return None
        digest = hashlib.sha256(data).hexdigest()
        return self.folder / f"{digest}.v{COMPILED_VERSION}.floec"

    def load(self, path: Path) -> LoadedContract:
        """The contract in ``path`` (raises ContractError like :func:`~floe_stream.contracts.loader.load_contract`),
        from its compiled form when the cache has one for this content."""
        from floe_stream.contracts.loader import load_contract_bytes, read_contract_file

        source = str(path)
        data = read_contract_file(path)
        cached = self._path(data)
        if cached is not None:
            try:
                compiled = cached.read_bytes()
            except OSError:
                pass
            else:
                try:
                    contract = load_compiled(compiled, source)
                    self.hits += 1
                    return contract
                except CompiledFormError as exc:
                    log.warning("%s; reading the YAML again", exc)
        contract = load_contract_bytes(data, source)
        self.misses += 1
        if cached is not None:
            self._store(cached, contract)
        return contract

    def _store(self, cached: Path, contract: LoadedContract) -> None:
        try:
            data = compile_contract(contract)
        except (TypeError, ValueError, orjson.JSONEncodeError) as exc:  # a value JSON cannot hold: no cache
            log.warning("%s: not compiled (%s); its YAML is read at each start", contract.source, exc)
            return
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".tmp-")
            os.fchmod(
                fd, 0o644
            )  # readable by a processor running as another user than `floe contracts compile`
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, cached)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.log(
                    logging.WARNING if self.explicit else logging.INFO,
                    "contracts cache %s cannot be written (%s): contracts are parsed from YAML at each start "
                    "(set checks.contracts_cache_dir to a writable folder, or run `floe contracts compile`)",
                    self.folder,
                    exc.strerror or exc,
                )
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
