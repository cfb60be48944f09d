"""In-memory index of monitored assets: resolve identifiers and find the assets a partition owns.

Ownership: an asset id, the explicit ``floe.aliases`` of an asset and its OpenLineage dataset identities
(``MonitoredAsset.identities``: its contract's ``servers`` + the table's physical name, compared by the
platform's case rules; :mod:`floe_stream.contracts.identity`) are *claims*. A claim belongs to the contract
that registered it first; a contract claiming a name or dataset another contract owns is refused as a whole
(:class:`ContractConflict`) and the owner keeps it, its SLA and its routing. The same table name in two
schemas or on two servers is two datasets: two assets, no conflict.

Implicit names (the table name, ``<contract>.<table>``, the physical name, the name part of each dataset
identity) are not claims: they never shadow a claim, and one that two assets share is **ambiguous** —
resolving it gives :class:`Ambiguous` (the router refuses the event for that dataset, counts and logs it)
instead of silently picking one (the same ``db.schema.table`` from two environments, one table name in two
contracts). Every index is kept incrementally as contracts come and go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from floe_stream.contracts.identity import dataset_key, name_key
from floe_stream.contracts.models import ContractError, LoadedContract, MonitoredAsset
from floe_stream.topics.partitioning import partition_for

__all__ = [
    "DEFAULT_ID_HINT",
    "Ambiguous",
    "ContractConflict",
    "ContractRegistry",
    "claims",
    "dataset_claims",
    "implicit_names",
]


DEFAULT_ID_HINT = (
    " (the table's default id, its name on its first server: the same table name on another host, e.g. prod"
    " and dev, needs its own id: set floe.asset)"
)
"""Said where a default asset id collides: the fix is one ``floe.asset`` (docs/integrations/README.md)."""


class ContractConflict(ContractError):
    """A contract claims an asset id, alias or dataset another contract owns; the owner keeps it."""

    def __init__(self, contract: LoadedContract, problem: str) -> None:
        super().__init__(contract.source, problem)
        self.contract = contract


class Ambiguous(NamedTuple):
    """An identifier that names more than one monitored asset: nothing is resolved from it."""

    identifier: str
    assets: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.identifier!r} names {len(self.assets)} assets ({', '.join(sorted(self.assets))})"


def _same(folded: str, given: str) -> str:
    """``folded``, or ``given`` itself when they are equal: index keys share the asset's strings (memory at
    100,000 assets, bench/state.py)."""
    return given if folded == given else folded


def claims(asset: MonitoredAsset) -> set[str]:
    """The names ``asset`` owns, lower-cased: its id and its explicit ``floe.aliases``."""
    aid = asset.asset_id
    return {_same(aid.lower(), aid), *(_same(a.lower(), a) for a in asset.floe.aliases)}


def dataset_claims(asset: MonitoredAsset) -> dict[tuple[str, str], tuple[str, str]]:
    """The datasets ``asset`` owns: comparison key → the identity as derived."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for ident in asset.identities:
        key = dataset_key(*ident)
        out[ident if key == ident else key] = ident
    return out


def implicit_names(asset: MonitoredAsset) -> set[str]:
    """The names events may use for ``asset`` without owning them, lower-cased (claims excluded)."""
    names = (*asset.aliases, *(name for _, name in asset.identities))
    return {_same(name_key(n), n) for n in names} - claims(asset)


_Claim = str | tuple[str, ...]  # one asset id (the common case), or the ids of every asset with that name
_Keys = tuple[MonitoredAsset, set[str], set[str], dict[tuple[str, str], tuple[str, str]]]


def _keys(contract: LoadedContract) -> list[_Keys]:
    return [(a, claims(a), implicit_names(a), dataset_claims(a)) for a in contract.assets]


def _add(index: dict[Any, _Claim], key: object, aid: str, grow: bool = False) -> None:
    cur: _Claim | list[str] | None = index.get(key)
    if cur is None:
        index[key] = aid
    elif isinstance(cur, str):
        if cur != aid:
            index[key] = [cur, aid] if grow else (cur, aid)  # type: ignore[assignment]
    elif isinstance(cur, list):  # while the constructor loads (``grow``): made a tuple once at its end
        if aid not in cur[-1:]:
            cur.append(aid)
    elif aid not in cur:
        index[key] = (*cur, aid)


