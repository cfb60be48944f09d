"""Who owns an asset id or alias: the first contract to claim it; a contract claiming another's is refused.

And a contract record that fails to load in any way is skipped: the others still load."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe_stream.contracts import runtime_registry
from floe_stream.contracts.loader import load_contract_text
from floe_stream.contracts.models import LoadedContract
from floe_stream.contracts.registry import Ambiguous, ContractConflict, ContractRegistry
from floe_stream.contracts.runtime_registry import LiveRegistry


def doc(cid: str, table: str = "orders", *, asset: str | None = None, aliases: tuple[str, ...] = ()) -> str:
    floe = {}
    if asset:
        floe["asset"] = asset
    if aliases:
        floe["aliases"] = list(aliases)
    props = (
        f"""
    customProperties:
      - property: floe
        value: {floe}"""
        if floe
        else ""
    )
    return f"""apiVersion: v3.1.0
kind: DataContract
id: {cid}
version: 1.0.0
status: active
schema:
  - name: {table}{props}
slaProperties:
  - property: latency
    value: 1
    unit: h
"""


def load(cid: str, table: str = "orders", **kw: object) -> LoadedContract:
    return load_contract_text(doc(cid, table, **kw), f"{cid}.yaml")  # type: ignore[arg-type]


def test_an_asset_id_claimed_by_another_contract_is_refused_and_the_owner_keeps_it() -> None:
    reg = ContractRegistry([load("sales", asset="sales.orders")])
    intruder = load("intruder", "x", asset="Sales.Orders")
    with pytest.raises(ContractConflict, match=r"asset id 'Sales\.Orders' is owned by contract 'sales'"):
        reg.add(intruder)
    assert reg.resolve("sales.orders").contract_id == "sales"  # type: ignore[union-attr]
    assert "intruder" not in reg.contracts
    reg.remove("intruder")  # retiring the intruder: nothing of the owner's goes
    assert reg.get("sales.orders") is not None


def test_an_explicit_alias_is_a_claim_too_and_implicit_names_never_shadow_one() -> None:
    reg = ContractRegistry([load("sales", asset="sales.orders", aliases=("orders_v2",))])
    with pytest.raises(ContractConflict, match="alias 'orders_v2' is owned by contract 'sales'"):
        reg.add(load("intruder", "x", aliases=("ORDERS_V2",)))
    with pytest.raises(ContractConflict, match="asset id 'orders_v2'"):
        reg.add(load("intruder", "x", asset="orders_v2"))
    # a table named like the owner's alias (asset id defaulting to it: refused; with its own id: its own
    # asset, but the table name never shadows the owner's alias)
    with pytest.raises(ContractConflict):
        reg.add(load("other", "orders_v2"))
    reg.add(load("other", "orders_v2", asset="other.t"))
    assert reg.resolve("ORDERS_V2").asset_id == "sales.orders"  # type: ignore[union-attr]


def test_two_contracts_with_the_same_table_name_keep_two_assets_when_their_ids_differ() -> None:
    reg = ContractRegistry([load("a", asset="a.orders"), load("b", asset="b.orders")])
    assert {a.asset_id for a in reg.assets()} == {"a.orders", "b.orders"}
    # the table name alone names both: refused (resolves to neither), never silently the first one
    assert reg.resolve("orders") is None
    assert reg.lookup("orders") == Ambiguous("orders", ("a.orders", "b.orders"))
    reg.remove("a")
    assert reg.resolve("orders").asset_id == "b.orders"  # type: ignore[union-attr]
    assert not reg.refused


def test_the_constructor_refuses_conflicts_in_order_and_keeps_them_for_the_caller() -> None:
    reg = ContractRegistry([load("sales", asset="sales.orders"), load("intruder", "x", asset="sales.orders")])
    assert list(reg.contracts) == ["sales"]
    assert [e.contract.contract_id for e in reg.refused] == ["intruder"]
    assert "refused" in str(reg.refused[0])


def test_topic_hijack_is_refused_live_and_retiring_the_intruder_leaves_the_owner() -> None:
    live = LiveRegistry()
    live.apply_record("sales", doc("sales", asset="sales.orders"))
    change = live.apply_record("intruder", doc("intruder", "x", asset="sales.orders"))
    assert change.errors and "owned by contract 'sales'" in change.errors[0]
    assert live.registry.get("sales.orders").contract_id == "sales"  # type: ignore[union-attr]
    retired = live.apply_record("intruder", None)
    assert not retired.gone_assets
    assert live.registry.get("sales.orders") is not None


def test_a_refused_version_is_registered_once_the_owner_retires() -> None:
    live = LiveRegistry()
    live.apply_record("sales", doc("sales", asset="sales.orders"))
    live.apply_record("successor", doc("successor", "x", asset="sales.orders"))
    change = live.apply_record("sales", None)
    assert change.retired == ["sales"] and change.added == ["successor"]
    assert live.registry.get("sales.orders").contract_id == "successor"  # type: ignore[union-attr]
    assert not live.refused


def test_an_update_that_claims_another_contracts_name_keeps_the_previous_version() -> None:
    live = LiveRegistry()
    live.apply_record("sales", doc("sales", asset="sales.orders"))
    live.apply_record("other", doc("other", "x", asset="other.x"))
    change = live.apply_record("other", doc("other", "x", asset="sales.orders"))
    assert change.errors and not change.gone_assets
    assert live.registry.get("other.x") is not None
    assert live.registry.get("sales.orders").contract_id == "sales"  # type: ignore[union-attr]


def test_a_contract_record_that_crashes_the_loader_is_skipped_and_a_tombstone_or_new_version_replaces_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = runtime_registry.load_contract_text

    def buggy(text: str, source: str) -> LoadedContract:  # a loader bug on one document
        if "BUG" in text:
            raise TypeError("Value after * must be an iterable, not NoneType")
        return real(text, source)

    monkeypatch.setattr(runtime_registry, "load_contract_text", buggy)
    live = LiveRegistry()
    live.apply_record("good", doc("good", asset="good.t"))
    change = live.apply_record("poison", doc("poison", "p") + "# BUG\n")
    assert change.errors and "unexpected TypeError" in change.errors[0] and "poison" in change.errors[0]
    assert live.apply_record("later", doc("later", "l", asset="later.t")).added == ["later"]
    assert live.apply_record("poison", doc("poison", "p", asset="poison.t")).added == ["poison"]
    assert {a.asset_id for a in live.registry.assets()} == {"good.t", "later.t", "poison.t"}
    assert live.apply_record("poison", None).retired == ["poison"]


def test_consumers_null_is_no_consumers_at_either_level() -> None:
    text = doc("c", asset="c.t") + "customProperties:\n  - property: floe\n    value: {consumers: null}\n"
    assert load_contract_text(text, "c.yaml").assets[0].consumers == ()


def test_directory_conflicts_are_refused_in_file_order_and_come_in_when_the_owner_file_goes(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(doc("owner", asset="sales.orders"))
    live = LiveRegistry()
    live.scan_directory(tmp_path)
    (tmp_path / "b.yaml").write_text(doc("intruder", "x", asset="sales.orders"))
    change = live.scan_directory(tmp_path)
    assert change.errors and live.registry.get("sales.orders").contract_id == "owner"  # type: ignore[union-attr]
    (tmp_path / "a.yaml").unlink()
    change = live.scan_directory(tmp_path)
    assert change.retired == ["owner"] and change.added == ["intruder"]
