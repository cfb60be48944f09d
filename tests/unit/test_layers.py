"""Layers point down (docs/ARCHITECTURE.md): the bottom packages import nothing from the layers above them.

Walks the AST of every module (function-level and ``TYPE_CHECKING`` imports included), so an upward import
fails here before it becomes a cycle or a hidden dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import floe_stream

ROOT = Path(floe_stream.__file__).parent

# package (or top-level module) → the floe_stream packages it must never import
UPPER = (
    "runtime", "telemetry", "sinks", "cli", "replay", "reporting", "sources", "probes", "client", "integrations",
)  # fmt: skip
FORBIDDEN: dict[str, frozenset[str]] = {
    "topics": frozenset({*UPPER, "contracts", "processors", "settings"}),
    "contracts": frozenset({*UPPER, "processors", "settings"}),
    "processors": frozenset({*UPPER, "settings"}),
    "settings": frozenset({*UPPER, "processors"}),
    "telemetry": frozenset({"runtime", "sinks", "cli"}),  # runtime and sinks use it, never the reverse
    "durations": frozenset(
        {*UPPER, "topics", "contracts", "processors", "settings"}
    ),  # a leaf: imports no floe
    "printable": frozenset({*UPPER, "topics", "contracts", "processors", "settings"}),  # a leaf too
    "validation": frozenset({*UPPER, "topics", "contracts", "processors", "settings"}),  # a leaf too
    "backoff": frozenset({*UPPER, "topics", "contracts", "processors", "settings"}),  # a leaf too
    "runtime": frozenset({"cli"}),
    "sinks": frozenset({"cli"}),
    "reporting": frozenset({"cli"}),
    "replay": frozenset({"cli"}),
    "integrations": frozenset({"cli", "sinks", "replay", "reporting"}),  # orchestrator code: the client only
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out.extend(
                (node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "floe_stream"
            )
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return out


def upward_imports(layer: str) -> list[str]:
    files = (
        [ROOT / f"{layer}.py"] if (ROOT / f"{layer}.py").exists() else sorted((ROOT / layer).rglob("*.py"))
    )
    found = []
    for f in files:
        for line, module in _imports(f):
            parts = module.split(".")
            if parts[0] == "floe_stream" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                found.append(f"{f.relative_to(ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_upward_import(layer: str) -> None:
    assert upward_imports(layer) == []


def test_the_walk_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from floe_stream.runtime.kafka import OutRecord\n"
        "def g():\n    import floe_stream.sinks.postgres\n    from floe_stream import cli\n"
    )
    assert [m for _, m in _imports(f)] == [
        "typing",
        "floe_stream.runtime.kafka",
        "floe_stream.sinks.postgres",
        "floe_stream",
        "floe_stream.cli",
    ]
