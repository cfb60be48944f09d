"""Click parameter types shared by every command: one duration parser, writable output files."""

from __future__ import annotations

import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from floe_stream.durations import parse_duration


class DurationType(click.ParamType[timedelta, Any]):
    """Any duration: ``90d``, ``2w``, ``36h``, ``4h30m``, ISO 8601 ``PT6H``; with ``bare_seconds`` a plain
    number is seconds too (flags that took seconds before)."""

    name = "DURATION"

    def __init__(self, bare_seconds: bool = False) -> None:
        self.bare_seconds = bare_seconds

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        if self.bare_seconds:
            try:
                seconds = float(text)
            except ValueError:
                pass
            else:
                if not (seconds > 0 and seconds != float("inf")):
                    self.fail(f"{value!r} is not a positive duration", param, ctx)
                return timedelta(seconds=seconds)
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()
DURATION_OR_SECONDS = DurationType(bare_seconds=True)


class FailUnderType(click.ParamType[float | str, Any]):
    """A percentage (0–100), or ``target``: each pair's own target."""

    name = "PCT|target"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        if isinstance(value, float) or value == "target":
            return value  # type: ignore[no-any-return]
        text = str(value).strip().removesuffix("%").strip()
        try:
            pct = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a percentage (e.g. 99, 99.5%) or 'target'", param, ctx)
        if not 0 <= pct <= 100:
            self.fail(f"{value!r} is not between 0 and 100", param, ctx)
        return pct


FAIL_UNDER = FailUnderType()


def writable(path: Path, flag: str = "--output") -> Path:
    """Fail with one line when ``path`` cannot be written (missing folder, a directory, no permission)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise click.BadParameter(f"{path} is a directory; give a file name", param_hint=flag)
    if not parent.is_dir():
        raise click.BadParameter(f"folder {parent} does not exist (create it first)", param_hint=flag)
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.BadParameter(f"{path} is not writable", param_hint=flag)
    return path


def output_width() -> int | None:
    """Columns the text output may use: COLUMNS when set, the terminal's width, else None (pipes and files get the
    full-width layout, nothing cut)."""
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return None
