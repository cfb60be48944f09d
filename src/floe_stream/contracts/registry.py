"""In-memory index of monitored assets: resolve identifiers and find the assets a partition owns."""

from __future__ import annotations

from collections.abc import Iterable

from floe_stream.contracts.models import LoadedContract, MonitoredAsset
from floe_stream.topics.partitioning import partition_for


class ContractRegistry:
    def __init__(self, contracts: Iterable[LoadedContract] = ()) -> None:
        self._assets: dict[str, MonitoredAsset] = {}
        self._alias: dict[str, str] = {}
        self._by_partition: dict[int, dict[str, list[MonitoredAsset]]] = {}
        self.contracts: dict[str, LoadedContract] = {}
        for c in contracts:
            self.add(c)

    def add(self, contract: LoadedContract) -> None:
        old = self.contracts.get(contract.contract_id)
        if old is not None:
            self.remove(old.contract_id)
        self.contracts[contract.contract_id] = contract
        for asset in contract.assets:
            self._assets[asset.asset_id] = asset
            self._alias[asset.asset_id.lower()] = asset.asset_id
            for alias in asset.aliases:
                self._alias.setdefault(alias.lower(), asset.asset_id)
        self._by_partition.clear()

    def remove(self, contract_id: str) -> None:
        contract = self.contracts.pop(contract_id, None)
        if contract is None:
            return
        gone = {a.asset_id for a in contract.assets}
        for aid in gone:
            self._assets.pop(aid, None)
        self._alias = {k: v for k, v in self._alias.items() if v not in gone}
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
        aid = self._alias.get(identifier.lower())
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
