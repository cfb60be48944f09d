"""`floe contracts lint`: typos in SLA property names and keys (with "did you mean"), SLA properties floe
will not evaluate, recursion into folders, single files, and an empty set failing."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from floe_stream.cli.main import main
from floe_stream.contracts.lint import lint_paths

GOOD = """apiVersion: v3.1.0
kind: DataContract
id: {id}
name: {id}
version: 1.0.0
status: active
schema:
  - name: {id}_t
    properties:
      - name: updated_at
        logicalType: timestamp
slaProperties:
  - property: latency
    value: 4
    unit: h
"""

TYPOS = """apiVersion: v3.1.0
kind: DataContract
id: typos
name: typos
version: 1.0.0
status: active
schema:
  - name: orders
    physicalNmae: orders_v2
    properties:
      - name: id
        requird: true
slaProperties:
  - property: latncy
    value: 4
    unit: h
  - property: availabilty
    value: 99.9%
  - property: throughput
    value: 3
    elemnt: orders
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_typos_are_warnings_with_did_you_mean(tmp_path: Path) -> None:
    report = lint_paths([write(tmp_path / "typos.odcs.yaml", TYPOS)])
    text = "\n".join(report.warnings)
    assert report.errors == ()
    assert "slaProperties[0]: unknown SLA property 'latncy'; did you mean 'latency'?" in text
    assert "slaProperties[1]: unknown SLA property 'availabilty'; did you mean 'availability'?" in text
    assert "schema[0].physicalNmae: unknown key; did you mean 'physicalName'?" in text
    assert "schema[0].properties[0].requird: unknown key; did you mean 'required'?" in text
    assert "slaProperties[2].elemnt: unknown key; did you mean 'element'?" in text
    assert "slaProperties[2] throughput: not evaluated" in text
    (asset,) = report.assets
    assert asset.freshness is None and asset.availability is None  # what the typos cost


def test_folders_are_searched_recursively_and_files_accepted(tmp_path: Path) -> None:
    write(tmp_path / "a.odcs.yaml", GOOD.format(id="a"))
    write(tmp_path / "team" / "b.odcs.yaml", GOOD.format(id="b"))
    write(tmp_path / ".hidden" / "c.odcs.yaml", GOOD.format(id="c"))
    report = lint_paths([tmp_path])
    assert (report.files_checked, len(report.contracts), report.errors) == (2, 2, ())
    single = lint_paths([tmp_path / "team" / "b.odcs.yaml"])
    assert (single.files_checked, single.warnings, single.errors) == (1, (), ())


def test_an_empty_set_fails(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    report = lint_paths([tmp_path / "empty"])
    assert not report.ok
    assert "no contract files (*.yaml, *.yml, *.json) found" in str(report.errors[0])


def test_cli_takes_files_and_folders_and_fails_on_nothing(tmp_path: Path) -> None:
    write(tmp_path / "x" / "a.odcs.yaml", GOOD.format(id="a"))
    typo = write(tmp_path / "typos.yaml", TYPOS)
    res = CliRunner().invoke(main, ["contracts", "lint", str(tmp_path / "x"), str(typo)])
    assert res.exit_code == 0, res.output
    assert "did you mean 'latency'?" in res.output
    assert "2 file(s), 2 contract(s)" in res.output
    (tmp_path / "none").mkdir()
    empty = CliRunner().invoke(main, ["contracts", "lint", str(tmp_path / "none")])
    assert empty.exit_code == 1
    assert "no contract files" in empty.output
