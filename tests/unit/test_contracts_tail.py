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
