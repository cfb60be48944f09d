"""The sinks are plain classes (``Sink``): each tested here with fakes (pool, store, transport), no broker; and
the one sink runtime's decode → write → flush → dead-letter order with a fake sink. The same classes run over the
real broker and database in tests/integration (built by the composition root, runtime/deployables/app.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.reporting import store
from floe_stream.runtime.framework.kafka import OutRecord
from floe_stream.runtime.framework.sink_runtime import (
    Input,
    NotCommitted,
    Sink,
    SinkBatch,
    SinkContext,
    SinkRecord,
    SinkRunner,
)
from floe_stream.settings import OpenLineageSettings, Settings
from floe_stream.sinks.alerts.config import AlertsConfig
from floe_stream.sinks.alerts.decisions import AlertState, Decisions
from floe_stream.sinks.alerts.delivery import Outcome, StopDelivery, dead_letter
from floe_stream.sinks.alerts.model import Decision
from floe_stream.sinks.alerts.sink import NO_ROUTES, AlertSink
from floe_stream.sinks.openlineage.sink import OpenLineageSink
from floe_stream.sinks.openlineage.transport import TransportError
from floe_stream.sinks.postgres.sink import PostgresSink
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics import Severity, ViolationData
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.decode import DecodeError
from floe_stream.topics.enums import CheckType
from floe_stream.topics.violation import encode_violation

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def violation(n: int = 0) -> ViolationData:
    return ViolationData.model_validate({
        "violation_id": f"v-{n}", "correlation_key": "sales.orders/freshness", "contract_id": "sales",
        "contract_name": "sales-orders", "contract_version": "2.1.0", "asset": "sales.orders",
        "violation_type": CheckType.FRESHNESS, "severity": Severity.ERROR, "message": "data is 7200 s old",
        "element": "updated_at", "expected_value": "3600", "actual_value": "7200",
        "detected_at": T0, "episode_started_at": T0, "consumers": [],
    })  # fmt: skip


class Ctx:
    """A fake runtime context: records still_working() calls and published side outputs."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.alive = 0
        self.published: list[tuple[TopicKey, bytes, bytes, list[tuple[str, bytes]]]] = []
        self.sources: list[SinkRecord | None] = []  # the input record each side output is owed to

    def still_working(self) -> None:
        self.alive += 1

    async def publish(
        self,
        topic: TopicKey,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        *,
        source: SinkRecord | None = None,
    ) -> None:
        self.published.append((topic, key, value, headers))
        self.sources.append(source)

    def context(self) -> SinkContext:
        return SinkContext(self.stopping, self.still_working, self.publish, metrics=instruments())


def decoded(sink: Sink, name: str, key: bytes | None, value: bytes | None, headers: Any = ()) -> SinkRecord:
    """A record decoded the way the runtime does it, by the sink's own input spec."""
    spec = next(i for i in sink.inputs() if i.name == name)
    return SinkRecord(name, key, spec.decode(dict(headers), key, value))


# --- PostgreSQL: a fake pool, store.write_history replaced ------------------------------------------------
class FakePool:
    def __init__(self) -> None:
        self.closed = False

    @asynccontextmanager
    async def _conn(self) -> Any:
        class Conn:
            @asynccontextmanager
            async def _tx(self) -> Any:
                yield

            def transaction(self) -> Any:
                return self._tx()

        yield Conn()

    def acquire(self, timeout: float = 0) -> Any:
        return self._conn()

    async def close(self) -> None:
        self.closed = True


