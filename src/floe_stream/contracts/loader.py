"""Read ODCS v3 data contracts (YAML) into the monitoring view: one :class:`MonitoredAsset` per table.

The YAML is parsed with the ``open-data-contract-standard`` pydantic models (:mod:`.document`). Those models
leave most values unchecked, so everything floe relies on is checked while the view is built: logical types
(:mod:`.schema`), quality operators (:mod:`.quality`), SLA values and units (:mod:`.slas`,
:mod:`.units`, :mod:`floe_stream.durations`), owners, servers and the ``floe`` custom property
(:mod:`.metadata`, :mod:`.extension`). Every failure is a ``ContractError(source, problem)`` whose problem
names the key, the table and what is wrong.

Invalid ODCS is an error; valid ODCS that floe cannot evaluate is skipped with a warning in
``LoadedContract.warnings``. A contract with no schema objects loads with no assets and a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from open_data_contract_standard.model import OpenDataContractStandard, SchemaObject
from pydantic import ValidationError

from floe_stream.contracts.document import (
    MAX_DOCUMENT_CHARS,
    DocumentProblem,
    Problems,
    parse,
    problems_of,
    required,
)
from floe_stream.contracts.extension import FloeExtension
from floe_stream.contracts.identity import default_asset_id, table_identities
from floe_stream.contracts.interning import compact
from floe_stream.contracts.metadata import floe_settings, server_ref, team_and_owner, typed_floe
from floe_stream.contracts.models import (
    ColumnSpec,
    ContractError,
    LoadedContract,
    MonitoredAsset,
    QualityRule,
    ServerRef,
)
from floe_stream.contracts.schema import columns_and_rules
from floe_stream.contracts.slas import freshness_and_availability, other_slas, sla_targets_by_item
from floe_stream.topics.bounds import identifier_problem

__all__ = ["contract_files", "load_contract", "load_contract_bytes", "load_contract_text", "load_directory"]


def load_contract_text(text: str, source: str) -> LoadedContract:
    """Build the monitoring view of one ODCS v3 YAML document; raise :class:`ContractError` if unusable."""
    warnings: list[str] = []
    try:
        return _build(parse(text, warnings), source, warnings)
    except DocumentProblem as exc:
        raise ContractError(source, str(exc), exc.problems) from None
    except ValidationError as exc:
        problems = tuple(problems_of(exc))
        raise ContractError(source, "; ".join(problems), problems) from None


MAX_FILE_BYTES = 4 * MAX_DOCUMENT_CHARS
"""The most bytes a contract file is read for (UTF-8 takes at most 4 per character): a larger file is refused
without being read whole (a huge file on a volume was read into memory, twice, before its size was judged)."""


def read_contract_file(path: Path) -> bytes:
    """The bytes of a contract file, at most :data:`MAX_FILE_BYTES` of them; ContractError otherwise."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ContractError(str(path), f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ContractError(
            str(path), f"document too large: more than the {MAX_FILE_BYTES:,} bytes floe reads"
        )
    return data


def load_contract(path: Path) -> LoadedContract:
    return load_contract_bytes(read_contract_file(path), str(path))


