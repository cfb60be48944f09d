"""Check a folder of ODCS contracts the way floe will load it: each file, then clashes between files.

Pure: it reads the files and returns a :class:`LintReport`; printing is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from floe_stream.contracts.loader import contract_files, load_directory
from floe_stream.contracts.models import ContractError, LoadedContract, MonitoredAsset

__all__ = ["LintReport", "lint_directory"]


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


def lint_directory(path: Path, asset_problems: Sequence[AssetProblems] = ()) -> LintReport:
    """Load every contract in ``path`` and report file errors, warnings and identifier clashes.

    Clashes are errors: two files with the same contract id (only one would be monitored), and an
    asset id or alias (compared case-insensitively, as the registry resolves them) naming two assets.
    """
    files = contract_files(path) if path.is_dir() else []
    contracts, errors = load_directory(path)
    errors += _clashes(contracts)
    return LintReport(
        path=path,
        files_checked=len(files),
        contracts=tuple(contracts),
        assets=tuple(asset for contract in contracts for asset in contract.assets),
        errors=tuple(errors),
        warnings=tuple(
            f"{c.source}: {w}" for c in contracts for w in (*c.warnings, *_check_problems(c, asset_problems))
        ),
    )


def _check_problems(contract: LoadedContract, rules: Sequence[AssetProblems]) -> list[str]:
    return [p for asset in contract.assets for rule in rules for p in rule(asset)]


def _clashes(contracts: list[LoadedContract]) -> list[ContractError]:
    errors: list[ContractError] = []
    by_id: dict[str, LoadedContract] = {}
    owner_of: dict[str, tuple[MonitoredAsset, LoadedContract]] = {}
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
        for asset in contract.assets:
            for identifier in (asset.asset_id, *sorted(asset.aliases)):
                other, other_contract = owner_of.setdefault(identifier.lower(), (asset, contract))
                if other is asset:
                    continue
                what = "asset id" if identifier == asset.asset_id else "alias"
                errors.append(
                    ContractError(
                        contract.source,
                        f"{what} {identifier!r} of asset {asset.asset_id!r} (contract {contract.name!r}) also names "
                        f"asset {other.asset_id!r} of contract {other_contract.name!r} in {other_contract.source}",
                    )
                )
    return errors
