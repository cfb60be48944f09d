"""Pure: which catalog tables a contract covers, and which contract assets point at no table (FR-004 cold start).

"Covered" means exactly what the processor will do with a commit event of that table: the table identifier
resolves (asset id or alias, case-insensitively) to a monitored asset.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from floe_stream.contracts.registry import ContractRegistry


class CoveredTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    table: str
    asset: str
    contract_id: str


class MissingAsset(BaseModel):
    model_config = ConfigDict(frozen=True)

    asset: str
    contract_id: str
    identifiers: list[str]
    hint: str | None = None


class CoverageReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    catalog: str
    tables: int
    covered: list[CoveredTable]
    uncovered: list[str]
    missing: list[MissingAsset]

    @property
    def ratio(self) -> float:
        return len(self.covered) / self.tables if self.tables else 1.0


def coverage(catalog: str, tables: Iterable[str], registry: ContractRegistry) -> CoverageReport:
    tables = sorted(set(tables))
    covered: list[CoveredTable] = []
    uncovered: list[str] = []
    hit: set[str] = set()
    for t in tables:
        asset = registry.resolve(t)
        if asset is None:
            uncovered.append(t)
        else:
            covered.append(CoveredTable(table=t, asset=asset.asset_id, contract_id=asset.contract_id))
            hit.add(asset.asset_id)
    by_name: dict[str, list[str]] = {}
    for t in uncovered:
        by_name.setdefault(t.rsplit(".", 1)[-1].lower(), []).append(t)
    missing: list[MissingAsset] = []
    for asset in sorted(registry.assets(), key=lambda a: a.asset_id):
        if asset.asset_id in hit:
            continue
        idents = sorted({asset.asset_id, *asset.aliases})
        near = by_name.get((asset.physical_name or asset.table).rsplit(".", 1)[-1].lower(), [])
        hint = f"catalog has {', '.join(near)}: set floe.asset or an alias to it" if near else None
        missing.append(
            MissingAsset(asset=asset.asset_id, contract_id=asset.contract_id, identifiers=idents, hint=hint)
        )
    return CoverageReport(
        catalog=catalog, tables=len(tables), covered=covered, uncovered=uncovered, missing=missing
    )
