"""Docs are what the tests run: a code block of docs/integrations/ whose first line names a file of
examples/integrations/ is that file's text, exactly (the test of the page imports or runs that file)."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOCS = REPO / "docs" / "integrations"
BLOCK = re.compile(r"```(?:python|yaml|ini|bash|sql)\n# (examples/integrations/\S+)\n(.*?)```", re.S)


def test_every_example_block_is_the_file_it_names() -> None:
    seen = 0
    for page in sorted(DOCS.glob("*.md")):
        for path, body in BLOCK.findall(page.read_text()):
            seen += 1
            source = (REPO / path).read_text()
            assert body.strip() in source, f"{page.name}: the block naming {path} differs from the file"
    assert seen >= 2
