"""/healthz can fail: a consumer whose loop is stuck answers 503, and 200 again once it turns (real Tansu broker).

Two ways to be stuck: a handler that awaits something that never comes (the event loop runs, the consume loop does
not: no fetch completes within ``stall_bound_s``), and a handler that blocks the event loop with ``time.sleep``
(the health server answers from its own thread: ``health_loop_lag_s``). /readyz keeps its meaning.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.error
import urllib.request

import pytest

from floe_stream.runtime.framework.kafka import make_producer
from floe_stream.runtime.framework.service import Batch, ConsumerService
from floe_stream.settings import Settings
from floe_stream.topics import TopicKey, topic_name
from tests.conftest import wait_for


def status(port: int, path: str, timeout: float = 10) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def healthz_ok(port: int) -> bool:
    return await asyncio.to_thread(status, port, "/healthz") == 200  # never block the loop the server asks


class Stuck(ConsumerService):
    """Handles records; a record ``hang`` awaits `release`, a record ``sleep`` blocks the loop for 3 s."""

    name = "stuck"

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(settings, [topic], f"{settings.kafka.group_prefix}-stuck", with_producer=False)
        self.release = asyncio.Event()
        self.seen: list[bytes] = []

    async def handle(self, batch: Batch) -> None:
        for recs in batch.values():
            for rec in recs:
                self.seen.append(rec.value or b"")
                if rec.value == b"hang":
                    await self.release.wait()
                elif rec.value == b"sleep":
                    time.sleep(3)  # noqa: ASYNC251 -- the point: a handler that blocks the event loop


@pytest.mark.slow
async def test_healthz_is_503_while_the_consume_loop_is_stuck_and_200_after(settings: Settings) -> None:
    # the stall bound is the margin of the "still alive" answer right after the handler started hanging: a busy
    # machine may take seconds to send it
    cfg = settings.model_copy(update={"health_port": 0, "health_stall_s": 5.0, "health_loop_lag_s": 1.0})
    topic = topic_name(cfg.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    svc = Stuck(cfg, topic)
    assert 5.0 < svc.stall_bound_s() < 5.5  # 200 ms fetch timeout + fetch_max_wait_ms + health_stall_s
    run = asyncio.create_task(svc.run())
    producer = make_producer(cfg.kafka)
    await producer.start()
    try:
        await wait_for(lambda: svc.health is not None and svc.ever_assigned, timeout=30)
        assert svc.health is not None
        port = svc.health.port
        assert await asyncio.to_thread(status, port, "/healthz") == 200
        assert await asyncio.to_thread(status, port, "/readyz") == 200

        # 1. the consume loop awaits forever (the event loop is fine): 503 once no fetch completed for the bound
        await producer.send_and_wait(topic, b"hang", key=b"k")
        await wait_for(lambda: b"hang" in svc.seen, timeout=20)
        assert await asyncio.to_thread(status, port, "/healthz") == 200  # within the bound: still alive
        await asyncio.sleep(svc.stall_bound_s() + 0.3)
        assert await asyncio.to_thread(status, port, "/healthz") == 503
        assert (
            await asyncio.to_thread(status, port, "/readyz") == 200
        )  # readiness is unchanged: still connected
        svc.release.set()
        await wait_for(lambda: healthz_ok(port), timeout=10)

        # 2. the handler blocks the event loop with time.sleep: the health thread answers 503, then 200
        seen: list[int] = []
        done = threading.Event()

        def poll() -> None:
            # a probe that arrives before the lag passed the bound waits for the loop (up to the block's end):
            # give up on it after 0.5 s, like a kubelet's timeoutSeconds, and ask again
            while not done.is_set():
                try:
                    seen.append(status(port, "/healthz", timeout=0.5))
                except (TimeoutError, urllib.error.URLError):
                    seen.append(0)
                time.sleep(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        await producer.send_and_wait(topic, b"sleep", key=b"k")
        await wait_for(lambda: b"sleep" in svc.seen, timeout=20)  # true only after the 3 s block ended
        await wait_for(lambda: healthz_ok(port), timeout=10)
        with contextlib.suppress(AssertionError):  # the poller's own answer after the block (asserted below)
            await wait_for(lambda: 503 in seen and seen[-1] == 200, timeout=10)
        done.set()
        await asyncio.to_thread(poller.join, 15)
        assert 503 in seen, seen
        # 200 again after the block (a poll that gave up after 0.5 s on a busy machine, 0, may follow it)
        last_503 = len(seen) - 1 - seen[::-1].index(503)
        assert 200 in seen[last_503:], seen
    finally:
        await producer.stop()
        svc.request_stop()
        await asyncio.wait_for(run, 30)