async def test_postgres_sink_writes_retries_while_the_database_is_down_and_rejects_refused_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[list[Any], list[Any]]] = []
    outage = [OSError("connection refused"), ConnectionResetError("reset")]

    async def write_history(
        conn: Any, results: Sequence[Any], violations: Sequence[Any], **_: Any
    ) -> tuple[int, int]:
        calls.append((list(results), list(violations)))
        if outage:
            raise outage.pop(0)
        if any(v.data.asset == "refused" for v in violations):
            raise asyncpg.exceptions.CheckViolationError("new row violates check constraint")
        return len(results), len(violations)

    monkeypatch.setattr(store, "write_history", write_history)
    monkeypatch.setattr("floe_stream.runtime.framework.sink_runtime.BACKOFF_START_S", 0.0)
    s = Settings()
    s = s.model_copy(update={"history": s.history.model_copy(update={"register_contracts": False})})
    sink = PostgresSink(s, pool=FakePool())  # type: ignore[arg-type]
    ctx = Ctx()
    await sink.start(ctx.context())
    assert [i.topic for i in sink.inputs()][:2] == [TopicKey.CHECK_RESULTS, TopicKey.VIOLATIONS]
    with pytest.raises(DecodeError, match="empty message"):
        decoded(sink, "results", b"k", b"")  # the runtime dead-letters it
    key, value, headers = encode_violation(violation(1))
    ok = decoded(sink, "violations", key, value, headers)
    states: list[bool] = []
    real = sink._set_degraded

    def spy(degraded: bool) -> None:
        states.append(degraded)
        real(degraded)

    sink._set_degraded = spy  # type: ignore[method-assign]

    batch = SinkBatch([ok])
    await sink.write(batch)
    await sink.flush()
    assert len(calls) == 3 and states == [True, True, False]  # two transient failures, then written
    assert ctx.alive == 2 and sink.degraded is False  # alive while retrying, ready again after
    assert sink.rows_written == 1 and batch.rejected == []

    bad = decoded(
        sink, "violations", *encode_violation(violation(2).model_copy(update={"asset": "refused"}))[:2]
    )
    batch = SinkBatch([ok, bad])
    await sink.write(batch)  # refused as a batch: record by record, only the refused one is rejected
    assert [(r is bad, reason) for r, reason, _ in batch.rejected] == [
        (True, "CheckViolationError: new row violates check constraint")
    ]
    assert sink.degraded is False
    await sink.close()
    assert sink.pool.closed is False  # type: ignore[union-attr] # not its own pool: the caller closes it


async def test_postgres_sink_stopping_during_an_outage_leaves_the_batch_uncommitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def down(*_: Any, **__: Any) -> tuple[int, int]:
        raise OSError("connection refused")

    monkeypatch.setattr(store, "write_history", down)
    s = Settings()
    s = s.model_copy(update={"history": s.history.model_copy(update={"register_contracts": False})})
    sink = PostgresSink(s, pool=FakePool())  # type: ignore[arg-type]
    ctx = Ctx()
    await sink.start(ctx.context())
    ctx.stopping.set()
    key, value, headers = encode_violation(violation(1))
    with pytest.raises(OSError, match="connection refused"):
        await sink.write(SinkBatch([decoded(sink, "violations", key, value, headers)]))
    assert sink.degraded is True and (await sink.readiness())["database"] is False
    assert sink.rows_written == 0


