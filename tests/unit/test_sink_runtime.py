"""The sink runtime's one transient-error classification, retry with backoff and dead-letter format."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord

from floe_stream.runtime.framework import sink_runtime
from floe_stream.runtime.framework.sink_runtime import DeadLetters, is_transient, reason_of, retry_transient
from floe_stream.sinks.openlineage.transport import TransportError
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics.decode import DecodeError


def test_one_classification_for_every_destination() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert is_transient(asyncpg.exceptions.CannotConnectNowError())
    assert is_transient(asyncpg.exceptions.DeadlockDetectedError())
    assert is_transient(TransportError("503", permanent=False))
    assert not is_transient(TransportError("400", permanent=True))
    assert not is_transient(asyncpg.exceptions.CharacterNotInRepertoireError())
    assert not is_transient(ValueError("bad record"))


async def test_retry_until_the_destination_is_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_runtime, "BACKOFF_START_S", 0.001)
    calls, states = [], []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("down")
        return "written"

    out = await retry_transient(flaky, stopping=asyncio.Event(), what="database", on_state=states.append)
    assert out == "written" and len(calls) == 3
    assert states == [True, True, False]  # degraded while down, healthy once written


async def test_a_permanent_error_is_not_retried() -> None:
    calls = []

    async def refused() -> None:
        calls.append(1)
        raise ValueError("the record's fault")

    with pytest.raises(ValueError, match="fault"):
        await retry_transient(refused, stopping=asyncio.Event(), what="database")
    assert len(calls) == 1


async def test_stopping_during_an_outage_leaves_the_batch_uncommitted() -> None:
    stopping = asyncio.Event()
    stopping.set()

    async def down() -> None:
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        await retry_transient(down, stopping=stopping, what="database")


def test_one_reason_format_with_origin_headers() -> None:
    rec = ConsumerRecord("t.violations", 3, 42, 0, 0, b"k", b"\xff", None, 1, 1, [("traceparent", b"x")])
    dead = DeadLetters("t.dlq", partitions=2, metrics=instruments())
    dead.add_exc(rec, DecodeError("empty message"))
    dead.add_exc(rec, ValueError("x" * 900), "undecodable violation event")
    assert reason_of(KeyError("a")) == "KeyError: 'a'"
    first, second = dead.take()
    assert dead.records == []
    h1, h2 = dict(first.headers), dict(second.headers)
    assert h1["floe-dlq-reason"] == b"empty message"
    assert h2["floe-dlq-reason"].startswith(b"undecodable violation event: ValueError: xxx")
    assert len(h2["floe-dlq-reason"]) == 500
    assert (h1["floe-dlq-topic"], h1["floe-dlq-partition"], h1["floe-dlq-offset"]) == (
        b"t.violations",
        b"3",
        b"42",
    )
    assert (
        h1["traceparent"] == b"x"
        and first.topic == "t.dlq"
        and first.partition == 1
        and first.value == b"\xff"
    )
