"""The event loop a deployable runs on (``settings.event_loop``): uvloop where it is installed, else asyncio's.

A processor at 1,000 events/s spends most of its CPU outside the checks: aiokafka's fetch and produce round
trips and the loop's own selector and socket calls (py-spy of bench/processor.py's latency run). uvloop does the
loop's share in C: in alternated 40 s runs of ``bench/processor.py --only latency --seconds 40`` the processor
used ~4 % less CPU and added ~4 ms less at p50 (docs/PERFORMANCE.md)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from floe_stream.settings import ConfigError

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]


def loop_name(choice: EventLoopChoice) -> str:
    """The loop ``choice`` resolves to here: ``uvloop`` or ``asyncio``. ConfigError: uvloop asked, not installed."""
    have = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not have:
        raise ConfigError(
            "event_loop=uvloop but uvloop is not installed (pip install uvloop, or event_loop=auto)"
        )
    return "uvloop" if choice != "asyncio" and have else "asyncio"


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop_name(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(coro: Coroutine[Any, Any, Any], choice: EventLoopChoice) -> Any:
    """``asyncio.run(coro)`` on the chosen loop."""
    try:
        factory = loop_factory(choice)
    except ConfigError:
        coro.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
