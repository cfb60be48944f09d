"""The README's first command: `floe dev --demo` on the embedded broker and database, and `floe contracts lint`."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from floe_stream.cli.main import main
from floe_stream.runtime.devtools.embedded import KAFKA_NOT_INSTALLED, kafka_installed
from tests.conftest import REPO

FLOE = str(Path(sys.executable).parent / "floe")
GRACE_S = float(
    yaml.safe_load((REPO / "helm" / "floe-stream" / "values.yaml").read_text())[
        "terminationGracePeriodSeconds"
    ]
)


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
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True).stdout
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
    assert res.output == f"Error: {KAFKA_NOT_INSTALLED}\n"
    assert "`floe tools install-kafka`" in res.output  # works for a clone and an installed wheel alike


def test_contracts_lint_cli_fails_on_a_bad_contract(tmp_path: Path) -> None:
    (tmp_path / "bad.odcs.yaml").write_text(
        "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\nschema: [{name: t, properties: [{name: c, logicalType: decimal}]}]\n"
    )
    res = CliRunner().invoke(main, ["contracts", "lint", str(tmp_path)])
    assert res.exit_code == 1
    assert "decimal" in res.output


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _left_behind(data_dir: Path, ports: list[int]) -> list[str]:
    """Processes of that `floe dev`: PostgreSQL names its data dir, the broker its port."""
    ps = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [
        ln.strip()
        for ln in ps.splitlines()
        if str(data_dir) in ln or any(f"127.0.0.1:{p} " in ln + " " for p in ports)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_floe_dev_under_a_process_manager_stops_on_sigterm_and_its_children_die_with_it(
    sig: signal.Signals,
) -> None:
    """stdout is a pipe read as a process manager reads it (docker compose, a CI job): SIGTERM stops `floe dev`
    (also in --duration mode, which slept on) within the chart's grace period, and once it is SIGKILLed its
    embedded broker and PostgreSQL do not run on as orphans."""
    tmp = Path(
        tempfile.mkdtemp(prefix="floe-dev-sig-")
    )  # world-readable: the embedded server runs as another user
    data_dir = tmp / "dev"
    proc = subprocess.Popen(
        [FLOE, "dev", "--duration", "10m", "--data-dir", str(data_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    lines: list[str] = []
    out = proc.stdout
    assert out is not None
    reader = threading.Thread(
        target=lambda: lines.extend(ln.decode(errors="replace") for ln in out), daemon=True
    )
    reader.start()
    ports: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not any("PostgreSQL at" in ln for ln in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.1)
        banner = "".join(lines)
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", banner)]
        assert len(ports) == 2 and all(_listening(p) for p in ports), banner
        proc.send_signal(sig)
        if sig == signal.SIGTERM:
            assert proc.wait(GRACE_S) == 0, "".join(lines)[-3000:]
            reader.join(5)
            assert "embedded broker and database stopped" in "".join(lines)
        else:
            proc.wait(10)
        deadline = time.monotonic() + 30  # the watchdog: SIGTERM, 10 s, SIGKILL; pg_ctl stop -m immediate
        while any(_listening(p) for p in ports) or _left_behind(data_dir, ports):
            assert time.monotonic() < deadline, _left_behind(data_dir, ports)
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for ln in _left_behind(data_dir, ports) if ports else []:  # a failed run leaves nothing for the next
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(ln.split()[0]), signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


_CHILD = """
import os, signal, subprocess, sys, time
from floe_stream.runtime.devtools.embedded import watchdog
p = subprocess.Popen(["sleep", "300"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
entry = watchdog.kill_group(p.pid, "sleep")
if sys.argv[1] == "clean":
    watchdog.forget(entry)
print(p.pid, watchdog.proc.pid if watchdog.proc else 0, flush=True)
if sys.argv[1] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("end", ["killed", "clean"])
def test_the_watchdog_stops_what_a_killed_process_left_and_only_that(end: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, end], capture_output=True, text=True, timeout=60, check=False
    )
    pid, watcher = (int(x) for x in out.stdout.split())

    def alive(p: int = pid) -> bool:
        return subprocess.run(
            ["ps", "-o", "stat=", "-p", str(p)], capture_output=True, text=True
        ).stdout.strip() not in ("", "Z")

    try:
        if end == "killed":
            deadline = time.monotonic() + 20
            while alive():
                assert time.monotonic() < deadline, "the watchdog left the killed process's child running"
                time.sleep(0.1)
        else:  # forgotten on a clean stop: the watchdog ends without touching it
            deadline = time.monotonic() + 20
            while alive(watcher):
                assert time.monotonic() < deadline, "the watchdog outlived a cleanly ended process"
                time.sleep(0.1)
            assert alive()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
