"""runtime/framework/supervision.py: which ends of a background task count as a death, and where it is reported."""

from __future__ import annotations

import asyncio
import logging

import pytest

from floe_stream.runtime.framework.supervision import _observations, cancel_all, dead_tasks, supervise


async def test_an_exception_is_a_death_logged_once_cancellation_and_return_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom() -> None:
        await asyncio.sleep(0)
        raise KeyError("x")

    async def done() -> int:
        return 1

    async def forever() -> None:
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="floe_stream.runtime.framework.supervision"):
        tasks = [supervise(boom(), "boom"), supervise(done(), "done"), supervise(forever(), "forever")]
        await asyncio.wait(tasks[:2])
        await asyncio.sleep(0)  # done callbacks
        assert dead_tasks() == {"boom": "KeyError: 'x'"}
        up = {o.attributes["task"]: o.value for o in _observations() if o.attributes}
        assert up["boom"] == 0.0 and up["forever"] == 1.0 and "done" not in up
        tasks[2].cancel()
        await asyncio.gather(tasks[2], return_exceptions=True)
        await asyncio.sleep(0)
        assert dead_tasks() == {"boom": "KeyError: 'x'"}  # a cancelled task (shutdown) is no death
    lines = [r for r in caplog.records if "background task boom died" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is not None


def test_each_event_loop_has_its_own_registry() -> None:
    """One deployable = one loop; in-process tests (a loop each) never see another's dead task."""

    async def boom() -> None:
        raise KeyError("x")

    async def with_a_death() -> dict[str, str]:
        task = supervise(boom(), "boom")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        return dead_tasks()

    async def fresh() -> dict[str, str]:
        return dead_tasks()

    assert asyncio.run(with_a_death()) == {"boom": "KeyError: 'x'"}
    assert asyncio.run(fresh()) == {}


async def test_cancel_all_ends_every_task_and_raises_none_of_their_ends() -> None:
    """Shutdown: the running tasks are cancelled and awaited; one that died already does not stop the others'
    ending (its death was reported when it happened)."""
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def boom() -> None:
        raise KeyError("x")

    tasks = [supervise(boom(), "boom"), supervise(forever(), "a"), supervise(forever(), "b")]
    await started.wait()
    await cancel_all(tasks)
    assert all(t.done() for t in tasks)
    assert [t.cancelled() for t in tasks] == [False, True, True]
