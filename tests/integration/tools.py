"""The real tools the emitter tests run, installed by ``make tools`` into ``.tools/`` (scripts/install-emitters.sh).

* :func:`tool` — a path under ``.tools/`` or a one-line failure (not a skip) naming ``make tools``;
* :class:`IcebergRestServer` / the session fixture ``iceberg_rest`` — Apache Iceberg's own REST catalog server
  (``iceberg-open-api`` jar, Java 17) on a free loopback port, a JDBC catalog in a SQLite file and a local
  warehouse; configured only by ``CATALOG_*`` environment variables, so it is started with a clean environment
  (a stray ``CATALOG_*`` of the caller would leak into the catalog). One server per session; each test uses a
  namespace of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from floe_stream.runtime.devtools.embedded import free_port
from tests.conftest import REPO

TOOLS = REPO / ".tools"
ICEBERG_REST_VERSION = "1.10.1"


def tool(rel: str, what: str) -> Path:
    """``.tools/<rel>``; fails the test in one line when ``make tools`` did not install it."""
    path = TOOLS / rel
    if not path.exists():
        pytest.fail(
            f"{what} is not installed ({path.relative_to(REPO)} missing): run `make tools`", pytrace=False
        )
    return path


class IcebergRestServer:
    """``java -jar iceberg-open-api-<v>.jar`` with a SQLite catalog file in ``root`` (tables survive a restart)."""

    def __init__(self, root: Path, jar: Path) -> None:
        self.root = root
        self.jar = jar
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "iceberg-rest.log"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> IcebergRestServer:
        java = shutil.which("java")
        if java is None:
            pytest.fail("java is not installed (OpenJDK 17): run `make tools`", pytrace=False)
        (self.root / "warehouse").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {  # a clean environment: CATALOG_* is the server's whole configuration
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "CATALOG_WAREHOUSE": f"file://{self.root}/warehouse",
            "CATALOG_URI": f"jdbc:sqlite:{self.root}/catalog.db",
            "CATALOG_JDBC_USER": "user",
            "CATALOG_JDBC_PASSWORD": "password",
            "CATALOG_REST_PORT": str(self.port),
        }
        fh = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [java, "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar", str(self.jar)],
            env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root,
        )  # fmt: skip
        fh.close()
        deadline = time.monotonic() + timeout
        while True:  # ready when GET /v1/config answers
            if self.proc.poll() is not None:
                raise RuntimeError(f"Iceberg REST server exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.uri}/v1/config", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"Iceberg REST server not ready in {timeout}s: {self.log.read_text()[-2000:]}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="session")
def iceberg_rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IcebergRestServer]:
    """Apache Iceberg's REST catalog server, one per session (each test: its own namespace)."""
    jar = tool(
        f"iceberg-rest/iceberg-open-api-{ICEBERG_REST_VERSION}.jar", "Apache Iceberg's REST catalog server"
    )
    server = IcebergRestServer(tmp_path_factory.mktemp("iceberg-rest"), jar).start()
    yield server
    server.stop()


CLEAN_OPENLINEAGE = ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED", "OPENLINEAGE_API_KEY")


def tool_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a tool in its own venv: its ``bin`` first on PATH, no OpenLineage or ``CATALOG_*``
    settings of the caller in the way, ``extra`` on top."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CLEAN_OPENLINEAGE
        and not k.startswith(("OPENLINEAGE__", "AIRFLOW", "CATALOG_", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def run_tool(
    args: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a tool to its end (blocking: call it in a thread), its output kept in ``log``."""
    proc = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    log.write_text(
        f"$ {' '.join(args)}\n--- exit {proc.returncode}\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc
