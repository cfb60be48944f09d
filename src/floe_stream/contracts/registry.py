"""In-memory index of monitored assets: resolve identifiers and find the assets a partition owns.

Ownership: an asset id and the explicit ``floe.aliases`` of an asset are *claims* (compared
case-insensitively, as identifiers resolve). A claim belongs to the contract that registered it first; a
contract claiming a name another contract owns is refused as a whole (:class:`ContractConflict`) and the
owner keeps the name, its SLA and its routing. Implicit names (the table name, ``<contract>.<table>``, the
physical name) are not claims: they resolve to the first asset that has them and never shadow a claim.
"""

from __future__ import annotations

from collections.abc import Iterable

from floe_stream.contracts.models import ContractError, LoadedContract, MonitoredAsset
from floe_stream.topics.partitioning import partition_for


class ContractConflict(ContractError):
    """A contract claims an asset id or alias another contract owns; the owner keeps it."""

    def __init__(self, contract: LoadedContract, problem: str) -> None:
        super().__init__(contract.source, problem)
        self.contract = contract


def claims(asset: MonitoredAsset) -> set[str]:
    """The names ``asset`` owns, lower-cased: its id and its explicit ``floe.aliases``."""
    return {asset.asset_id.lower(), *(a.lower() for a in asset.floe.aliases)}


class ContractRegistry:
    def __init__(self, contracts: Iterable[LoadedContract] = ()) -> None:
        self._assets: dict[str, MonitoredAsset] = {}
        self._claimed: dict[str, str] = {}  # claim (lower) → asset id
        self._implicit: dict[str, str] = {}  # implicit name (lower) → asset id (first one wins)
        self._by_partition: dict[int, dict[str, list[MonitoredAsset]]] = {}
        self.contracts: dict[str, LoadedContract] = {}
        self.refused: list[ContractConflict] = []
        """Contracts given to the constructor that were refused (in order); the caller reports them."""
        for c in contracts:
            try:
                self.add(c)
            except ContractConflict as exc:
                self.refused.append(exc)

    def conflicts(self, contract: LoadedContract) -> list[str]:
        """Why ``contract`` cannot be registered: the names it claims that another contract owns."""
        out: list[str] = []
        for asset in contract.assets:
            for name in sorted(claims(asset)):
                held = self._claimed.get(name)
                owner = self._assets[held].contract_id if held is not None else None
                if owner is not None and owner != contract.contract_id:
                    what = "asset id" if name == asset.asset_id.lower() else "alias"
                    shown = asset.asset_id if what == "asset id" else name
                    out.append(f"{what} {shown!r} is owned by contract {owner!r}")
        return out

    def add(self, contract: LoadedContract) -> None:
        """Register (or replace the registered version of) ``contract``; raises :class:`ContractConflict`
        (and changes nothing) when it claims a name another contract owns."""
        problems = self.conflicts(contract)
        if problems:
            raise ContractConflict(
                contract, f"contract {contract.contract_id!r} refused: " + "; ".join(problems)
            )
        old = self.contracts.get(contract.contract_id)
        if old is not None:
            self.remove(old.contract_id)
        self.contracts[contract.contract_id] = contract
        for asset in contract.assets:
            self._assets[asset.asset_id] = asset
            for name in claims(asset):
                self._claimed[name] = asset.asset_id
            for alias in asset.aliases:
                self._implicit.setdefault(alias.lower(), asset.asset_id)
        self._by_partition.clear()

    def remove(self, contract_id: str) -> None:
        contract = self.contracts.pop(contract_id, None)
        if contract is None:
            return
        gone = {a.asset_id for a in contract.assets}
        for asset in contract.assets:
            for name in claims(asset):
                if self._claimed.get(name) in gone:
                    del self._claimed[name]
        for aid in gone:
            self._assets.pop(aid, None)
        if any(v in gone for v in self._implicit.values()):  # another asset may have the same name
            self._implicit = {}
            for asset in self._assets.values():
                for alias in asset.aliases:
                    self._implicit.setdefault(alias.lower(), asset.asset_id)
        self._by_partition.clear()

    def __len__(self) -> int:
        return len(self._assets)

    def assets(self) -> list[MonitoredAsset]:
        return list(self._assets.values())

    def get(self, asset_id: str) -> MonitoredAsset | None:
        return self._assets.get(asset_id)

    def resolve(self, identifier: str) -> MonitoredAsset | None:
        """Find the asset for an identifier (asset id, alias, physical name), case-insensitively."""
        exact = self._assets.get(identifier)  # the common case: an event names the asset id itself
        if exact is not None:
            return exact
        lower = identifier.lower()
        aid = self._claimed.get(lower) or self._implicit.get(lower)
        return self._assets.get(aid) if aid else None

    def assets_in_partition(self, partition: int, partitions: int) -> list[MonitoredAsset]:
        """Assets whose key hashes to ``partition`` (the processor that owns it owns their state)."""
        index = self._by_partition.get(partitions)
        if index is None:
            index = {}
            for asset in self._assets.values():
                index.setdefault(str(partition_for(asset.asset_id, partitions)), []).append(asset)
            self._by_partition[partitions] = index
        return index.get(str(partition), [])
