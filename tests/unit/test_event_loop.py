"""`floe run …` runs on uvloop where it is installed (settings.event_loop=auto), on asyncio's loop when asked,
and refuses uvloop asked for but missing with one clear line."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from floe_stream.runtime.framework import event_loop
from floe_stream.settings import ConfigError, Settings


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_when_installed_and_asyncio_when_asked() -> None:
    assert Settings().event_loop == "auto"
    assert importlib.util.find_spec("uvloop") is not None  # a dependency of the package on this platform
    assert event_loop.run(_loop_module(), "auto").startswith("uvloop")
    assert event_loop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_uvloop_asked_but_missing_is_one_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "uvloop" else real(name))
    assert event_loop.loop_name("auto") == "asyncio"  # the default never fails
    coro = _loop_module()
    with pytest.raises(ConfigError, match="event_loop=uvloop but uvloop is not installed"):
        event_loop.run(coro, "uvloop")
    assert coro.cr_frame is None  # closed, not left "never awaited"
