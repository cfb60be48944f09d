"""What every sink shares: one classification of transient errors, one retry with backoff, one dead-letter format.

A transient error (the destination is down or busy: connection refused/reset, timeouts, PostgreSQL restarting,
serialization conflicts, deadlocks) is retried with exponential backoff while the batch's offsets stay
uncommitted; anything else is the record's fault and goes to the dead-letter topic with a reason. The reason
format is the same in every sink: ``<context>: <ExceptionType>: <message>`` (a :class:`DecodeError` carries its
own reason), at most 500 characters, plus the origin headers of :func:`floe_stream.runtime.kafka.dead_letter`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from aiokafka.structs import ConsumerRecord

from floe_stream.runtime.kafka import OutRecord, dead_letter
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics.decode import DecodeError

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)
"""The one list of "the destination is unavailable, try again" errors (sinks used to keep three differing copies)."""

BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 5.0
REASON_MAX = 500


def is_transient(exc: BaseException) -> bool:
    """True when retrying later can succeed. A destination error type may say so itself with ``permanent``."""
    permanent = getattr(exc, "permanent", None)
    if isinstance(permanent, bool):
        return not permanent
    return isinstance(exc, TRANSIENT_ERRORS)


async def retry_transient(
    fn: Callable[[], Awaitable[T]],
    *,
    stopping: asyncio.Event,
    what: str,
    on_state: Callable[[bool], None] | None = None,
) -> T:
    """Run ``fn`` until it succeeds; transient errors are retried with backoff (offsets stay put), anything else
    propagates. While stopping, a transient error propagates too: the next owner replays the batch.
    ``on_state(True)`` marks the destination degraded (readiness), ``on_state(False)`` healthy again."""
    delay = BACKOFF_START_S
    while True:
        try:
            out = await fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if on_state is not None:
                on_state(True)
            if stopping.is_set():
                raise
            log.warning("%s unavailable, retrying in %.1fs (offsets not committed): %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
            continue
        if on_state is not None:
            on_state(False)
        return out


def reason_of(exc: BaseException, context: str = "") -> str:
    """The dead-letter reason of an exception, in the one format every sink uses."""
    base = exc.reason if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
    return f"{context}: {base}" if context else base


class DeadLetters:
    """Records to dead-letter after a batch: the original bytes with the reason, one metric, one log line each."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self.records: list[OutRecord] = []

    def add(self, rec: ConsumerRecord[bytes, bytes], reason: str, metric_reason: str) -> None:
        self.records.append(dead_letter(self.topic, rec, reason[:REASON_MAX], self.partitions))
        instruments().dead_lettered.add(1, {"topic": rec.topic, "reason": metric_reason})
        log.warning("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason[:200])

    def add_exc(self, rec: ConsumerRecord[bytes, bytes], exc: BaseException, context: str = "") -> None:
        self.add(rec, reason_of(exc, context), type(exc).__name__)

    def take(self) -> list[OutRecord]:
        out, self.records = self.records, []
        return out
