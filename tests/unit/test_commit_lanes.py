"""At least once, a violation never queues behind the check results: it goes to Kafka on a producer of its own
at once, while the check results are gathered up to ``kafka.results_linger_ms`` into fewer requests; a commit
hands over what is gathered first and waits for every output (violations included) before the changelog and
the offsets."""

from __future__ import annotations

import asyncio
from pathlib import Path
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


def _strategy(linger_ms: int) -> tuple[AtLeastOnce, list[str], _Lane, _Lane]:
    k = KafkaSettings(topic_prefix="t.", results_linger_ms=linger_ms)
    log: list[str] = []
    never = cast(AIOKafkaProducer, None)  # replaced by the stand-ins below
    s = AtLeastOnce(k, Changelog(k), never, ("t.violations", never))
    out, viol = _Lane(log, "outputs"), _Lane(log, "violations")
    s._out, s._viol, s._state = out, viol, _Lane(log, "changelog")  # type: ignore[assignment]
    return s, log, out, viol


async def test_check_results_are_gathered_and_violations_are_not() -> None:
    s, log, out, _ = _strategy(linger_ms=60_000)
    for i in range(3):
        buf = s.buffer(0)
        buf.lanes[("t.check-results", i % 2)] = [(b"a", b"r", [])]
        if i == 1:
            buf.records.append(OutRecord("t.violations", 0, b"a", b"v"))
        await s.send()
    assert log == ["violations: ['t.violations']"]  # at once; three batches' results still gathered
    await s.send_gathered()  # what the processor's flush does before a commit
    assert log[1:] == ["outputs: ['t.check-results']"] and len(out.acks) == 1  # one request for the three


async def test_the_processor_hands_over_what_is_gathered_before_it_commits(tmp_path: Path) -> None:
    from floe_stream.runtime.deployables.app import load_registry, processor_service
    from floe_stream.settings import Settings

    settings = Settings(contracts_dir=tmp_path, health_port=-1)
    svc = processor_service(settings, load_registry(settings))
    calls: list[str] = []

    async def send_gathered() -> None:
        calls.append("send_gathered")

    def finish(offsets: Any) -> None:
        calls.append("finish")

    svc.strategy.send_gathered = send_gathered  # type: ignore[method-assign]
    svc.finish = finish  # type: ignore[method-assign,assignment]
    await svc.flush()
    assert calls == ["send_gathered", "finish"]
    await svc.producer.stop()  # type: ignore[union-attr]
    await svc.strategy.close()


async def test_violations_go_on_their_own_producer_and_the_commit_waits_for_them() -> None:
    s, log, out, viol = _strategy(linger_ms=0)  # 0: the check results go with every batch too
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


async def test_gathered_results_are_due_after_the_linger_and_nothing_is_due_without_them() -> None:
    s, _, _, _ = _strategy(linger_ms=60_000)
    assert s.gathered_due_ms() is None
    s.buffer(0).lanes[("t.check-results", 0)] = [(b"a", b"r", [])]
    await s.send()
    due = s.gathered_due_ms()
    assert due is not None and 59_000 < due <= 60_000
    await s.send_gathered()
    assert s.gathered_due_ms() is None


class _Idle:
    """A consumer whose every poll comes back empty at once, noting the timeout it was given."""

    def __init__(self, svc: Any, polls: int) -> None:
        self.svc, self.polls, self.timeouts = svc, polls, []

    async def getmany(self, timeout_ms: int, max_records: int | None = None) -> dict[Any, Any]:
        self.timeouts.append(timeout_ms)
        if len(self.timeouts) >= self.polls:
            self.svc.request_stop()
        return {}


async def test_when_the_input_pauses_the_gathered_results_go_out_at_their_linger_not_at_the_idle_commit() -> (
    None
):
    from floe_stream.runtime.framework.service import FETCH_TIMEOUT_MS, ConsumerService
    from floe_stream.settings import Settings

    calls: list[str] = []
    pending = [5]  # ms until something is due at the first poll, nothing after

    class Svc(ConsumerService):
        async def start(self) -> None:
            return None

        async def stop(self) -> None:
            return None

        def fetch_timeout_ms(self) -> int:
            return pending[0] if pending else FETCH_TIMEOUT_MS

        async def due(self) -> None:
            calls.append("due")
            pending.clear()

        async def idle(self) -> None:
            calls.append("idle")

    svc = Svc(Settings(health_port=-1), ["t.in"], "g", with_producer=False)
    real, fake = svc.consumer, _Idle(svc, polls=2)
    svc.consumer = fake  # type: ignore[assignment]
    await svc.run()
    assert fake.timeouts == [5, FETCH_TIMEOUT_MS]  # the first poll no longer than what was due
    assert calls == ["due", "idle"]  # an empty short poll hands over what is due; only a full one is idle
    await real.stop()
