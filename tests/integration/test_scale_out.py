"""Scale the processor out and in, 1 → 3 → 1 members of one group, while events flow: every violation is
raised once and resolved once (no miss, no repeat), each new member rebuilds its partitions' state from the
changelog, and the last member takes everything back. On each broker (ids tansu/kafka)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from floe_stream.runtime.deployables.app import load_registry, postgres_sink, processor_service
from floe_stream.runtime.deployables.processor import ProcessorService
from floe_stream.settings import Settings
from floe_stream.topics import ResolvedData, TopicKey, ViolationData
from tests.conftest import wait_for
from tests.integration.helpers import Running, publish, violations
from tests.integration.test_failover import N, commit, many_tables_contract

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]


async def _count(s: Settings, kind: type, n: int) -> bool:
    return len({e.id for e in await violations(s) if isinstance(e.data, kind)}) >= n


def _inputs(p: ProcessorService) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in p.assigned}


async def test_scale_out_to_three_and_back_to_one_misses_and_repeats_nothing(
    broker_settings: Settings, tmp_path: Path
) -> None:
    s = broker_settings.model_copy(update={"contracts_dir": many_tables_contract(tmp_path / "contracts")})
    half = N // 2
    a = processor_service(s, load_registry(s))
    async with Running(a, postgres_sink(s)):
        await wait_for(lambda: a.ever_assigned, timeout=30)
        # one member: the first half of the tables gain a column
        await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 1, extra=True) for i in range(half)])
        await wait_for(lambda: _count(s, ViolationData, half), timeout=30)
        everything = _inputs(a)
        assert {p for _, p in everything} == set(range(s.kafka.partitions))

        b, c = processor_service(s, load_registry(s)), processor_service(s, load_registry(s))
        async with Running(b, c):

            def spread() -> bool:
                parts = [_inputs(m) for m in (a, b, c)]
                disjoint = sum(len(x) for x in parts) == len(set().union(*parts))
                done = b.ever_assigned and c.ever_assigned  # set once their state is rebuilt
                return done and all(parts) and disjoint and set().union(*parts) == everything

            await wait_for(spread, timeout=60)  # three members, one partition each
            assert len(b.pipeline.asset_ids()) + len(c.pipeline.asset_ids()) > 0  # rebuilt from the changelog
            # three members: the second half gains a column, the first half loses it again
            await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 1, extra=True) for i in range(half, N)])
            await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 2, extra=False) for i in range(half)])
            await wait_for(lambda: _count(s, ViolationData, N), timeout=60)
            await wait_for(lambda: _count(s, ResolvedData, half), timeout=60)
        # back to one member: it takes every partition back (and their state) and resolves the rest
        await wait_for(lambda: _inputs(a) == everything, timeout=60)
        await publish(s, TopicKey.CATALOG_COMMITS, [commit(i, 2, extra=False) for i in range(half, N)])
        await wait_for(lambda: _count(s, ResolvedData, N), timeout=60)
        conn = await asyncpg.connect(s.database.dsn.get_secret_value())
        try:

            async def written() -> bool:
                return bool(await conn.fetchval("SELECT count(*) FROM violation_events") >= 2 * N)

            await wait_for(written, timeout=30)
            per_type = dict(await conn.fetch("SELECT event_type, count(*) FROM violation_events GROUP BY 1"))
        finally:
            await conn.close()
    evs = await violations(s)
    fired = [e for e in evs if isinstance(e.data, ViolationData)]
    resolved = [e for e in evs if isinstance(e.data, ResolvedData)]
    assert {e.data.asset for e in fired} == {f"test.t{i:02d}" for i in range(N)}  # none missed
    assert {e.data.asset for e in resolved} == {f"test.t{i:02d}" for i in range(N)}
    by_key: dict[str, set[str]] = {}
    for e in fired:
        by_key.setdefault(e.data.correlation_key, set()).add(e.id)
    assert all(len(ids) == 1 for ids in by_key.values())  # a replay re-emits the SAME id, never a new one
    assert per_type == {"floe.contract.violation": N, "floe.contract.violation.resolved": N}
