"""Docs are what the tests run (issue 21): every page of docs/integrations/ (but the index) starts with
"Tested with <tool> <version> by <test>" naming test files that exist, and a code block whose first line
names a file of examples/integrations/ is that file's text, exactly (the page's test imports or runs it)."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOCS = REPO / "docs" / "integrations"
BLOCK = re.compile(r"```(?:python|yaml|ini|bash|sql)\n# (examples/integrations/\S+)\n(.*?)```", re.S)
TESTS = re.compile(r"`(tests/[\w/]+\.py)`")


def test_every_page_says_what_tested_it_first() -> None:
    pages = [p for p in sorted(DOCS.glob("*.md")) if p.name != "README.md"]
    assert len(pages) >= 6
    for page in pages:
        lines = page.read_text().splitlines()
        lead = " ".join(line.lstrip("> ") for line in lines[2:8] if line.startswith(">"))
        assert lead.startswith("Tested with"), f"{page.name} does not start with 'Tested with …'"
        named = TESTS.findall(lead)
        assert named, f"{page.name}: the lead names no test file"
        for test in named:
            assert (REPO / test).is_file(), f"{page.name} names {test}, which does not exist"


def test_every_example_block_is_the_file_it_names() -> None:
    seen = 0
    for page in sorted(DOCS.glob("*.md")):
        for path, body in BLOCK.findall(page.read_text()):
            seen += 1
            source = (REPO / path).read_text()
            assert body.strip() in source, f"{page.name}: the block naming {path} differs from the file"
    assert seen >= 6
