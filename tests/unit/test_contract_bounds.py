"""Reading a contract is bounded: a tiny document whose aliases expand into billions of nodes, one that nests
too deep, one that contains itself or is simply too long is refused in one clear line, before anything walks
it — and a message never quotes a value at full length."""

from __future__ import annotations

import time

import pytest

from floe_stream.contracts.document import MAX_DEPTH, MAX_DOCUMENT_CHARS, MAX_NODES
from floe_stream.contracts.loader import load_contract_text
from floe_stream.contracts.models import ContractError

HEAD = (
    "apiVersion: v3.1.0\nkind: DataContract\nid: bomb\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n"
)


def alias_bomb(levels: int = 9) -> str:
    """The classic "billion laughs" in ~1 KB: 9 levels of 9 aliases, 9**9 strings once expanded."""
    lines = ['      a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"      a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    anchors = "\n".join(lines)
    return f"{HEAD}customProperties:\n  - property: floe\n    value:\n{anchors}\n      consumers: *a{levels - 1}\n"


def test_an_alias_bomb_is_refused_at_once() -> None:
    bomb = alias_bomb()
    assert len(bomb) < 1_200
    t0 = time.process_time()
    with pytest.raises(ContractError, match=f"more than {MAX_NODES:,} nodes with its aliases expanded"):
        load_contract_text(bomb, "bomb.yaml")
    assert time.process_time() - t0 < 5  # generous: refused without expanding (the expansion took minutes)


def test_a_recursive_alias_is_refused() -> None:
    doc = f"{HEAD}customProperties:\n  - property: floe\n    value:\n      consumers: &c [x, *c]\n"
    with pytest.raises(ContractError, match="recursive alias"):
        load_contract_text(doc, "loop.yaml")


def test_deep_nesting_and_a_long_document_are_refused() -> None:
    deep = (
        f"{HEAD}customProperties:\n  - property: x\n    value: "
        + "[" * (MAX_DEPTH + 5)
        + "]" * (MAX_DEPTH + 5)
        + "\n"
    )
    with pytest.raises(ContractError, match=f"nested more than {MAX_DEPTH} levels"):
        load_contract_text(deep, "deep.yaml")
    long = HEAD + "description: {purpose: '" + "x" * MAX_DOCUMENT_CHARS + "'}\n"
    with pytest.raises(ContractError, match="document too large"):
        load_contract_text(long, "long.yaml")


def test_an_ordinary_alias_still_works_and_messages_stay_short() -> None:
    ok = f"{HEAD}customProperties:\n  - property: floe\n    value:\n      consumers: &c [bi, ml]\n      aliases: *c\n"
    asset = load_contract_text(ok, "ok.yaml").assets[0]
    assert asset.consumers == ("bi", "ml")
    nested = alias_bomb(levels=4)  # 9**4 strings: within bounds, but not a list of names
    with pytest.raises(ContractError) as err:
        load_contract_text(nested, "nested.yaml")
    assert "consumers: must be a list of non-empty strings" in str(err.value)
    assert len(str(err.value)) < 500
