"""Check contracts the way floe will load them: each file, then clashes between files, then typos.

Pure: it reads the files and returns a :class:`LintReport`; printing is the CLI's job. Beyond what the loader
rejects, lint warns about

* keys ODCS does not define (an ODCS model ignores them silently), with a "did you mean" against the
  ODCS field names of that place (``slaProperties[0].elemnt`` → ``element``);
* SLA property names ODCS does not define (``latncy`` → ``latency``; from the loader);
* every SLA property floe will not evaluate, with the reason (``retention``, ``throughput`` …), and SLA
  properties whose ``element`` names no table.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from open_data_contract_standard.model import OpenDataContractStandard
from pydantic import BaseModel

from floe_stream.contracts.document import DocumentProblem, load_yaml
from floe_stream.contracts.extension import did_you_mean
from floe_stream.contracts.identity import dataset_key
from floe_stream.contracts.loader import contract_files, load_contract
from floe_stream.contracts.models import ContractError, LoadedContract, MonitoredAsset
from floe_stream.contracts.odcs_schema import schema_problems
from floe_stream.contracts.registry import DEFAULT_ID_HINT

__all__ = ["AssetProblems", "LintReport", "lint_directory", "lint_paths", "unknown_odcs_keys"]


@dataclass(frozen=True)
class LintReport:
    path: Path
    files_checked: int
    contracts: tuple[LoadedContract, ...]
    assets: tuple[MonitoredAsset, ...]
    errors: tuple[ContractError, ...]
    warnings: tuple[str, ...]  # "<file>: <warning>"

    @property
    def ok(self) -> bool:
        return not self.errors


AssetProblems = Callable[[MonitoredAsset], list[str]]
"""One more lint rule over an asset, given by the caller (the policy and probe rules live above contracts/:
``floe contracts lint`` passes :func:`~floe_stream.processors.policy.override_problems` and
:func:`~floe_stream.probes.targets.probe_problems`)."""


def lint_directory(
    path: Path, asset_problems: Sequence[AssetProblems] = (), *, schema: bool = False
) -> LintReport:
    """:func:`lint_paths` of one folder or file."""
    return lint_paths([path], asset_problems, schema=schema)


def lint_paths(
    paths: Sequence[Path], asset_problems: Sequence[AssetProblems] = (), *, schema: bool = False
) -> LintReport:
    """Load every contract under ``paths`` (folders recursively, or single files) and report file errors,
    warnings, typos and identifier clashes. No contract file at all is an error.

    With ``schema``, each file is also validated against the official ODCS JSON Schema of its
    ``apiVersion`` (:mod:`floe_stream.contracts.odcs_schema`); every place it breaks it is an error.

    Clashes are errors: two files with the same contract id (only one would be monitored), an asset id or
    explicit alias (compared case-insensitively, as the registry resolves them) or an OpenLineage identity
    naming assets of two contracts; a shared implicit name (table name, physical name) is a warning (events
    naming only it are refused as ambiguous).
    """
    files: list[Path] = []
    errors: list[ContractError] = []
    for path in paths:
        if path.is_dir():
            found = contract_files(path)
            files += found
        elif path.is_file():
            files.append(path)
        else:
            errors.append(ContractError(str(path), "not a directory"))  # nor a file: it does not exist
    if not files and not errors:
        where = ", ".join(str(p) for p in paths) or "."
        errors.append(ContractError(where, "no contract files (*.yaml, *.yml, *.json) found"))
    contracts: list[LoadedContract] = []
    warnings: list[str] = []
    for file in dict.fromkeys(files):
        if schema:
            errors += [ContractError(str(file), p) for p in _schema_problems(file)]
        try:
            contract = load_contract(file)
        except ContractError as exc:
            errors.append(exc)
            continue
        except Exception as exc:  # a loader bug must not hide the other contracts
            errors.append(ContractError(str(file), f"unexpected {type(exc).__name__} while loading: {exc}"))
            continue
        contracts.append(contract)
        warnings += [f"{contract.source}: {w}" for w in _contract_warnings(file, contract, asset_problems)]
    clash_errors, clash_warnings = _clashes(contracts)
    errors += clash_errors
    warnings += clash_warnings
    return LintReport(
        path=paths[0] if len(paths) == 1 else Path("."),
        files_checked=len(files),
        contracts=tuple(contracts),
        assets=tuple(asset for contract in contracts for asset in contract.assets),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


def _schema_problems(file: Path) -> list[str]:
    try:
        raw = load_yaml(file.read_text(encoding="utf-8"))  # bounded, as the loader reads it
    except (OSError, UnicodeDecodeError, yaml.YAMLError, DocumentProblem):
        return []  # the loader says why it cannot read it
    return schema_problems(raw)


def _contract_warnings(file: Path, contract: LoadedContract, rules: Sequence[AssetProblems]) -> list[str]:
    out = [*contract.warnings]
    try:
        raw = load_yaml(file.read_text(encoding="utf-8"))  # bounded, as the loader reads it
    except (
        OSError,
        yaml.YAMLError,
        DocumentProblem,
    ):  # the loader read it; a second read failing is not news
        raw = None
    if isinstance(raw, dict):
        out += unknown_odcs_keys(raw)
    out += contract.notes
    seen: set[tuple[int, str]] = set()
    # an SLA item the loader already warned about (an unusable value) is not said again in other words
    warned = {w.split(" ", 1)[0] for w in out if w.startswith("slaProperties[")}
    for asset in contract.assets:
        for note in asset.sla_notes:
            if note.evaluated_by is None and (note.index, note.detail) not in seen:
                seen.add((note.index, note.detail))
                if f"slaProperties[{note.index}]" not in warned:
                    out.append(f"slaProperties[{note.index}] {note.property}: {note.detail}")
        out += [p for rule in rules for p in rule(asset)]
    return list(dict.fromkeys(out))  # each warning once


# --- unknown keys ---------------------------------------------------------------------------------------


def unknown_odcs_keys(doc: dict[str, Any]) -> list[str]:
    """One warning per key ODCS does not define, at any depth the ODCS models describe."""
    out: list[str] = []
    _walk(doc, OpenDataContractStandard, "", out, top=True)
    return out


def _names(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """(model for a mapping value, model for the items of a list value) found in an annotation."""
    single: type[BaseModel] | None = None
    item: type[BaseModel] | None = None
    for arg in typing.get_args(annotation) or (annotation,):
        origin = typing.get_origin(arg)
        if origin is list:
            inner = next(iter(typing.get_args(arg)), None)
            if isinstance(inner, type) and issubclass(inner, BaseModel) and item is None:
                item = inner
        elif isinstance(arg, type) and issubclass(arg, BaseModel) and single is None:
            single = arg
    return single, item


def _walk(
    value: dict[str, Any], model: type[BaseModel], where: str, out: list[str], top: bool = False
) -> None:
    fields = _names(model)
    for key, child in value.items():
        here = f"{where}.{key}" if where else str(key)
        if key not in fields:
            if not top:  # unknown top-level keys are load errors already
                out.append(
                    f"{here}: unknown key{did_you_mean(str(key), fields)} (not an ODCS field here; ignored)"
                )
            continue
        single, item = _models_in(fields[key])
        if isinstance(child, dict) and single is not None:
            _walk(child, single, here, out)
        elif isinstance(child, list) and item is not None:
            for i, element in enumerate(child):
                if isinstance(element, dict):
                    _walk(element, item, f"{here}[{i}]", out)


def _clashes(contracts: list[LoadedContract]) -> tuple[list[ContractError], list[str]]:
    """(errors, warnings) about identifiers shared between contracts.

    Errors — only one contract could be monitored: the same contract id in two files, an asset id or
    explicit ``floe.aliases`` entry (a claim) naming assets of two contracts, the same OpenLineage identity
    (``servers`` + physical name, compared by the platform's case rules) derived by two contracts.
    Warnings — the name-only fallback is ambiguous: an implicit name (table name, physical name,
    ``<contract>.<table>``, the name part of an identity) shared with another contract's asset. An event
    naming only that is refused (``floe_events_ambiguous``); one naming the exact identity resolves."""
    errors: list[ContractError] = []
    warnings: list[str] = []
    by_id: dict[str, LoadedContract] = {}
    claimed: dict[str, tuple[MonitoredAsset, LoadedContract]] = {}
    datasets: dict[tuple[str, str], tuple[MonitoredAsset, LoadedContract]] = {}
    named: dict[str, tuple[MonitoredAsset, LoadedContract]] = {}
    kept: list[LoadedContract] = []
    for contract in contracts:
        first = by_id.setdefault(contract.contract_id, contract)
        if first is not contract:
            errors.append(
                ContractError(
                    contract.source,
                    f"contract id {contract.contract_id!r} is also used by {first.source}; only one can be monitored",
                )
            )
            continue  # its assets would clash with the first file's too; one error is enough
        kept.append(contract)
        for asset in contract.assets:
            for identifier in (asset.asset_id, *sorted(asset.floe.aliases)):
                other, other_contract = claimed.setdefault(identifier.lower(), (asset, contract))
                if other_contract is contract:
                    continue
                what = "asset id" if identifier == asset.asset_id else "alias"
                errors.append(
                    ContractError(
                        contract.source,
                        f"{what} {identifier!r} of asset {asset.asset_id!r} (contract {contract.name!r}) also names "
                        f"asset {other.asset_id!r} of contract {other_contract.name!r} in {other_contract.source}"
                        + (DEFAULT_ID_HINT if what == "asset id" and asset.floe.asset is None else ""),
                    )
                )
            for ident in asset.identities:
                other, other_contract = datasets.setdefault(dataset_key(*ident), (asset, contract))
                if other_contract is contract:
                    continue
                errors.append(
                    ContractError(
                        contract.source,
                        f"dataset {ident[0]} + {ident[1]} of asset {asset.asset_id!r} (contract {contract.name!r}, "
                        f"from its servers) is also asset {other.asset_id!r} of contract {other_contract.name!r} in "
                        f"{other_contract.source}",
                    )
                )
    for contract in kept:
        for asset in contract.assets:
            implicit = sorted(
                {*asset.aliases, *(n for _, n in asset.identities)} - {asset.asset_id, *asset.floe.aliases},
                key=str.lower,
            )
            for name in implicit:
                owner = claimed.get(name.lower())
                if owner is not None and owner[1] is not contract:
                    warnings.append(
                        f"{contract.source}: {name!r} (a name of asset {asset.asset_id!r}) is the id or alias of "
                        f"asset {owner[0].asset_id!r} of contract {owner[1].name!r}: events naming only "
                        f"{name!r} go to that asset"
                    )
                    continue
                other, other_contract = named.setdefault(name.lower(), (asset, contract))
                if other_contract is contract or owner is not None or other.asset_id == asset.asset_id:
                    continue  # (the same asset id twice is an error already)
                warnings.append(
                    f"{contract.source}: {name!r} names asset {asset.asset_id!r} and asset {other.asset_id!r} of "
                    f"contract {other_contract.name!r}: an event naming only {name!r} is ambiguous and refused; "
                    "events with the full dataset identity (servers) or the asset id resolve"
                )
    return errors, warnings
