"""A contract published while a deployable runs is read off the event loop: evaluation never waits for it.

A 1,000-table contract without a compiled form takes ~1 s to parse (docs/PERFORMANCE.md, 100,000 tables); the
contracts tail reads each fetched batch in a worker thread and applies it on the loop, in order.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.contracts.registry import ContractRegistry
from floe_stream.runtime.framework import contracts_feed
from floe_stream.runtime.framework.contracts_feed import ContractsFeed
from floe_stream.settings import Settings
from floe_stream.telemetry.metrics import instruments
from tests.conftest import wait_for

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: orders
version: 1.0.0
status: active
schema:
  - name: orders
slaProperties:
  - property: latency
    value: 1
    unit: h
"""


class _Reader:
    """One batch with one contracts record, then nothing."""

    def __init__(self) -> None:
        tp = TopicPartition("floe.contracts", 0)
        rec: ConsumerRecord[bytes, bytes] = ConsumerRecord(
            "floe.contracts", 0, 0, 0, 0, b"orders", CONTRACT.encode(), None, 6, len(CONTRACT), ()
        )
        self.batches: list[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]] = [{tp: [rec]}]

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if self.batches:
            return self.batches.pop()
        await asyncio.sleep(0.01)
        return {}


async def test_a_contract_being_read_does_not_hold_up_the_event_loop(monkeypatch: Any) -> None:
    rt = ContractsFeed(Settings(), ContractRegistry(), instruments())
    rt._reader = _Reader()  # type: ignore[assignment]
    loop_turned = threading.Event()
    real = contracts_feed.read_record

    def slow_read(*args: Any) -> Any:
        # the read waits until the event loop has run something else meanwhile: were it on the loop, the loop
        # could not turn and this would give up after 10 s with the flag unset
        assert loop_turned.wait(10), "the event loop did not run while a contract was being read"
        return real(*args)

    monkeypatch.setattr(contracts_feed, "read_record", slow_read)

    def registered() -> bool:
        loop_turned.set()  # the loop runs other work (this poll) while the record is read
        return rt.live.registry.get("orders") is not None  # then applied, on the loop

    tail = asyncio.create_task(rt._tail_contracts())
    try:
        await wait_for(registered, interval=0.005)
        assert rt.contract_changes == 1 and rt.contracts_refused == 0
    finally:
        tail.cancel()
        await asyncio.gather(tail, return_exceptions=True)
        await rt.stop()


def _contract(cid: str, channel: str) -> str:
    return (
        f"apiVersion: v3.1.0\nkind: DataContract\nid: {cid}\nversion: 1.0.0\nstatus: active\nschema:\n"
        f"  - name: {cid}\n    customProperties:\n      - property: floe\n"
        f"        value: {{alerts: {{channels: [{channel}]}}}}\n"
    )


def _records(*docs: tuple[str, str]) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    tp = TopicPartition("floe.contracts", 0)
    return {
        tp: [
            ConsumerRecord("floe.contracts", 0, i, i, 0, k.encode(), v.encode(), None, len(k), len(v), ())
            for i, (k, v) in enumerate(docs)
        ]
    }


def test_the_alerts_sink_routes_by_a_contract_once_its_feed_applies_it(caplog: Any) -> None:
    """A contract's floe.alerts takes effect when the feed applies it (no restart); a contract naming a channel
    that is not configured is logged when it changes, not again on every other contract's change."""
    from floe_stream.sinks.alerts.config import parse_config
    from floe_stream.sinks.alerts.sink import AlertSink

    config = parse_config({"channels": [{"name": "team", "type": "webhook", "url": "http://127.0.0.1:9"}]})
    feed = ContractsFeed(Settings(), ContractRegistry(), instruments())
    sink = AlertSink(Settings(), config, contracts=feed)
    assert sink.rules.overrides == {} and not sink.delivering
    with caplog.at_level("ERROR"):
        feed._apply_in_order(_records(("typo", _contract("typo", "tema"))))
        feed._apply_in_order(_records(("orders", _contract("orders", "team"))))
    assert list(sink.rules.overrides) == ["orders"] and sink.rules.overrides["orders"].channels == ("team",)
    assert sink.delivering
    assert [r.getMessage().count("unknown channel") for r in caplog.records] == [1]
