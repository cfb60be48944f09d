"""Built, not editable: the wheel, installed into a fresh venv outside the repository, runs against the test broker
and database — so a file missing from the package (migrations, schemas, ...) fails here, not in a deployment.

The wheel is built from a copy of the repository's files as a clone has them. The venv is created without pip and the wheel installed with the repository venv's pip (``--python``), its
dependencies resolved from the index through the pip cache (``--no-compile`` to keep it short). Every command runs
with its working directory outside the repository.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path

import asyncpg
import httpx
import pytest

from floe_stream.runtime.devtools.embedded import KAFKA_NOT_INSTALLED, free_port
from floe_stream.settings import Settings
from tests.conftest import ADMIN_DSN, REPO
from tests.integration.helpers import floe_env

pytestmark = pytest.mark.slow

MIGRATIONS = sorted(
    p.name for p in (REPO / "src" / "floe_stream" / "runtime" / "framework" / "migrations").glob("*.sql")
)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository with the built wheel (and its dependencies) installed."""
    base = tmp_path_factory.mktemp("wheel")
    assert REPO not in base.parents
    started = time.monotonic()
    pip = [sys.executable, "-m", "pip"]
    # Built from the repository's files as a clone has them (tracked or not ignored): no stale build/ or
    # *.egg-info/ of the editable install, whose SOURCES.txt would slip files into the wheel that a clean
    # build leaves out.
    tree = base / "tree"
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    for rel in filter(None, listed.split("\0")):
        if (REPO / rel).is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, tree / rel)
    run([*pip, "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(tree)], cwd=base)
    (wheel,) = (base / "dist").glob("floe_stream-*.whl")
    built = time.monotonic()
    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-compile",
         "--disable-pip-version-check", str(wheel)],
        cwd=base,
    )  # fmt: skip
    print(f"wheel built in {built - started:.1f} s, venv + install in {time.monotonic() - built:.1f} s")
    return venv


def imported_from(venv: Path, cwd: Path) -> tuple[Path, Path]:
    code = "import floe_stream; print(floe_stream.__file__)"
    out = run([str(venv / "bin" / "python"), "-c", code], cwd=cwd, env=venv_env(venv, dict(os.environ)))
    return Path(out.strip()).resolve(), venv.resolve()


def venv_env(venv: Path, env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in env.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    return env


async def test_the_installed_wheel_migrates_and_runs_the_processor(
    wheel_venv: Path, settings: Settings, tmp_path: Path
) -> None:
    floe = str(wheel_venv / "bin" / "floe")
    work = tmp_path / "cwd"
    work.mkdir()
    shutil.copytree(REPO / "examples" / "contracts", work / "contracts")

    where, venv_root = imported_from(wheel_venv, work)
    assert where.is_relative_to(venv_root), where  # the wheel's files, not the repository's src/
    assert f"version {version('floe-stream')}" in run(
        [floe, "--version"], cwd=work, env=venv_env(wheel_venv, dict(os.environ))
    )
    # `floe dev` outside a clone falls back to the example contracts shipped inside the wheel
    code = "from floe_stream.runtime.devtools.dev import _examples_dir as d; print(d().resolve())"
    shipped = Path(
        run(
            [str(wheel_venv / "bin" / "python"), "-c", code],
            cwd=work,
            env=venv_env(wheel_venv, dict(os.environ)),
        ).strip()
    )
    assert shipped.is_relative_to(venv_root), shipped
    assert sorted(os.listdir(shipped)) == sorted(os.listdir(REPO / "examples" / "contracts"))

    name = f"floe_wheel_{uuid.uuid4().hex[:12]}"  # an empty database: migrate must create everything
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    try:
        port = free_port()
        env = venv_env(
            wheel_venv,
            floe_env(
                settings,
                FLOE_DATABASE__DSN=dsn,
                FLOE_CONTRACTS_DIR=str(work / "contracts"),
                FLOE_HEALTH_PORT=str(port),
            ),
        )
        await asyncio.to_thread(run, [floe, "db", "migrate"], work, env)
        conn = await asyncpg.connect(dsn)
        try:
            applied = [
                r["name"]
                for r in await conn.fetch("SELECT name FROM floe_schema_migrations ORDER BY version")
            ]
        finally:
            await conn.close()
        assert MIGRATIONS and applied == MIGRATIONS  # every migration shipped in the wheel

        log = tmp_path / "processor.log"
        with open(log, "wb") as fh:
            proc = await asyncio.create_subprocess_exec(
                floe, "run", "processor", cwd=work, env=env, stdout=fh, stderr=fh
            )
        try:
            deadline = time.monotonic() + 60
            async with httpx.AsyncClient(timeout=2) as client:
                while True:
                    assert proc.returncode is None, log.read_text()
                    try:
                        if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "processor never ready:\n" + log.read_text()
                    await asyncio.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()
            assert "on the uvloop event loop" in log.read_text()  # the wheel's dependencies bring it
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_a_wheel_user_is_told_how_to_get_apache_kafka_and_that_way_works(
    wheel_venv: Path, tmp_path: Path
) -> None:
    """Outside a clone there is no `make tools`: `floe dev --broker kafka` names `floe tools install-kafka`,
    which installs the broker from Maven Central with the pom shipped in the wheel, where `floe dev` looks."""
    floe = str(wheel_venv / "bin" / "floe")
    work = tmp_path / "cwd"
    work.mkdir()
    env = venv_env(wheel_venv, dict(os.environ))
    env.pop("FLOE_KAFKA_HOME", None)
    env["XDG_DATA_HOME"] = str(
        tmp_path / "data"
    )  # the user's ~/.local/share (Maven's ~/.m2 stays the real one)

    dev = subprocess.run(
        [floe, "dev", "--broker", "kafka", "--demo", "--data-dir", str(tmp_path / "dev")],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dev.returncode == 1
    assert dev.stderr.strip().splitlines() == [f"Error: {KAFKA_NOT_INSTALLED}"]
    assert "floe tools install-kafka" in KAFKA_NOT_INSTALLED and "make tools" not in KAFKA_NOT_INSTALLED

    out = run([floe, "tools", "install-kafka"], cwd=work, env=env, timeout=600)
    home = tmp_path / "data" / "floe-stream" / "kafka"
    assert f"in {home}" in out, out
    assert (home / "VERSION").read_text().strip() == "4.4.0"
    assert list((home / "lib").glob("kafka_2.13-4.4.0.jar")) and (home / "log4j2.properties").is_file()
    assert "already installed" in run([floe, "tools", "install-kafka"], cwd=work, env=env)
    code = "from floe_stream.runtime.devtools.embedded import kafka_installed; print(kafka_installed())"
    assert run([str(wheel_venv / "bin" / "python"), "-c", code], cwd=work, env=env).strip() == "True"
