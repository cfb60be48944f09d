"""An unreachable broker stops a command with one line naming the servers as configured and the setting."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import REPO


def test_an_unreachable_broker_is_one_line_naming_the_configured_servers() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "floe_stream.cli.main",
            "contracts",
            "publish",
            str(REPO / "examples" / "contracts"),
        ],
        env={"FLOE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == [
        f"Error: cannot reach Kafka at 127.0.0.1:{port} (FLOE_KAFKA__BOOTSTRAP_SERVERS): KafkaConnectionError"
    ], out.stderr