def _drop(index: dict[Any, _Claim], key: object, aid: str) -> None:
    cur: _Claim | None = index.get(key)
    if cur is None:
        return
    if isinstance(cur, str):
        if cur == aid:
            del index[key]
        return
    rest = tuple(a for a in cur if a != aid)
    index[key] = rest[0] if len(rest) == 1 else rest


class ContractRegistry:
    def __init__(self, contracts: Iterable[LoadedContract] = ()) -> None:
        self._assets: dict[str, MonitoredAsset] = {}
        self._claimed: dict[str, str] = {}  # claim (lower) → asset id
        self._implicit: dict[str, _Claim] = {}  # implicit name (lower) → asset id(s)
        # dataset identity (as derived, and its comparison key) → asset id(s)
        self._datasets: dict[tuple[str, str], _Claim] = {}
        self._by_partition: dict[int, dict[str, list[MonitoredAsset]]] = {}
        self.contracts: dict[str, LoadedContract] = {}
        self.refused: list[ContractConflict] = []
        """Contracts given to the constructor that were refused (in order); the caller reports them."""
        self._grow = False
        # a name many contracts share (the table name ``t0001`` of 1,000 contracts) grows as a list while they
        # load, a tuple at the end: one tuple rebuilt per contract was quadratic (bench/state.py, 1,000,000 assets)
        self._grow = True
        for c in contracts:
            try:
                self.add(c)
            except ContractConflict as exc:
                self.refused.append(exc)
        self._grow = False
        for index in (self._implicit, self._datasets):
            for key, found in index.items():
                if isinstance(found, list):
                    index[key] = tuple(found)

    def _owner(self, aid: _Claim | None) -> str | None:
        if aid is None:
            return None
        first = aid if isinstance(aid, str) else aid[0]
        asset = self._assets.get(first)
        return asset.contract_id if asset is not None else None

    def conflicts(self, contract: LoadedContract, keys: list[_Keys] | None = None) -> list[str]:
        """Why ``contract`` cannot be registered: the names and datasets it claims that another contract owns."""
        out: list[str] = []
        for asset, claimed, _, datasets in keys if keys is not None else _keys(contract):
            for name in sorted(claimed):
                owner = self._owner(self._claimed.get(name))
                if owner is not None and owner != contract.contract_id:
                    what = "asset id" if name == asset.asset_id.lower() else "alias"
                    shown = asset.asset_id if what == "asset id" else name
                    hint = DEFAULT_ID_HINT if what == "asset id" and asset.floe.asset is None else ""
                    out.append(f"{what} {shown!r} is owned by contract {owner!r}{hint}")
            for key, (ns, name) in datasets.items():
                owner = self._owner(self._datasets.get(key))
                if owner is not None and owner != contract.contract_id:
                    out.append(f"dataset {ns} + {name} (from its servers) is owned by contract {owner!r}")
        return out

    def add(self, contract: LoadedContract) -> None:
        """Register (or replace the registered version of) ``contract``; raises :class:`ContractConflict`
        (and changes nothing) when it claims a name or dataset another contract owns."""
        keys = _keys(contract)  # each asset's names and dataset keys, derived once
        problems = self.conflicts(contract, keys)
        if problems:
            raise ContractConflict(
                contract, f"contract {contract.contract_id!r} refused: " + "; ".join(problems)
            )
        old = self.contracts.get(contract.contract_id)
        if old is not None:
            self.remove(old.contract_id)
        self.contracts[contract.contract_id] = contract
        grow = self._grow
        for asset, claimed, implicit, datasets in keys:
            aid = asset.asset_id
            self._assets[aid] = asset
            for name in claimed:
                self._claimed[name] = aid
            for name in implicit:
                _add(self._implicit, name, aid, grow)
            for key, ident in datasets.items():
                _add(self._datasets, key, aid, grow)
                if ident != key:
                    _add(self._datasets, ident, aid, grow)
        for partitions, index in self._by_partition.items():  # only this contract's assets are placed
            for asset in contract.assets:
                index.setdefault(str(partition_for(asset.asset_id, partitions)), []).append(asset)

    def remove(self, contract_id: str) -> None:
        contract = self.contracts.pop(contract_id, None)
        if contract is None:
            return
        for asset in contract.assets:
            aid = asset.asset_id
            for name in claims(asset):
                if self._claimed.get(name) == aid:
                    del self._claimed[name]
            for name in implicit_names(asset):
                _drop(self._implicit, name, aid)
            for key, ident in dataset_claims(asset).items():
                _drop(self._datasets, key, aid)
                if ident != key:
                    _drop(self._datasets, ident, aid)
            if self._assets.get(aid) is asset:
                del self._assets[aid]
        gone = {id(a) for a in contract.assets}
        for partitions, index in self._by_partition.items():  # the other contracts' assets stay in place
            for p in {str(partition_for(a.asset_id, partitions)) for a in contract.assets}:
                index[p] = [a for a in index.get(p, ()) if id(a) not in gone]

    def __len__(self) -> int:
        return len(self._assets)

    def assets(self) -> list[MonitoredAsset]:
        return list(self._assets.values())

    def get(self, asset_id: str) -> MonitoredAsset | None:
        return self._assets.get(asset_id)

    def _named(self, identifier: str) -> MonitoredAsset | Ambiguous | None:
        lower = identifier.strip().lower()
        aid = self._claimed.get(lower)
        if aid is not None:
            return self._assets.get(aid)
        found = self._implicit.get(lower)
        if found is None:
            return None
        if isinstance(found, str):
            return self._assets.get(found)
        return Ambiguous(identifier, found)

    def lookup(self, identifier: str) -> MonitoredAsset | Ambiguous | None:
        """The asset an identifier (asset id, alias, physical or dataset name) names, case-insensitively;
        :class:`Ambiguous` when it is an implicit name of several assets."""
        exact = self._assets.get(identifier)  # the common case: an event names the asset id itself
        if exact is not None:
            return exact
        return self._named(identifier)

    def resolve(self, identifier: str) -> MonitoredAsset | None:
        """:meth:`lookup`, with an ambiguous identifier resolving to nothing."""
        exact = self._assets.get(identifier)
        if exact is not None:
            return exact
        found = self._named(identifier)
        return found if isinstance(found, MonitoredAsset) else None

    def resolve_dataset(
        self, namespace: str, name: str, symlinks: Sequence[tuple[str, str]] = ()
    ) -> MonitoredAsset | Ambiguous | None:
        """An OpenLineage dataset: its exact (namespace, name), then its symlinks' (Spark names a Hive or
        Iceberg table by its location and gives the table name as a symlink), then the spellings
        ``namespace/name`` and ``namespace.name``, then the name alone. The first hit decides, an ambiguous
        one too (the event is refused for this dataset rather than given to one of the assets); by name, a
        claim does not win over another asset's implicit name (:meth:`_named_dataset`)."""
        datasets = self._datasets
        for ns, n in ((namespace, name), *symlinks):
            claim = datasets.get((ns, n))
            if claim is None:
                claim = datasets.get(dataset_key(ns, n))
            if claim is not None:
                if isinstance(claim, str):
                    return self._assets.get(claim)
                return Ambiguous(f"{ns}/{n}", claim)
        for ident in (f"{namespace}/{name}", f"{namespace}.{name}", name, *(n for _, n in symlinks)):
            found = self._named_dataset(ident)
            if found is not None:
                return found
        return None

    def _named_dataset(self, identifier: str) -> MonitoredAsset | Ambiguous | None:
        """A dataset's name without its namespace is weak evidence: every asset with that name, claimed or
        implicit, is a candidate (``db.schema.table`` is one asset's id in one environment and another
        asset's name in the next), and more than one is ambiguous."""
        lower = identifier.strip().lower()
        claim = self._claimed.get(lower)
        implicit = self._implicit.get(lower)
        if implicit is None:
            return None if claim is None else self._assets.get(claim)
        candidates = (implicit,) if isinstance(implicit, str) else implicit
        if claim is not None and claim not in candidates:
            candidates = (claim, *candidates)
        if len(candidates) == 1:
            return self._assets.get(candidates[0])
        return Ambiguous(identifier, candidates)

    def assets_in_partition(self, partition: int, partitions: int) -> list[MonitoredAsset]:
        """Assets whose key hashes to ``partition`` (the processor that owns it owns their state)."""
        index = self._by_partition.get(partitions)
        if index is None:
            index = {}
            for asset in self._assets.values():
                index.setdefault(str(partition_for(asset.asset_id, partitions)), []).append(asset)
            self._by_partition[partitions] = index
        return index.get(str(partition), [])
