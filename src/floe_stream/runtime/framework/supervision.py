"""Background tasks that cannot die unnoticed.

A deployable runs side jobs next to its consume loop: the contracts tail and contracts-directory scan (the
processor, the alerts and OpenLineage sinks), the processor's probe publisher and lineage view reader, the alerts
sink's resend loop. Nobody awaits them until shutdown, so an unexpected exception in one would end it silently:
the processor would stop registering contracts while ``/healthz`` still said 200. :func:`supervise` starts such a task; when it ends with an exception (a bug, a
record nobody expected) the failure is logged once with its traceback, the gauge
``floe_background_task_up{task}`` turns 0 and ``/healthz`` fails (``"background_tasks": false``, the dead
tasks named in ``details``), so the orchestrator restarts the process. Cancellation (shutdown) and a normal
return are not failures. :func:`cancel_all` ends such tasks at shutdown.

The registry is per event loop: one deployable = one loop; tests that run services in-process each get theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

log = logging.getLogger(__name__)
T = TypeVar("T")

TASK_UP_METRIC = "floe_background_task_up"


class _Registry:
    def __init__(self) -> None:
        self.running: dict[asyncio.Task[Any], str] = {}
        self.dead: dict[str, str] = {}  # task name → "ExceptionType: message"


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = weakref.WeakKeyDictionary()
_gauge: Any = None


def _registry(loop: asyncio.AbstractEventLoop | None = None) -> _Registry:
    loop = loop or asyncio.get_running_loop()
    reg = _registries.get(loop)
    if reg is None:
        reg = _registries[loop] = _Registry()
    return reg


def supervise(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """``asyncio.create_task(coro, name=name)``, watched: see the module's docstring."""
    _ensure_gauge()
    task = asyncio.create_task(coro, name=name)
    reg = _registry()
    reg.running[task] = name
    task.add_done_callback(lambda t: _ended(reg, t))
    return task


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Shutdown: cancel every task first, then wait for each to end. What a task ends with (cancelled, or an
    exception, which :func:`supervise` has reported already) is not raised here."""
    ending = list(tasks)
    for t in ending:
        t.cancel()
    for t in ending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


def _ended(reg: _Registry, task: asyncio.Task[Any]) -> None:
    name = reg.running.pop(task, task.get_name())
    if task.cancelled():
        return
    exc = task.exception()  # retrieved: asyncio's "exception was never retrieved" stays silent
    if exc is None:
        return
    reg.dead[name] = f"{type(exc).__name__}: {exc}"
    log.error(
        "background task %s died: %s: %s (/healthz now fails: the process needs a restart)",
        name,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )


def dead_tasks(loop: asyncio.AbstractEventLoop | None = None) -> dict[str, str]:
    """The supervised tasks of this loop that ended with an exception: name → the exception, one line."""
    reg = _registries.get(loop or asyncio.get_running_loop())
    return dict(reg.dead) if reg is not None else {}


def _observations() -> Iterable[Observation]:
    for reg in list(_registries.values()):
        for name in sorted(set(reg.running.values()) - set(reg.dead)):
            yield Observation(1.0, {"task": name})
        for name in sorted(reg.dead):
            yield Observation(0.0, {"task": name})


def _callback(_: CallbackOptions) -> Iterable[Observation]:
    return list(_observations())


def _ensure_gauge() -> None:
    global _gauge
    if _gauge is None:
        _gauge = metrics.get_meter("floe_stream").create_observable_gauge(
            TASK_UP_METRIC,
            callbacks=[_callback],
            description="1 while a supervised background task runs, 0 once it died of an exception "
            "(/healthz fails then), by task",
        )
