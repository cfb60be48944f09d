"""Bad input for every command ends in one line: the exit code, a single ``Error:`` line naming the flag or the
setting to fix, no traceback, no "Unclosed AIOKafka…". Real subprocesses; the database cases use a real,
migrated PostgreSQL; the broker cases point at a port where nothing listens."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.integration.sla_trouble import load_trouble

pytestmark = [pytest.mark.postgres]

FLOE = str(Path(sys.executable).parent / "floe")
REPO = Path(__file__).resolve().parents[2]
CONTRACTS = str(REPO / "examples" / "contracts")
NO_BROKER = {"FLOE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
DB = "{db}"  # replaced by the test's database

# (id, argv, env, exit code, text the one line must contain)
CASES: list[tuple[str, list[str], dict[str, str], int, str]] = [
    # DSN forms
    ("libpq-dsn-missing-db", ["sla", "report"],
     {"FLOE_DATABASE__DSN": "host=127.0.0.1 port=5432 dbname=floe_no_such_db user=postgres"}, 1,
     "FLOE_DATABASE__DSN"),
    ("libpq-dsn-unknown-key", ["db", "prune"], {"FLOE_DATABASE__DSN": "host=127.0.0.1 databse=x password=s3cret"}, 1,
     "unknown keyword(s) 'databse'"),
    ("dsn-port-not-a-number", ["sla", "report"],
     {"FLOE_DATABASE__DSN": "postgresql://postgres:s3cret@127.0.0.1:abc/x"}, 1,
     "FLOE_DATABASE__DSN: the port"),
    ("dsn-port-out-of-range", ["db", "migrate"], {"FLOE_DATABASE__DSN": "postgresql://postgres@127.0.0.1:99999/x"},
     1, "FLOE_DATABASE__DSN"),
    ("dsn-no-scheme", ["silence", "list"], {"FLOE_DATABASE__DSN": "nonsense"}, 1, "FLOE_DATABASE__DSN"),
    ("dsn-unreachable", ["contracts", "register", CONTRACTS],
     {"FLOE_DATABASE__DSN": "postgresql://postgres@127.0.0.1:1/x"}, 1, "FLOE_DATABASE__DSN"),
    # no broker
    ("replay-no-broker", ["replay", "--from", "1h", "--contracts", CONTRACTS], NO_BROKER, 1,
     "FLOE_KAFKA__BOOTSTRAP_SERVERS"),
    ("publish-contracts-no-broker", ["contracts", "publish", CONTRACTS], NO_BROKER, 1,
     "FLOE_KAFKA__BOOTSTRAP_SERVERS"),
    ("retire-no-broker", ["contracts", "retire", "orders"], NO_BROKER, 1, "FLOE_KAFKA__BOOTSTRAP_SERVERS"),
    ("topics-create-no-broker", ["topics", "create"], NO_BROKER, 1, "FLOE_KAFKA__BOOTSTRAP_SERVERS"),
    ("publish-event-no-broker", ["publish", "materialization", "--asset", "a"], NO_BROKER, 1,
     "FLOE_KAFKA__BOOTSTRAP_SERVERS"),
    # unwritable output
    ("output-missing-folder", ["sla", "report", "--format", "html", "-o", "missing/dir/x.html"], {}, 2,
     "--output: folder missing/dir does not exist"),
    ("output-is-a-directory", ["sla", "report", "-o", "."], {}, 2, "--output"),
    # bad durations and values
    ("window", ["sla", "report", "--window", "7x"], {}, 2, "'--window': '7x' is not a duration"),
    ("older-than", ["db", "prune", "--older-than", "ninety"], {}, 2, "--older-than"),
    ("replay-from", ["replay", "--from", "7x"], {}, 2, "--from"),
    ("silence-until", ["silence", "add", "--asset", "a", "--until", "soon"], {}, 2, "--until"),
    ("fail-under", ["sla", "report", "--fail-under", "120"], {}, 2, "--fail-under"),
    ("as-of", ["sla", "report", "--as-of", "yesterday"], {}, 2, "--as-of"),
    ("sort", ["sla", "report", "--sort", "name"], {}, 2, "--sort"),
    ("unknown-command", ["sla", "reprot"], {}, 2, "No such command 'reprot'"),
    # unknown ids (over a history with contracts registered)
    ("unknown-asset", ["sla", "report", "--asset", "finance.revenue"], {}, 1,
     "did you mean finance.revenue_daily_snapshot"),
    ("unknown-contract", ["sla", "report", "--contract", "nope"], {}, 1, "unknown contract 'nope'"),
    ("unknown-owner", ["sla", "report", "--owner", "nobody"], {}, 1, "no asset with owner 'nobody'"),
    ("silence-unknown-contract", ["silence", "add", "--contract", "c-O", "--until", "1h"], {}, 2,
     "--contract: no registered contract has contract 'c-O'"),
    ("silence-unknown-asset", ["silence", "add", "--asset", "ops.payments", "--until", "1h"], {}, 2,
     "--asset: no registered contract has asset 'ops.payments'"),
    ("silence-expire-unknown", ["silence", "expire", "nope"], {}, 1, "floe silence list"),
    ("replay-unknown-contract", ["replay", "--from", "1h", "--contracts", CONTRACTS, "--contract", "nope"], {}, 1,
     "unknown contract(s) nope"),
    ("publish-missing-file", ["contracts", "publish", "no/such.yaml"], {}, 2, "no/such.yaml"),
]  # fmt: skip


@pytest.fixture(scope="module")
def history_db() -> str:
    """One migrated database with the trouble history (contracts registered), shared by the cases."""
    import uuid

    import asyncpg

    from floe_stream.runtime.framework.database import migrate
    from tests.conftest import ADMIN_DSN

    name = f"floe_test_{uuid.uuid4().hex[:12]}"

    async def setup() -> str:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        await load_trouble(dsn)
        return dsn

    dsn = asyncio.run(setup())
    yield dsn  # type: ignore[misc]

    async def drop() -> None:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(drop())


@pytest.mark.parametrize(("argv", "env", "code", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line(
    history_db: str, tmp_path: Path, argv: list[str], env: dict[str, str], code: int, text: str
) -> None:
    import subprocess

    full_env = {**os.environ, "FLOE_DATABASE__DSN": history_db, "FLOE_DATABASE__CONNECT_TIMEOUT_S": "2",
                "FLOE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", **env}  # fmt: skip
    full_env.pop("FLOE_DEBUG", None)
    proc = subprocess.run(
        [FLOE, *argv], env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=90
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ") and text in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Unclosed" not in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout  # the DSN's password is never shown


def test_a_libpq_keyword_dsn_works(history_db: str) -> None:
    import subprocess
    from urllib.parse import urlsplit

    u = urlsplit(history_db)
    dsn = f"host={u.hostname} port={u.port or 5432} dbname={u.path.lstrip('/')} user={u.username}"
    env = {**os.environ, "FLOE_DATABASE__DSN": dsn}
    proc = subprocess.run([FLOE, "sla", "report", "--format", "json", "--as-of", "2026-05-20T09:30:00Z"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"finance.revenue_daily_snapshot"' in proc.stdout
