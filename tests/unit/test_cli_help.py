"""Every ``floe … --help`` ends with examples that use only flags the command has; flag names are consistent."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from floe_stream.cli.main import main


def commands(
    cmd: click.Command = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from commands(sub, (*path, name))


ALL = list(commands())


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(("floe", *p)) for p, _ in ALL])
def test_every_help_has_examples_using_real_flags(path: tuple[str, ...], cmd: click.Command) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    _, sep, examples = result.output.partition("Examples:")
    assert sep, f"floe {' '.join(path)} --help has no examples"
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    assert lines
    for line in lines:
        words = [w for w in shlex.split(line) if "=" not in w or w.startswith("-")]
        words = words[words.index("floe") :] if "floe" in words else words
        assert words[: len(path) + 1] == ["floe", *path] or isinstance(cmd, click.Group), line
        if isinstance(cmd, click.Group):
            continue
        known = {o for p in cmd.params for o in (*getattr(p, "opts", []), *getattr(p, "secondary_opts", []))}
        flags = [w.split("=")[0] for w in words if w.startswith("--") or (w.startswith("-") and len(w) == 2)]
        unknown = [f for f in flags if f not in known and f != "-"]
        assert unknown == [], f"{line}: {unknown} are not flags of floe {' '.join(path)}"


def test_flag_names_mean_the_same_everywhere() -> None:
    """--by is the bucket of a series (sla report); who created a silence is --created-by. --output/-o writes."""
    meaning: dict[str, set[str]] = {}
    for _, cmd in ALL:
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                for o in p.opts:
                    meaning.setdefault(o, set()).add(str(p.name))
    assert meaning["--by"] == {"by"}
    assert meaning["--output"] == {"output", "out"}  # same flag; `out` is the parameter name in topics
    assert meaning["--created-by"] == {"created_by"}
    for _path, cmd in ALL:  # --out survives only as the old name of --output
        for p in cmd.params:
            if "--out" in getattr(p, "opts", []):
                assert "--output" in p.opts and "-o" in p.opts
