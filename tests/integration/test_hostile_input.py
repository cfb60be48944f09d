"""Hostile or unlucky input never stops a deployable, never silences another asset (issue 20).

One test per finding, each against the public interfaces: the record is published to the real broker, the
deployable is the one ``floe run <kind>`` builds (``runtime.app.build``), and the test observes what an operator
would: the deployable still running, the record dead-lettered (or refused) with its reason, and the other assets
still monitored. Findings that depend on a broker's limits run on Apache Kafka.

Shared helpers first; each section below is one slice of the issue (input records: bounds at decode, bounded
findings and state, time and sequence; contracts and probes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from floe_stream.runtime.app import Runnable, build
from floe_stream.runtime.embedded import Broker
from floe_stream.runtime.kafka import ensure_topics
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey
from tests.conftest import REPO, make_settings, wait_for
from tests.integration.helpers import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONTRACTS = (
    REPO / "tests" / "fixtures" / "contracts"
)  # test.fast (SLA 2 s, columns id/amount/updated_at), test.slow


async def hostile_settings(
    broker: Broker, pg_dsn: str, contracts: Path = CONTRACTS, **update: Any
) -> Settings:
    """Settings for one test on ``broker``: its own topics (created), a fresh database, ``contracts``."""
    s = make_settings(broker, pg_dsn).model_copy(update={"contracts_dir": contracts, **update})
    await ensure_topics(s.kafka)
    return s


@dataclass
class Deployed:
    """A deployable built as ``floe run <kind>`` builds it, running as a task."""

    kind: str
    service: Any
    task: asyncio.Task[None]

    @property
    def running(self) -> bool:
        """Still running (a deployable that met an exception it did not contain has returned or raised)."""
        return not self.task.done()

    def failure(self) -> BaseException | None:
        return self.task.exception() if self.task.done() and not self.task.cancelled() else None


@contextlib.asynccontextmanager
async def deployed(kind: str, settings: Settings) -> AsyncIterator[Deployed]:
    """Run ``build(kind, settings)`` until the block ends; it is assigned its partitions before the block runs.
    A deployable that stopped on its own is reported by the test's own assertions, not hidden here."""
    service: Runnable = build(kind, settings)
    task = asyncio.create_task(service.run(), name=kind)
    d = Deployed(kind, service, task)
    try:
        await wait_for(lambda: getattr(service, "ever_assigned", True) or task.done(), timeout=60)
        yield d
    finally:
        service.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), 30)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    topic: str
    value: bytes


async def dead_letters(settings: Settings) -> list[DeadLetter]:
    """Every record of the ``dlq`` topic, with its reason and origin topic."""
    out = []
    for rec in await read_all(settings, TopicKey.DLQ):
        h = dict(rec.headers)
        out.append(
            DeadLetter(h["floe-dlq-reason"].decode(), h.get("floe-dlq-topic", b"").decode(), rec.value or b"")
        )
    return out


async def records_of(
    settings: Settings, key: TopicKey, where: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The JSON values of a topic's records that satisfy ``where`` (check results, violations …)."""
    out = []
    for rec in await read_all(settings, key):
        if rec.value:
            obj = orjson.loads(rec.value)
            if where(obj):
                out.append(obj)
    return out


def largest(recs: list[ConsumerRecord[bytes, bytes]]) -> int:
    return max((len(r.value or b"") for r in recs), default=0)
