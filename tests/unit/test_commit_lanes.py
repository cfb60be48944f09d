"""At least once, a violation never queues behind the check results: it goes to Kafka on a producer of its own,
and the commit still waits for every output (violations included) before the changelog and the offsets."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaProducer

from floe_stream.processors.pipeline import StateChanges
from floe_stream.runtime.deployables.changelog import Changelog
from floe_stream.runtime.deployables.commit import AtLeastOnce
from floe_stream.runtime.framework.kafka import OutRecord
from floe_stream.settings import KafkaSettings


class _Lane:
    """A BatchProducer stand-in: records what it was handed; its acknowledgements resolve when told."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.acks: list[asyncio.Future[Any]] = []

    async def enqueue(self, records: list[OutRecord], lanes: Any = None) -> list[asyncio.Future[Any]]:
        self.log.append(f"{self.name}: {sorted({r.topic for r in records} | {t for t, _ in (lanes or {})})}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        return [fut]

    async def send_all(self, records: Any, lanes: Any = None) -> None:
        self.log.append(f"{self.name}: {len(records)} records")


async def test_violations_go_on_their_own_producer_and_the_commit_waits_for_them() -> None:
    k = KafkaSettings(topic_prefix="t.")
    log: list[str] = []
    never = cast(AIOKafkaProducer, None)  # replaced by the stand-ins below
    s = AtLeastOnce(k, Changelog(k), never, ("t.violations", never))
    out, viol, state = _Lane(log, "outputs"), _Lane(log, "violations"), _Lane(log, "changelog")
    s._out, s._viol, s._state = out, viol, state  # type: ignore[assignment]
    buf = s.buffer(0)
    buf.records.extend([OutRecord("t.violations", 0, b"a", b"v"), OutRecord("t.dlq", 0, b"a", b"d")])
    buf.lanes[("t.check-results", 0)] = [(b"a", b"r", [])]
    await s.send()
    assert log == ["violations: ['t.violations']", "outputs: ['t.check-results', 't.dlq']"]

    committed: list[Any] = []

    async def commit_offsets(offsets: Any) -> None:
        committed.append(offsets)

    work = s.finish({"tp": 1}, StateChanges(), commit_offsets)  # type: ignore[dict-item]
    assert work is not None
    task = asyncio.ensure_future(work)
    out.acks[0].set_result(None)
    await asyncio.sleep(0.01)
    assert not committed and not task.done()  # the violation is not acknowledged yet
    viol.acks[0].set_result(None)
    await asyncio.wait_for(task, 5)
    assert committed == [{"tp": 1}]
