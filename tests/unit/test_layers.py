"""Layers point down (docs/ARCHITECTURE.md): the bottom packages import nothing from the layers above them.

Walks the AST of every module (function-level and ``TYPE_CHECKING`` imports included), so an upward import
fails here before it becomes a cycle or a hidden dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import floe_stream

ROOT = Path(floe_stream.__file__).parent

# package (or top-level module; dotted for a sub-package) → the floe_stream modules it must never import (a name
# forbids the module and everything under it)
UPPER = (
    "runtime", "telemetry", "sinks", "cli", "replay", "reporting", "sources", "probes", "client", "integrations",
)  # fmt: skip
# runtime/ is three folders: the framework every deployable runs on, the deployables (and their composition root),
# the dev tools (floe dev, embedded brokers). Dev tools may use the other two, deployables the framework, never the
# reverse; everything outside runtime/ but the CLI uses the framework only.
NOT_DEPLOYED = frozenset({"runtime.deployables", "runtime.devtools"})
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
    "runtime.framework": frozenset(
        {*NOT_DEPLOYED, "cli", "sinks", "replay", "reporting", "integrations", "client"}
    ),
    "runtime.deployables": frozenset({"cli", "runtime.devtools"}),
    "sinks": frozenset({"cli", *NOT_DEPLOYED}),
    "reporting": frozenset({"cli", *NOT_DEPLOYED}),
    "replay": frozenset({"cli", *NOT_DEPLOYED}),
    "sources": frozenset({"cli", *NOT_DEPLOYED}),
    "probes": frozenset({"cli", *NOT_DEPLOYED}),
    "client": frozenset({"cli", *NOT_DEPLOYED}),
    "integrations": frozenset(
        {"cli", "sinks", "replay", "reporting", *NOT_DEPLOYED}
    ),  # orchestrator code: the client only
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "floe_stream" or node.module.startswith(
                "floe_stream."
            ):  # a module or a name in one
                out.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return out


def upward_imports(layer: str) -> list[str]:
    base = ROOT.joinpath(*layer.split("."))
    files = [base.with_suffix(".py")] if base.with_suffix(".py").exists() else sorted(base.rglob("*.py"))
    assert files, f"no module for layer {layer}"
    found = []
    for f in files:
        for line, module in _imports(f):
            name = module.removeprefix("floe_stream.")
            if module.startswith("floe_stream.") and any(
                name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN[layer]
            ):
                found.append(f"{f.relative_to(ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_upward_import(layer: str) -> None:
    assert upward_imports(layer) == []


def test_the_walk_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from floe_stream.runtime.framework.kafka import OutRecord\n"
        "def g():\n    import floe_stream.sinks.postgres\n    from floe_stream import cli\n"
        "    from floe_stream.runtime import devtools\n"
    )
    assert [m for _, m in _imports(f)] == [
        "typing",
        "floe_stream.runtime.framework.kafka",
        "floe_stream.runtime.framework.kafka.OutRecord",
        "floe_stream.sinks.postgres",
        "floe_stream",
        "floe_stream.cli",
        "floe_stream.runtime",
        "floe_stream.runtime.devtools",
    ]


def test_runtime_is_three_folders() -> None:
    """runtime/ holds the framework, the deployables and the dev tools, nothing beside them: where a module
    belongs shows in its path, and the rules above apply to it."""
    # a folder holding no module is none (a checkout keeps a moved package's ignored __pycache__/)
    modules = [p for p in (ROOT / "runtime").iterdir() if p.is_file() or any(p.rglob("*.py"))]
    assert sorted(p.name for p in modules if p.name != "__pycache__") == [
        "__init__.py",
        "deployables",
        "devtools",
        "framework",
    ]
