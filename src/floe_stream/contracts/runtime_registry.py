"""Contract lifecycle while running: register, update and retire contracts without a restart. Pure.

Two sources feed one :class:`ContractRegistry`:

* the compacted ``contracts`` topic (key = contract id, value = the ODCS YAML text, tombstone = retire),
  read in full by every processor (``floe contracts publish DIR`` / ``floe contracts retire ID``);
* the contracts directory (``FLOE_CONTRACTS_DIR``), re-scanned while running.

For one contract id the topic wins over the directory; a tombstone on the topic retires the id even if
a file still declares it (until that file changes again). An invalid document never replaces a working
version: it is reported and the previous version stays in force; a record that fails to load in any way
(not only a :class:`ContractError`) is skipped the same way, so one bad record never stops the others.

A contract claiming an asset id or alias that another contract owns is refused and reported
(:class:`~floe_stream.contracts.registry.ContractConflict`): the owner keeps the name. The refused version
waits: once the owner retires or drops the name, it is registered (the same order on every instance).

Retiring (or an update that drops a table) returns the assets that are gone: the processor resolves their
open episodes with reason ``contract retired`` and deletes their state (decision: resolve, not drop, so
downstream incident tools close what they opened).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from floe_stream.contracts.compiled import CompiledFormError, load_compiled
from floe_stream.contracts.loader import contract_files, load_contract, load_contract_text
from floe_stream.contracts.models import ContractError, LoadedContract, MonitoredAsset
from floe_stream.contracts.registry import ContractConflict, ContractRegistry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Change:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    gone_assets: list[MonitoredAsset] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.retired or self.gone_assets or self.errors)

    def merge(self, other: Change) -> None:
        self.added += other.added
        self.updated += other.updated
        self.retired += other.retired
        self.gone_assets += other.gone_assets
        self.errors += other.errors


def load_record(text: str, compiled: bytes | None, source: str, *, warn: bool = True) -> LoadedContract:
    """The contract a contracts-topic record carries, as every reader of the topic reads it: from its compiled
    form (the ``floe-compiled`` header) when it has one this floe reads (milliseconds), else from the YAML; a
    compiled form this floe refuses (another version, damaged) is logged with one line (unless ``warn`` is
    False) and the YAML read instead. Raises :class:`ContractError` for an invalid YAML document. Pure."""
    if compiled is not None:
        try:
            return load_compiled(compiled, source)
        except CompiledFormError as exc:
            if warn:
                log.warning("contracts topic: %s; reading its YAML instead", exc)
    return load_contract_text(text, source)


def read_record(key: str, text: str | None, compiled: bytes | None = None) -> LoadedContract | Change | None:
    """The contract a contracts-topic record carries (None: a tombstone; :func:`load_record`), or a Change
    with the error that refuses it. Pure: it touches no registry, so it may run off the event loop."""
    if text is None:
        return None
    source = f"contracts-topic:{key}"
    try:
        return load_record(text, compiled, source)
    except ContractError as exc:
        log.error("contracts topic: %s (the previous version stays in force)", exc)
        return Change(errors=[str(exc)])
    except Exception as exc:  # a loader bug: this record is skipped, the others still load
        msg = f"{source}: unexpected {type(exc).__name__} while loading: {exc}"
        log.error("contracts topic: %s (skipped; the previous version stays in force)", msg)
        return Change(errors=[msg])


class LiveRegistry:
    def __init__(
        self,
        registry: ContractRegistry | None = None,
        load: Callable[[Path], LoadedContract] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else ContractRegistry()  # an empty one is falsy
        self._load = load or load_contract
        """How a contract file is read (the processor: from its compiled form when cached)."""
        self.from_dir: dict[str, LoadedContract] = {
            c.contract_id: c for c in self.registry.contracts.values()
        }
        self.refused: dict[str, LoadedContract] = {}
        """contract id → the version refused for a claim another contract owns (retried when names free up)"""
        for exc in self.registry.refused:
            self.from_dir.setdefault(exc.contract.contract_id, exc.contract)
            self.refused[exc.contract.contract_id] = exc.contract
        self.from_topic: dict[str, LoadedContract | None] = {}
        self.removed_assets: dict[str, MonitoredAsset] = {}
        """Last known definition of assets that are no longer monitored (to resolve their episodes)."""
        self._files: dict[Path, tuple[float, int, str | None]] = {}
        """path → (mtime, size, contract id or None when the file is invalid)"""

    def _effective(self, contract_id: str) -> LoadedContract | None:
        if contract_id in self.from_topic:
            return self.from_topic[contract_id]
        return self.from_dir.get(contract_id)

    def _refresh(self, contract_id: str) -> Change:
        change = self._apply(contract_id)
        if change.retired or change.gone_assets or change.updated:  # names may have been freed
            for cid in list(self.refused):
                waiting = self.refused.get(cid)
                if waiting is not None and not self.registry.conflicts(waiting):
                    change.merge(self._apply(cid))
        return change

    def _apply(self, contract_id: str) -> Change:
        change = Change()
        old = self.registry.contracts.get(contract_id)
        new = self._effective(contract_id)
        if old is new:
            self.refused.pop(contract_id, None)
            return change
        old_assets = {a.asset_id: a for a in old.assets} if old else {}
        if new is None:
            self.refused.pop(contract_id, None)
            self.registry.remove(contract_id)
            change.retired.append(contract_id)
        else:
            try:
                self.registry.add(new)
            except ContractConflict as exc:
                self.refused[contract_id] = new
                kept = " (the previous version stays in force)" if old else ""
                log.error("%s%s", exc, kept)
                change.errors.append(str(exc))
                return change
            self.refused.pop(contract_id, None)
            (change.updated if old else change.added).append(contract_id)
        keep = {a.asset_id for a in new.assets} if new else set()
        change.gone_assets = [a for aid, a in old_assets.items() if aid not in keep]
        for a in change.gone_assets:
            self.removed_assets[a.asset_id] = a
        for aid in keep:
            self.removed_assets.pop(aid, None)
        return change

    # --- the contracts topic ---------------------------------------------------------------------
    def apply_record(self, key: str, text: str | None, compiled: bytes | None = None) -> Change:
        """One record of the contracts topic: YAML text (and its compiled form, when the publisher added it)
        registers/updates, None (tombstone) retires."""
        return self.apply_read(key, read_record(key, text, compiled))

    def apply_read(self, key: str, read: LoadedContract | Change | None) -> Change:
        """Apply what :func:`read_record` made of a record (on the thread that owns the registry)."""
        if read is None:
            self.from_topic[key] = None
            return self._refresh(key)
        if isinstance(read, Change):
            return read
        contract = read
        if contract.contract_id != key:
            msg = f"contracts topic: record key {key!r} differs from the contract id {contract.contract_id!r}; ignored"
            log.error(msg)
            return Change(errors=[msg])
        self.from_topic[key] = contract
        return self._refresh(key)

    # --- the contracts directory -----------------------------------------------------------------
    def scan_directory(self, directory: Path) -> Change:
        """Re-read changed, new and removed files of ``directory`` (cheap when nothing changed)."""
        change = Change()
        if not directory.is_dir():
            return change
        seen: set[Path] = set()
        for path in contract_files(directory):
            seen.add(path)
            try:
                st = path.stat()
            except OSError:
                continue
            known = self._files.get(path)
            if known is not None and known[:2] == (st.st_mtime, st.st_size):
                continue
            old_id = known[2] if known else None
            try:
                contract = self._load(path)
            except Exception as exc:  # a ContractError, or a loader bug: this file only
                if not isinstance(exc, ContractError):
                    exc = ContractError(str(path), f"unexpected {type(exc).__name__} while loading: {exc}")
                log.error("contracts directory: %s (the previous version stays in force)", exc)
                change.errors.append(str(exc))
                self._files[path] = (st.st_mtime, st.st_size, old_id)
                continue
            self._files[path] = (st.st_mtime, st.st_size, contract.contract_id)
            if old_id is not None and old_id != contract.contract_id:
                self.from_dir.pop(old_id, None)
                change.merge(self._refresh(old_id))
            self.from_dir[contract.contract_id] = contract
            change.merge(self._refresh(contract.contract_id))
        for path in [p for p in self._files if p not in seen]:
            _, _, cid = self._files.pop(path)
            if cid is not None and not any(v[2] == cid for v in self._files.values()):
                self.from_dir.pop(cid, None)
                change.merge(self._refresh(cid))
        return change

    def prime_directory(self, directory: Path) -> None:
        """Remember the current files (already loaded at start-up) so the first scan reports no change."""
        if not directory.is_dir():
            return
        by_source = {c.source: c.contract_id for c in self.from_dir.values()}
        for path in contract_files(directory):
            st = path.stat()
            self._files[path] = (st.st_mtime, st.st_size, by_source.get(str(path)))
