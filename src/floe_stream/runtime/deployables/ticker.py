"""The ticker deployable: one tick per partition of the ticks topic at every interval boundary.

Tick times are aligned to the interval (floor(now / interval) * interval), so any number of tickers
publish the same tick times and the processor applies each tick time once per partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import UTC, datetime

from floe_stream.runtime.framework.health import start_health
from floe_stream.runtime.framework.kafka import (
    BatchProducer,
    OutRecord,
    make_producer,
    partition_counts,
    start_producer,
)
from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.tick import Tick

log = logging.getLogger(__name__)


def aligned(now_s: float, interval_s: float) -> float:
    return math.floor(now_s / interval_s) * interval_s


class Ticker:
    name = "ticker"

    def __init__(self, settings: Settings, ticker_id: str | None = None) -> None:
        import socket

        self.settings = settings
        self.interval = settings.tick_interval_s
        self.topic = topic_name(settings.kafka.topic_prefix, TopicKey.TICKS)
        self.ticker_id = ticker_id or socket.gethostname()
        self._stop = asyncio.Event()
        self.ticks_sent = 0
        self.last_tick: datetime | None = None

    def request_stop(self) -> None:
        self._stop.set()

    async def _readiness(self) -> dict[str, bool]:
        return {"ticking": self.last_tick is not None}

    async def _liveness(self) -> dict[str, bool]:
        late = (
            self.last_tick is not None and time.time() - self.last_tick.timestamp() > 5 * self.interval + 30
        )
        return {"ticking": not late}

    async def run(self) -> None:
        health = await start_health(self.settings, liveness=self._liveness, readiness=self._readiness)
        partitions = (await partition_counts(self.settings.kafka, [self.topic]))[self.topic]
        producer = make_producer(self.settings.kafka, linger_ms=0)
        await start_producer(producer, self.settings.kafka)
        sender = BatchProducer(producer)
        try:
            while not self._stop.is_set():
                t = aligned(time.time(), self.interval)
                tick = Tick(
                    tick_time=datetime.fromtimestamp(t, tz=UTC),
                    interval_s=self.interval,
                    ticker_id=self.ticker_id,
                )
                body = tick.model_dump_json().encode()
                await sender.send_all([OutRecord(self.topic, p, None, body) for p in range(partitions)])
                self.ticks_sent += 1
                self.last_tick = tick.tick_time
                wait = max(0.0, t + self.interval - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait)
        finally:
            await producer.stop()
            if health is not None:
                await health.stop()
