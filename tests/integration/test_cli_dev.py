"""The README's first command: `floe dev --demo` on the embedded broker and database, and `floe contracts lint`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from floe_stream.cli.main import main
from floe_stream.runtime.embedded import KAFKA_NOT_INSTALLED, kafka_installed
from tests.conftest import REPO

FLOE = str(Path(sys.executable).parent / "floe")


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["tansu", "kafka"])
def test_floe_dev_demo_shows_violations_and_the_report_then_leaves_nothing_running(broker: str) -> None:
    """`floe dev --demo` on Tansu (the default, `make demo`) and `floe dev --broker kafka --demo` on Apache Kafka."""
    if broker == "kafka" and not kafka_installed():
        pytest.fail(KAFKA_NOT_INSTALLED, pytrace=False)
    # not pytest's tmp_path: the embedded server runs as another user and needs a world-readable parent
    tmp_path = Path(tempfile.mkdtemp(prefix="floe-demo-test-"))
    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run(
        [FLOE, "dev", "--demo", "--data-dir", str(tmp_path / "dev"), *(["--broker", broker] if broker != "tansu" else [])],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    # the three scripted assets behave as the README says
    assert "changed type from int to string" in out  # inventory.stock drift
    assert "bin_location" in out  # the added column
    assert "no update for" in out and "sales.payments" in out  # absence → ERROR without any event
    assert "of the 15s freshness SLA consumed" in out  # INFO / WARNING before the breach
    assert "target is down" not in out  # sales.orders' service answers its availability pings
    assert "SLA compliance" in out  # the report from PostgreSQL
    assert "embedded broker and database stopped" in out
    assert ("Apache Kafka" in out) == (broker == "kafka")
    # no orphan broker (the JVM's command line names its server.properties under --data-dir) or postgres
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(tmp_path) not in ps
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_contracts_lint_cli() -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["contracts", "lint", str(REPO / "examples" / "contracts")])
    assert ok.exit_code == 0, ok.output
    assert "3 contract(s), 3 asset(s), 0 error(s)" in ok.output


def test_floe_dev_on_kafka_not_installed_says_how_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOE_KAFKA_HOME", str(tmp_path / "none"))
    res = CliRunner().invoke(
        main, ["dev", "--broker", "kafka", "--demo", "--data-dir", str(tmp_path / "dev")]
    )
    assert res.exit_code == 1
    assert res.output == "Error: Apache Kafka is not installed: run `make tools`\n"


def test_contracts_lint_cli_fails_on_a_bad_contract(tmp_path: Path) -> None:
    (tmp_path / "bad.odcs.yaml").write_text(
        "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\nschema: [{name: t, properties: [{name: c, logicalType: decimal}]}]\n"
    )
    res = CliRunner().invoke(main, ["contracts", "lint", str(tmp_path)])
    assert res.exit_code == 1
    assert "decimal" in res.output