def load_contract_bytes(data: bytes, source: str) -> LoadedContract:
    """:func:`load_contract_text` of a file's bytes (UTF-8)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(source, f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    return load_contract_text(text, source)


CONTRACT_SUFFIXES = (".yaml", ".yml", ".json")
"""A contract is YAML or JSON (ODCS allows both; JSON is YAML to the parser)."""


def contract_files(path: Path) -> list[Path]:
    """The ``*.yaml``/``*.yml``/``*.json`` files in ``path`` and its sub-folders, sorted; hidden files and
    folders are left out."""
    return sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in CONTRACT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.is_file()
    )


def load_directory(
    path: Path, load: Callable[[Path], LoadedContract] | None = None
) -> tuple[list[LoadedContract], list[ContractError]]:
    """Load every contract file in ``path``; a file that fails becomes an error and never stops the others.
    ``load``: how one file is read (default :func:`load_contract`; the processor's reads compiled forms:
    :class:`~floe_stream.contracts.compiled.ContractCache`)."""
    if not path.is_dir():
        return [], [ContractError(str(path), "not a directory")]
    read = load or load_contract
    contracts: list[LoadedContract] = []
    errors: list[ContractError] = []
    for file in contract_files(path):
        try:
            contracts.append(read(file))
        except ContractError as exc:
            errors.append(exc)
        except Exception as exc:  # a loader bug must not hide the other contracts
            errors.append(ContractError(str(file), f"unexpected {type(exc).__name__} while loading: {exc}"))
    return contracts, errors


def _build(doc: OpenDataContractStandard, source: str, warnings: list[str]) -> LoadedContract:
    """The monitoring view; every problem of the document is found (each table, column, quality rule, SLA
    item and server is read even after another failed) and raised together."""
    problems = Problems()
    contract_id = required(doc.id, "", "id")
    name = doc.name or contract_id
    version = required(doc.version, "", "version")
    status = required(doc.status, "", "status")
    objects: list[SchemaObject] = doc.schema_ or []
    if not objects:
        warnings.append("no schema objects: the contract describes no tables, so it has no monitored assets")
    tables: list[str] = []
    for i, obj in enumerate(objects):
        tables.append(obj.name or "")
        with problems.each():
            required(obj.name, f"schema[{i}]", "name")
        if obj.logicalType not in (None, "object", "table"):
            with problems.each():
                raise DocumentProblem(
                    f"schema[{i}] ({obj.name}): logicalType {obj.logicalType!r} is not a table; use 'object'"
                )

    freshness: dict[int, Any] = {}
    availability: dict[int, Any] = {}
    with problems.each():
        freshness, availability = freshness_and_availability(doc, objects, warnings)
    notes: list[str] = []
    sla_targets = sla_targets_by_item(doc, objects, warnings, notes)
    if not objects:
        notes += _slas_without_tables(doc)
    team, owner = team_and_owner(doc.team, doc.customProperties)
    contract_floe: dict[str, Any] = {}
    contract_typed = FloeExtension()
    with problems.each():
        contract_floe, contract_typed = floe_settings(doc.customProperties, "customProperties", warnings)
    servers: list[ServerRef] = []
    for n, server in enumerate(doc.servers or []):
        with problems.each():
            servers.append(server_ref(server, f"servers[{n}]", warnings))
    # what names things (and goes into every result, violation, alert, row and log line of the contract's
    # assets) follows the identifier rule of the input topics: no 1 MB id, no CR/LF in an alias
    _identifiers(problems, [
        ("id", contract_id), ("name", name), ("version", version), ("status", status), ("domain", doc.domain),
        ("team.name", team), ("owner", owner), *((f"tags[{k}]", t) for k, t in enumerate(doc.tags or [])),
        *(
            (f"servers[{n}].{_SERVER_KEYS.get(key, key)}", value)
            for n, ref in enumerate(servers)
            for key, value in ref.model_dump().items()
            if isinstance(value, str)
        ),
    ])  # fmt: skip
    shared: dict[str, Any] = {
        "contract_id": contract_id,
        "contract_name": name,
        "contract_version": version,
        "contract_status": status,
        "owner": owner,
        "team": team,
        "domain": doc.domain,
        "servers": tuple(servers),
    }

    assets: list[MonitoredAsset] = []
    first_use: dict[str, int] = {}
    for i, (obj, table) in enumerate(zip(objects, tables, strict=True)):
        if not table:
            continue  # reported above
        where = f"schema[{i}] ({table})"
        before = len(problems.found)
        table_floe: dict[str, Any] = {}
        table_typed = FloeExtension()
        with problems.each():
            table_floe, table_typed = floe_settings(
                obj.customProperties, f"schema[{i}].customProperties", warnings
            )
        floe = {**contract_floe, **table_floe}
        # from the typed settings of each level: the raw values are unchecked (`consumers: null`)
        consumers = _unique([*contract_typed.consumers, *table_typed.consumers])
        typed = FloeExtension()
        with problems.each():
            typed = typed_floe({**floe, "consumers": list(consumers)}, f"schema[{i}] floe")
        physical = obj.physicalName or table
        identities = table_identities(shared["servers"], physical, single_table=len(objects) == 1)
        asset_id: str = typed.asset or default_asset_id(shared["servers"], physical)
        if asset_id.lower() in first_use:
            other = first_use[asset_id.lower()]
            with problems.each():
                raise DocumentProblem(
                    f"{where}: asset id {asset_id!r} is already used by schema[{other}] ({tables[other]}); "
                    "set a distinct 'asset' in its floe customProperty"
                )
        first_use.setdefault(asset_id.lower(), i)
        _identifiers(problems, [
            (f"schema[{i}].name", table), (f"schema[{i}].physicalName", obj.physicalName),
            (f"schema[{i}] floe.asset", asset_id),
            *((f"schema[{i}] floe.aliases[{k}]", a) for k, a in enumerate(typed.aliases)),
            *((f"schema[{i}] floe.consumers[{k}]", c) for k, c in enumerate(consumers)),
            *((f"schema[{i}].tags[{k}]", t) for k, t in enumerate(obj.tags or [])),
        ])  # fmt: skip
        aliases = {table, f"{name}.{table}", physical, *typed.aliases}
        aliases.discard(asset_id)
        columns: tuple[ColumnSpec, ...] = ()
        rules: tuple[QualityRule, ...] = ()
        nested: dict[str, tuple[ColumnSpec, ...]] = {}
        with problems.each():
            columns, rules, nested = columns_and_rules(obj, f"schema[{i}]", table, warnings)
        if len(problems.found) > before:
            continue  # this table's problems are reported; the others are still read
        more = other_slas(doc, sla_targets, i, typed, freshness.get(i), availability.get(i), warnings)
        assets.append(
            MonitoredAsset(
                **shared,
                asset_id=asset_id,
                aliases=frozenset(aliases),
                table=table,
                physical_name=obj.physicalName,
                identities=identities,
                columns=columns,
                nested=nested,
                freshness=freshness.get(i),
                availability=availability.get(i),
                **more,
                quality_rules=rules,
                tags=_unique([*(doc.tags or []), *(obj.tags or [])]),
                consumers=consumers,
                overrides=floe,
                floe=typed,
            )
        )
    problems.raise_any()
    for asset in assets:
        compact(asset)
    return LoadedContract(
        contract_id=contract_id,
        name=name,
        version=version,
        status=status,
        source=source,
        assets=tuple(assets),
        warnings=tuple(dict.fromkeys(warnings)),
        notes=tuple(notes),
    )


_SERVER_KEYS = {"schema_name": "schema", "service_name": "serviceName", "catalog_url": "catalogUrl"}
"""ServerRef field → the ODCS key it is read from, where they differ (for messages)."""


def identifier_problems(contract: LoadedContract) -> list[str]:
    """The identifier rule of :func:`load_contract_text` applied to a contract that was not built from its YAML
    here (a compiled form): each problem names the field (``asset_id: …``), never quotes it. Each distinct
    value (and each shared server) is judged once: ~1 µs per asset."""
    found: list[str] = []
    judged: set[str] = set()
    servers: set[int] = set()

    def judge(where: str, value: str | None) -> None:
        if value is None or value in judged:
            return
        judged.add(value)
        problem = identifier_problem(value)
        if problem is not None:
            found.append(f"{where}: {problem}")

    top: tuple[tuple[str, str | None], ...] = (
        ("id", contract.contract_id), ("name", contract.name), ("version", contract.version),
        ("status", contract.status),
    )  # fmt: skip
    for where, value in top:
        judge(where, value)
    for a in contract.assets:
        judge("asset_id", a.asset_id)
        judge("table", a.table)
        judge("physical_name", a.physical_name)
        judge("owner", a.owner)
        judge("team", a.team)
        judge("domain", a.domain)
        judge("contract_id", a.contract_id)
        judge("contract_name", a.contract_name)
        judge("contract_version", a.contract_version)
        for where, values in (("aliases", a.aliases), ("consumers", a.consumers), ("tags", a.tags)):
            for value in values:
                judge(where, value)
        for ref in a.servers:
            if id(ref) not in servers:
                servers.add(id(ref))
                for key, value in ref.model_dump().items():
                    if isinstance(value, str):
                        judge(f"servers.{key}", value)
    return found


def _identifiers(problems: Problems, named: Iterable[tuple[str, str | None]]) -> None:
    """Each (where, value) under the identifier rule of ``topics/bounds.py``; a problem per value that breaks
    it, naming where it is (never quoting it)."""
    for where, value in named:
        problem = identifier_problem(value) if isinstance(value, str) else None
        if problem is not None:
            with problems.each():
                raise DocumentProblem(f"{where}: {problem}")


def _slas_without_tables(doc: OpenDataContractStandard) -> list[str]:
    """A contract without schema objects has no asset to carry its SLA properties: each one is still named,
    with why it is not evaluated (explain and lint never leave one out)."""
    out = []
    for n, sla in enumerate(doc.slaProperties or []):
        shown = f"{sla.value}{' ' + sla.unit if sla.unit else ''}"
        out.append(
            f"slaProperties[{n}] {sla.property} = {shown}: not evaluated: the contract describes no tables "
            "(no schema objects), so there is no asset to judge it on"
        )
    return out


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
