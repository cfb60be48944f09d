"""Kill a processor (SIGKILL) mid-stream, start another: no violation is missed, none is repeated."""

from __future__ import annotations

import contextlib
import signal
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from floe_stream.runtime.deployables.app import postgres_sink
from floe_stream.runtime.devtools.embedded import free_port
from floe_stream.settings import Settings
from floe_stream.topics import (
    CatalogCommitEvent,
    DriftKind,
    IcebergField,
    IcebergSchema,
    ResolvedData,
    TopicKey,
    ViolationData,
)
from tests.conftest import wait_for
from tests.integration.helpers import Running, floe_env, publish, start_floe, stop_process, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

N = 40


def many_tables_contract(path: Path) -> Path:
    tables = "\n".join(
        f"""  - name: t{i:02d}
    physicalType: table
    customProperties: [{{property: floe, value: {{asset: test.t{i:02d}}}}}]
    properties:
      - {{name: id, logicalType: integer, physicalType: long, required: true}}"""
        for i in range(N)
    )
    path.mkdir(parents=True, exist_ok=True)
    (path / "many.odcs.yaml").write_text(
        f"apiVersion: v3.1.0\nkind: DataContract\nid: many\nname: many\nversion: 1.0.0\nstatus: active\nschema:\n{tables}\n"
    )
    return path


def commit(i: int, seq: int, extra: bool) -> tuple[str, CatalogCommitEvent]:
    fields = [IcebergField(id=1, name="id", required=True, type="long")]
    if extra:
        fields.append(IcebergField(id=2, name=f"extra_{i}", type="string"))
    table = f"test.t{i:02d}"
    return table, CatalogCommitEvent(
        table=table, snapshot_id=seq, sequence_number=seq, timestamp_ms=int(datetime.now(UTC).timestamp() * 1000),
        operation="append", table_schema=IcebergSchema(fields=fields),
    )  # fmt: skip


async def _ready(port: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            return r.status_code == 200
    return False


@pytest.mark.parametrize(
    "commit_interval_ms", ["0", "60000"], ids=["commit-every-batch", "commit-when-idle-only"]
)
async def test_processor_killed_mid_stream_loses_and_repeats_nothing(
    broker_settings: Settings, tmp_path: Path, commit_interval_ms: str
) -> None:
    """On each broker (ids ``tansu`` / ``kafka``): the survivor restores the state from the changelog."""
    s = broker_settings.model_copy(update={"contracts_dir": many_tables_contract(tmp_path / "contracts")})
    port_a, port_b = free_port(), free_port()

    def env(port: int) -> dict[str, str]:
        return floe_env(s, FLOE_HEALTH_PORT=str(port), FLOE_KAFKA__COMMIT_INTERVAL_MS=commit_interval_ms)

    a = await start_floe(["run", "processor"], env(port_a), tmp_path / "a.log")
    b = None
    try:
        await wait_for(lambda: _ready(port_a), timeout=30)
        async with Running(postgres_sink(s)):
            # round 1: every table gains a column → one column_added violation each
            for i in range(N):
                await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 1, extra=True)])
                if i == N // 2:
                    await wait_for(lambda: _count(s, ViolationData, 5), timeout=30)
                    a.send_signal(signal.SIGKILL)  # no commit, no goodbye
                    await a.wait()
                    b = await start_floe(["run", "processor"], env(port_b), tmp_path / "b.log")
            await wait_for(lambda: _count(s, ViolationData, N), timeout=60)
            # round 2 on the survivor: the column is dropped again → every episode resolves
            await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 2, extra=False) for i in range(N)])
            await wait_for(lambda: _count(s, ResolvedData, N), timeout=60)
            evs = await violations(s)
            conn = await asyncpg.connect(s.database.dsn.get_secret_value())
            try:
                await wait_for(lambda: _rows(conn, 2 * N), timeout=30)
                per_type = dict(
                    await conn.fetch("SELECT event_type, count(*) FROM violation_events GROUP BY 1")
                )
            finally:
                await conn.close()
    finally:
        for p in (a, b):
            if p is not None:
                await stop_process(p)
    fired = [e for e in evs if isinstance(e.data, ViolationData)]
    assert {e.data.asset for e in fired} == {f"test.t{i:02d}" for i in range(N)}  # none missed
    assert all(e.data.drift_kind == DriftKind.COLUMN_ADDED for e in fired)
    by_key: dict[str, set[str]] = {}
    for e in fired:
        by_key.setdefault(e.data.correlation_key, set()).add(e.id)
    assert all(
        len(ids) == 1 for ids in by_key.values()
    )  # a replay re-emits the SAME id, never a new violation
    assert per_type == {
        "floe.contract.violation": N,
        "floe.contract.violation.resolved": N,
    }  # users see each once


async def _count(s: Settings, kind: type, n: int) -> bool:
    return len({e.id for e in await violations(s) if isinstance(e.data, kind)}) >= n


async def _rows(conn: asyncpg.Connection, n: int) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM violation_events") >= n)
