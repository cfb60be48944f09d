"""Contracts written by others load: every ODCS v3 file of datacontract-cli's test fixtures and examples and of
the ODCS repository's examples (tests/fixtures/README.md: sources, commits, licences). Each one floe refuses is
refused for a stated reason that the standard agrees with (the official JSON Schema refuses it too), and names
every problem; every other one loads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from floe_stream.cli.main import main
from floe_stream.contracts.lint import lint_directory
from floe_stream.contracts.loader import load_contract
from floe_stream.contracts.models import ContractError
from floe_stream.contracts.odcs_schema import SCHEMA_VERSIONS, schema_problems

FIXTURES = Path(__file__).parents[1] / "fixtures"
FOREIGN = sorted(
    p
    for folder in ("odcs-datacontract-cli", "odcs-examples")
    for p in (FIXTURES / folder).iterdir()
    if p.suffix in (".yaml", ".yml", ".json")
)

# file → every problem floe names (each one a real ODCS violation: see the JSON Schema test below)
REFUSED = {
    "tests__fixtures__azure-blob-file__datacontract.yaml": [
        "schema[0] (orders_files): logicalType 'blob' is not a table; use 'object'",
        "schema[0].properties[1].quality[0] (orders_files.size): library quality check needs a metric",
        "schema[0].properties[3].quality[0] (orders_files.contentType): library quality check needs a metric",
        "schema[0].properties[4].quality[0] (orders_files.blobType): library quality check needs a metric",
    ],
    "tests__fixtures__lint__invalid.odcs.yaml": ["missing required key 'status'"],
    "tests__fixtures__lint__invalid_multiple_errors.odcs.yaml": [
        "missing required key 'version'",
        "missing required key 'status'",
    ],
    "tests__fixtures__lint__odcs_with_extra_top_level.yaml": [
        "unknown top-level key 'change_management': not an ODCS v3 field"
    ],
}
# what the official schema says about the same files (path of the problem, as schema_problems writes it)
SCHEMA_AGREES = {
    "tests__fixtures__azure-blob-file__datacontract.yaml": "schema[0].logicalType: 'blob' is not one of ['object']",
    "tests__fixtures__lint__invalid.odcs.yaml": "(top level): 'status' is a required property",
    "tests__fixtures__lint__invalid_multiple_errors.odcs.yaml": "(top level): 'version' is a required property",
    "tests__fixtures__lint__odcs_with_extra_top_level.yaml": "'change_management' was unexpected",
}


def test_the_fixtures_are_the_odcs_v3_files_of_both_sources() -> None:
    assert len(FOREIGN) == 114 + 18
    for path in FOREIGN:
        assert re.search(r"^apiVersion:\s*['\"]?v3\.", path.read_text(), re.M), path.name


@pytest.mark.parametrize("path", FOREIGN, ids=lambda p: p.name)
def test_every_valid_contract_loads_and_each_refused_one_names_all_its_problems(path: Path) -> None:
    if path.name not in REFUSED:
        contract = load_contract(path)
        assert contract.contract_id
        return
    with pytest.raises(ContractError) as info:
        load_contract(path)
    expected = REFUSED[path.name]
    assert len(info.value.problems) == len(expected)
    for problem, want in zip(info.value.problems, expected, strict=True):
        assert problem.startswith(want), (problem, want)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_official_schema_refuses_them_too(name: str) -> None:
    doc = yaml.safe_load((FIXTURES / "odcs-datacontract-cli" / name).read_text())
    assert any(SCHEMA_AGREES[name] in p for p in schema_problems(doc)), schema_problems(doc)


@pytest.mark.parametrize(
    ("name", "seconds"),
    [
        ("tests__fixtures__api__weather-service.odcs.yaml", 0.5),  # value: 500, unit: ms
        ("tests__fixtures__changelog__unit__changelog_unit_v1.yaml", 0.5),  # value: '500ms'
        ("tests__fixtures__changelog__unit__changelog_unit_v2.yaml", 0.5),
        ("tests__fixtures__changelog__integration__changelog_integration_v1.yaml", 0.5),
        ("tests__fixtures__changelog__integration__changelog_integration_v2.yaml", 0.5),
    ],
)
def test_sub_second_latencies_are_evaluated(name: str, seconds: float) -> None:
    """The five valid contracts refused before for a latency floe could not read."""
    contract = load_contract(FIXTURES / "odcs-datacontract-cli" / name)
    fresh = [a.freshness for a in contract.assets if a.freshness is not None]
    assert fresh and all(f.threshold_s == seconds for f in fresh)


def test_lint_schema_validates_against_the_official_schema_of_the_api_version(tmp_path: Path) -> None:
    assert SCHEMA_VERSIONS == ("v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0")
    src = FIXTURES / "odcs-datacontract-cli"
    (tmp_path / "valid.yaml").write_text((src / "tests__fixtures__lint__valid.odcs.yaml").read_text())
    # a v3.1 contract under a v3.0.2 header (datacontract-cli's lint fixture): floe reads it, the v3.0.2 schema
    # does not accept its team object
    plain = lint_directory(tmp_path)
    assert plain.ok
    strict = lint_directory(tmp_path, schema=True)
    assert [e.problem for e in strict.errors] == [
        p for p in schema_problems(yaml.safe_load((tmp_path / "valid.yaml").read_text()))
    ]
    assert strict.errors and all("(ODCS v3.0.2 JSON Schema)" in e.problem for e in strict.errors)
    assert any(e.problem.startswith("team:") for e in strict.errors)
    # an apiVersion whose schema is not bundled is said so, not silently passed
    assert schema_problems({"apiVersion": "v3.9.0"})[0].startswith("apiVersion 'v3.9.0': no official ODCS")


def test_lint_reads_json_contracts_and_prints_every_problem_once_per_line(tmp_path: Path) -> None:
    src = FIXTURES / "odcs-datacontract-cli"
    doc = yaml.safe_load((src / "tests__fixtures__api__weather-service.odcs.yaml").read_text())
    (tmp_path / "weather.odcs.json").write_text(json.dumps(doc))
    (tmp_path / "broken.yaml").write_text(
        (src / "tests__fixtures__lint__invalid_multiple_errors.odcs.yaml").read_text()
    )
    result = CliRunner().invoke(main, ["contracts", "lint", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"error: {tmp_path / 'broken.yaml'}: missing required key 'version'" in lines
    assert f"error: {tmp_path / 'broken.yaml'}: missing required key 'status'" in lines
    assert lines[-1].startswith("2 file(s), 1 contract(s)") and ", 2 error(s)," in lines[-1]
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == len(set(warnings))


def test_lint_says_each_unusable_sla_once(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v3.1.0",
                "kind": "DataContract",
                "id": "c",
                "version": "1",
                "status": "active",
                "schema": [{"name": "t", "properties": [{"name": "a", "logicalType": "string"}]}],
                "slaProperties": [
                    {"property": "generalAvailability", "value": "Available 24/7"},
                    {"property": "latency", "value": 5},
                ],
            }
        )
    )
    report = lint_directory(tmp_path)
    assert report.ok
    about = sorted(w.split(": ", 1)[1] for w in report.warnings)
    assert [w.split(":", 1)[0] for w in about] == [
        "slaProperties[0] generalAvailability",
        "slaProperties[1] latency",
    ]
    assert all(w.endswith("; not evaluated") for w in about)