# --- alerts: a fake store and dispatcher ---------------------------------------------------------------
class FakeStore:
    """Every alert was decided before (to the channel 'hook'): the decisions keep that."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail = fail_first
        self.seen: list[str] = []
        self.saved: list[Decisions] = []

    @asynccontextmanager
    async def locked(self, contract_ids: Any) -> AsyncIterator[FakeStore]:
        if self.fail:
            self.fail -= 1
            raise OSError("database restarting")
        yield self

    async def load(self, alerts: list[Any], **_: Any) -> AlertState:
        self.seen += [a.violation_id for a in alerts]
        decided = {
            a.violation_id: Decision(event_id=a.violation_id, notify=True, channels=("hook",)) for a in alerts
        }
        return AlertState(decided=decided)

    async def save(self, decisions: Decisions, **_: Any) -> None:
        self.saved.append(decisions)


class FakeDispatcher:
    def __init__(self, stop: bool = False) -> None:
        self.stop = stop
        self.sent: list[Any] = []

    async def deliver_all(self, notes: list[Any]) -> list[Outcome]:
        if self.stop:
            raise StopDelivery("shutdown")
        self.sent += notes
        return [Outcome(n.notification_id, n.channel, "delivered", 1) for n in notes]


async def test_alerts_sink_dedups_decides_delivers_and_reports_no_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("floe_stream.runtime.framework.sink_runtime.BACKOFF_START_S", 0.0)
    sink = AlertSink(Settings(), AlertsConfig())
    details = sink.health_details()["alerts"]
    assert details == {"routes": 0, "channels": [], "delivering": False, "reason": NO_ROUTES}
    assert sink.collect_s == AlertsConfig().policy.group_wait_s and sink.outputs == (TopicKey.ALERTS_DLQ,)
    with pytest.raises(DecodeError, match="empty message"):
        decoded(sink, "violations", b"k", None)
    ctx = Ctx()
    sink.ctx = ctx.context()
    store, dispatcher = FakeStore(fail_first=1), FakeDispatcher()
    sink.store, sink.dispatcher = store, dispatcher  # type: ignore[assignment]
    key, value, headers = encode_violation(violation(1))
    rec = decoded(sink, "violations", key, value, headers)
    await sink.write(SinkBatch([rec, rec]))  # a replaying processor re-emits the same event id
    assert len(store.seen) == 1 and ctx.alive == 1  # retried once past the database outage, deduplicated
    assert sink.alerts_seen == 2 and sink.delivered == len(dispatcher.sent) == 1

    sink.dispatcher = FakeDispatcher(stop=True)  # type: ignore[assignment]
    with pytest.raises(NotCommitted):  # the runtime does not commit; the batch replays
        await sink.write(SinkBatch([rec]))
    await sink.close()


async def test_alerts_dead_letters_go_out_through_the_context_not_kafka() -> None:
    from floe_stream.sinks.alerts.model import Notification

    sink = AlertSink(Settings(), AlertsConfig())
    ctx = Ctx()
    sink.ctx = ctx.context()
    key, value, headers = encode_violation(violation(1))
    alert = decoded(sink, "violations", key, value, headers).value
    n = Notification(channel="hook", status="firing", group_key="g", alerts=(alert,))
    await dead_letter(sink.ctx, n, "HTTP 500 after 3 attempts", 3)
    [(topic, k, _v, hdrs)] = ctx.published
    assert topic == TopicKey.ALERTS_DLQ and k == b"hook"
    assert dict(hdrs) == {"floe-dlq-reason": b"HTTP 500 after 3 attempts", "floe-dlq-channel": b"hook"}
    await sink.close()


# --- OpenLineage: a fake transport ---------------------------------------------------------------------
class FakeTransport:
    name = "fake"

    def __init__(self, outages: int = 0, reject: str | None = None) -> None:
        self.outages = outages
        self.reject = reject
        self.sent: list[str] = []
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def emit(self, events: Sequence[Any]) -> None:
        if self.outages:
            self.outages -= 1
            raise TransportError("connection refused", permanent=False)
        for i, ev in enumerate(events):
            if self.reject and self.reject in ev["job"]["name"]:
                raise TransportError("HTTP 422", permanent=True, delivered=i)
            self.sent.append(ev["run"]["runId"])


async def test_openlineage_sink_retries_an_outage_and_rejects_only_the_refused_event() -> None:
    t = FakeTransport(outages=2, reject="schema_drift")
    sink = OpenLineageSink(Settings(openlineage=OpenLineageSettings(retry_backoff_s=0.001)), transport=t)
    ctx = Ctx()
    await sink.start(ctx.context())
    assert t.started
    recs = [
        decoded(sink, "violations", *encode_violation(violation(2).model_copy(update={"violation_type": CheckType.SCHEMA_DRIFT}))),
        decoded(sink, "violations", *encode_violation(violation(1))),
    ]  # fmt: skip
    batch = SinkBatch(recs)
    await sink.write(batch)
    await sink.flush()
    assert ctx.alive == 2 and sink.degraded is False and (await sink.readiness()) == {"transport": True}
    assert len(t.sent) == 1 and sink.emitted == 1 and sink.dead == 1
    assert [(r is recs[0], reason, metric) for r, reason, metric in batch.rejected] == [
        (True, "HTTP 422", "openlineage rejected")
    ]
    await sink.close()
    assert t.closed


async def test_openlineage_sink_stopping_during_an_outage_raises_so_nothing_is_committed() -> None:
    t = FakeTransport(outages=100)
    sink = OpenLineageSink(Settings(openlineage=OpenLineageSettings(retry_backoff_s=0.001)), transport=t)
    ctx = Ctx()
    await sink.start(ctx.context())
    ctx.stopping.set()
    with pytest.raises(TransportError):
        await sink.write(SinkBatch([decoded(sink, "violations", *encode_violation(violation(1)))]))
    assert sink.degraded is True and (await sink.readiness()) == {"transport": False}


# --- the one runtime, with a fake sink -------------------------------------------------------------------
class FakeSink:
    name = "sink-fake"
    record_spans = False
    collect_s = 0.0
    outputs: tuple[TopicKey, ...] = ()

    def __init__(self) -> None:
        self.log: list[str] = []

    def inputs(self) -> list[Input]:
        def decode(headers: dict[str, bytes], key: bytes | None, value: bytes | None) -> str:
            if not value:
                raise DecodeError("empty message")
            return value.decode()

        return [Input("results", TopicKey.CHECK_RESULTS, decode, context="bad result")]

    async def start(self, ctx: SinkContext) -> None: ...

    async def write(self, batch: SinkBatch) -> None:
        self.log.append("write " + ",".join(r.value for r in batch.records))
        for r in batch.records:
            if r.value == "refuse":
                batch.reject(r, "refused by the destination", "refused")

    async def flush(self) -> None:
        self.log.append("flush")

    async def close(self) -> None: ...

    async def readiness(self) -> dict[str, bool]:
        return {"destination": True}

    def health_details(self) -> dict[str, Any]:
        return {"fake": {"delivering": True}}

    def stall_allowance_s(self) -> float:
        return 1.5


async def test_runner_decodes_writes_flushes_then_dead_letters_with_reasons() -> None:
    s = Settings()
    fake = FakeSink()
    runner = SinkRunner(s, fake, instruments())
    topic = topic_name(s.kafka.topic_prefix, TopicKey.CHECK_RESULTS)
    assert runner.topics == [topic] and runner.group_id == f"{s.kafka.group_prefix}-sink-fake"
    produced: list[OutRecord] = []

    async def produce(records: Sequence[OutRecord]) -> None:
        fake.log.append("dead letters")
        produced.extend(records)

    runner.produce = produce  # type: ignore[method-assign]
    tp = TopicPartition(topic, 0)
    recs = [
        ConsumerRecord(topic, 0, off, 0, 0, b"k", val, None, 1, 1, [])
        for off, val in enumerate([b"a", b"", b"refuse", b"b"])
    ]
    await runner.handle({tp: recs})
    assert fake.log == [
        "write a,refuse,b",
        "flush",
        "dead letters",
    ]  # dead letters after the effect, before commit
    reasons = [(dict(r.headers)["floe-dlq-offset"], dict(r.headers)["floe-dlq-reason"]) for r in produced]
    assert reasons == [(b"1", b"bad result: empty message"), (b"2", b"refused by the destination")]
    assert runner.records_dead_lettered == 2
    assert runner.health_details() == {"fake": {"delivering": True}}
    assert runner.stall_bound_s() > s.health_stall_s + 1.5
    checks = await runner.readiness()
    assert checks["destination"] is True and checks["kafka"] is False  # not started: not ready
    await runner.consumer.stop()
    assert runner.producer is not None
    await runner.producer.stop()  # made by the runner, never started: closed all the same (no "Unclosed")


async def test_openlineage_sink_dead_letters_after_max_retries_through_the_one_retry() -> None:
    t = FakeTransport(outages=5)
    cfg = OpenLineageSettings(retry_backoff_s=0.001, max_retries=1)
    sink = OpenLineageSink(Settings(openlineage=cfg), transport=t)
    ctx = Ctx()
    await sink.start(ctx.context())
    batch = SinkBatch([decoded(sink, "violations", *encode_violation(violation(1)))])
    await sink.write(batch)  # one retry, then the record goes to the dead-letter topic; the batch commits
    assert t.outages == 3 and t.sent == [] and ctx.alive == 2
    assert [reason for _, reason, _ in batch.rejected] == ["connection refused"]


class PausableConsumer:
    """aiokafka's pause/resume/paused/assignment/getmany/seek in memory: a poll returns the waiting records of
    the partitions not paused (a real consumer's prefetched records of a paused partition are dropped)."""

    def __init__(self, tps: set[TopicPartition]) -> None:
        self.tps = set(tps)
        self.paused_tps: set[TopicPartition] = set()
        self.waiting: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        self.polls = 0
        self.returned: list[ConsumerRecord[bytes, bytes]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.tps)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_tps.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps.difference_update(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        raise AssertionError("nothing to seek back: every assigned partition is paused before each poll")

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        self.polls += 1
        out = {tp: recs for tp, recs in self.waiting.items() if tp not in self.paused_tps}
        for tp in out:
            del self.waiting[tp]
        self.returned.extend(r for recs in out.values() for r in recs)
        await asyncio.sleep(timeout_ms / 1000)
        return out


class DownSink(FakeSink):
    """Its destination refuses writes (transient) until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = asyncio.Event()
        self.ctx: SinkContext | None = None

    async def start(self, ctx: SinkContext) -> None:
        self.ctx = ctx

    async def write(self, batch: SinkBatch) -> None:
        async def attempt() -> None:
            if not self.up.is_set():
                raise ConnectionRefusedError("destination down")
            self.log.append("write " + ",".join(r.value for r in batch.records))

        assert self.ctx is not None
        await self.ctx.retry(attempt, "destination")


async def test_runner_pauses_its_partitions_and_keeps_polling_while_the_destination_is_down(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from floe_stream.runtime.framework import service, sink_runtime

    caplog.set_level(logging.INFO, logger=service.__name__)
    monkeypatch.setattr(service, "KEEPALIVE_POLL_MS", 5)
    monkeypatch.setattr(sink_runtime, "BACKOFF_START_S", 0.01)
    monkeypatch.setattr(sink_runtime, "BACKOFF_MAX_S", 0.02)
    s = Settings()
    sink = DownSink()
    runner = SinkRunner(s, sink, instruments())
    await sink.start(runner.context())
    topic = topic_name(s.kafka.topic_prefix, TopicKey.CHECK_RESULTS)
    tp0, tp1, tp2 = (TopicPartition(topic, p) for p in range(3))
    real, fake = runner.consumer, PausableConsumer({tp0, tp1})
    runner.consumer = fake  # type: ignore[assignment]
    rec = ConsumerRecord(topic, 0, 7, 0, 0, b"k", b"a", None, 1, 1, [])
    handling = asyncio.create_task(runner.handle({tp0: [rec]}))

    await asyncio.wait_for(_until(lambda: fake.polls >= 3), 5)  # the member keeps polling
    assert fake.paused() == {tp0, tp1} and runner.health_details()["paused_partitions"] == 2
    assert runner.paused_observations() == [({"group": runner.group_id}, 2.0)]
    fake.tps.add(tp2)  # assigned meanwhile, with a record waiting: paused before the next poll, not fetched
    fake.waiting[tp2] = [ConsumerRecord(topic, 2, 0, 0, 0, b"k", b"b", None, 1, 1, [])]
    polls = fake.polls
    await asyncio.wait_for(_until(lambda: fake.polls >= polls + 2), 5)
    assert fake.returned == [] and fake.paused() == {tp0, tp1, tp2}
    assert not handling.done()  # the batch in hand waits

    sink.up.set()  # the destination is back: written once, resumed, the keepalive stopped
    await asyncio.wait_for(handling, 5)
    assert sink.log == ["write a", "flush"]
    assert fake.paused() == set() and "paused_partitions" not in runner.health_details()
    polls = fake.polls
    await asyncio.sleep(0.05)
    assert fake.polls == polls
    lines = [r.getMessage() for r in caplog.records if "partitions" in r.getMessage()]
    assert len(lines) == 2 and "2 partitions paused" in lines[0] and "3 partitions resumed" in lines[1]

    sink.up.clear()  # down again, then the service stops: the batch is not written, the partitions resumed
    handling = asyncio.create_task(runner.handle({tp0: [rec]}))
    await asyncio.wait_for(_until(lambda: bool(runner.paused)), 5)
    runner.request_stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(handling, 5)
    assert fake.paused() == set() and not runner.paused and sink.log == ["write a", "flush"]
    await real.stop()
    assert runner.producer is not None
    await runner.producer.stop()


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


async def test_under_exactly_once_a_send_waits_for_the_transaction_being_committed() -> None:
    """The commit of a batch runs behind the next one: a dead letter the next batch sends in the meantime must
    go into the next transaction, not the one being committed with offsets that do not cover its input (a kill
    before the next commit would replay that input and dead-letter it a second time)."""
    from floe_stream.runtime.framework import sink_runtime

    s = Settings().model_copy(
        update={"kafka": Settings().kafka.model_copy(update={"processing_guarantee": "exactly_once"})}
    )
    runner = SinkRunner(s, FakeSink(), instruments())
    order: list[str] = []
    committing = asyncio.Event()
    release = asyncio.Event()

    class Txns:
        async def send(self, partition: int, records: Sequence[OutRecord]) -> None:
            order.append("send")

        async def commit(self, offsets: object, records: object) -> None:
            order.append("commit begins")
            committing.set()
            await release.wait()
            order.append("commit ends")

    runner.txns = Txns()  # type: ignore[assignment]
    runner.partitions[runner.t_dlq] = 1
    tp = TopicPartition(runner.topics[0], 0)
    commit = asyncio.create_task(runner.commit_offsets({tp: 10}))
    await committing.wait()
    token = sink_runtime._IN_BATCH.set(True)  # the next batch, handled while the commit runs
    runner._batch_partitions = [0]
    try:
        send = asyncio.create_task(runner._publish(TopicKey.DLQ, b"k", b"v", []))
    finally:
        sink_runtime._IN_BATCH.reset(token)
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["commit begins"]  # the send waits
    release.set()
    await asyncio.gather(commit, send)
    assert order == ["commit begins", "commit ends", "send"]
    await runner.consumer.stop()
    assert runner.producer is not None
    await runner.producer.stop()  # made by the runner, never started: closed all the same (no "Unclosed")
