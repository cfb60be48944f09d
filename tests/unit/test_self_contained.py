"""A clone passes its own tests with nothing beside it: no test, bench or script refers to a path above the repo root.

The scanner is a heuristic over the text of tests/, bench/, scripts/, .ci/ and the Makefile; it flags
* ``Path(__file__).parents[N]`` / ``.parent.parent...`` that climb above the repository root (from that file's depth),
* ``.parent`` of a name that holds the repository root (``REPO``, ``REPO_ROOT``, or a local name assigned to it),
* relative ``..`` segments that climb above the root (counted from the file's folder; the Makefile runs at the root),
* a ``shared`` folder reached by ``..`` or ``/ "shared"``, and absolute paths into the machine's ``/work`` tree.
The files copied from elsewhere for tests live in tests/fixtures/ (see tests/fixtures/README.md) and are data.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("tests", "bench", "scripts", ".ci", "Makefile")
SKIPPED_DIRS = {"__pycache__", "fixtures", ".pytest_cache"}
TEXT_SUFFIXES = {"", ".py", ".sh", ".bash", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".txt", ".json", ".mk"}

_PARENTS = re.compile(
    r"__file__\)?(?:\.resolve\(\))?\)?((?:\.parent\b)*)(?:\.parents\[(\d+)\])?((?:\.parent\b)*)"
)
_ROOT_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?::[^=]*)?=\s*(.*)$")
_DOTDOT = re.compile(r"(?<![\w.])((?:\.\.(?:/|(?=[\"'\s)]|$)))+)")
_SHARED = re.compile(r"""\.\./+shared\b|/\s*["']shared["']|(?<![\w.-])/work/""")


def _climb(match: re.Match[str]) -> int:
    """How many levels `Path(__file__)...` climbs from the file itself (parents[0] == parent == 1 level)."""
    before, index, after = match.group(1), match.group(2), match.group(3)
    levels = before.count(".parent")
    if index is not None:
        levels += int(index) + 1
    return levels + after.count(".parent")


def references_above_root(rel_path: str, text: str) -> list[tuple[int, str]]:
    """(line number, line) for every reference in `text` (the file at `rel_path` from the root) above the root."""
    depth = len(
        Path(rel_path).parts
    )  # tests/unit/x.py -> 3: climbing 3 levels from the file reaches the root
    root_names = {"REPO", "REPO_ROOT"}
    hits: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        code = line.split("#", 1)[0] if rel_path.endswith(".py") else line
        bad = False
        for match in _PARENTS.finditer(code):
            climbed = _climb(match)
            if climbed > depth:
                bad = True
            elif climbed == depth:
                assigned = _ROOT_ASSIGN.match(code)
                if assigned:
                    root_names.add(assigned.group(1))
        if any(re.search(rf"\b{re.escape(name)}\s*\.\s*parent", code) for name in root_names):
            bad = True
        for match in _DOTDOT.finditer(code):
            if match.group(1).count("..") > depth - 1:
                bad = True
        if _SHARED.search(code):
            bad = True
        if bad:
            hits.append((number, line.strip()))
    return hits


def _scanned_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        top = REPO / name
        if top.is_file():
            files.append(top)
            continue
        for path in sorted(top.rglob("*")):
            if not path.is_file() or SKIPPED_DIRS & set(path.relative_to(REPO).parts):
                continue
            if path.suffix in TEXT_SUFFIXES and path.resolve() != Path(__file__).resolve():
                files.append(
                    path
                )  # this file holds the forbidden patterns; its scanner is tested on samples below
    return files


def test_no_test_bench_or_script_refers_to_a_path_above_the_repository_root() -> None:
    found = []
    for path in _scanned_files():
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{rel}:{number}: {line}" for number, line in references_above_root(rel, text)]
    assert not found, "files outside the repository are referenced (a clone has none):\n" + "\n".join(found)


def test_the_scan_covers_the_tests_and_the_makefile() -> None:
    names = {p.relative_to(REPO).as_posix() for p in _scanned_files()}
    assert {
        "Makefile",
        "tests/conftest.py",
        "tests/unit/test_contracts.py",
        "scripts/ensure-services.sh",
    } <= names


# The samples are built by concatenation, so that reading them here is plain.
DD = ".."


def test_the_scanner_flags_climbing_above_the_root() -> None:
    shared = "shared"
    samples = {
        f'ODCS = Path(__file__).parents[3] / "{shared}" / "odcs-examples"\n': 1,
        "X = Path(__file__).resolve().parent.parent.parent.parent / 'data'\n": 1,
        f'SHARED = REPO.parent / "{shared}"\n': 1,
        "ROOT = Path(__file__).resolve().parents[2]\nOTHER = ROOT.parent / 'x'\n": 2,
        f'open("{DD}/{DD}/{DD}/{shared}/schemas/x.json")\n': 1,
        f'p = "{DD}/{shared}/odcs-examples"\n': 1,
        "cat /wo" + "rk/" + f"{shared}/schemas/README.md\n": 1,
    }
    for sample, line in samples.items():
        assert [n for n, _ in references_above_root("tests/unit/test_x.py", sample)] == [line], sample
    makefile = f"test:\n\tpytest --rootdir {DD}/{shared}\n"
    assert [n for n, _ in references_above_root("Makefile", makefile)] == [2]


def test_the_scanner_lets_paths_inside_the_repository_through() -> None:
    fine = (
        "REPO = Path(__file__).resolve().parents[2]\n"
        'TOPICS = Path(__file__).resolve().parents[2] / "topics"\n'
        'HERE = Path(__file__).parent / "values"\n'
        'FLOE = Path(sys.executable).parent / "floe"\n'
        f'cfg = "{DD}/fixtures/contracts"\n'
        "assert span.parent is not None\n"
        "# a comment about REPO.parent is not code\n"
    )
    assert references_above_root("tests/unit/test_x.py", fine) == []
