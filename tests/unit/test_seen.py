"""``floe contracts coverage --seen`` reads its window as a stream: what it keeps is bounded whatever the topic
holds — per uncovered identifier a count (the first MAX_LISTED of them by name, later ones counted as "N more"),
never a record's value. The real broker path is tests/integration/test_unmonitored.py."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from click.testing import CliRunner

from floe_stream.cli import seen
from floe_stream.cli.main import main
from floe_stream.contracts.registry import ContractRegistry
from floe_stream.runtime.deployables.app import load_registry
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.materialization import MaterializationEvent
from tests.conftest import REPO

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> ContractRegistry:
    return load_registry(Settings(contracts_dir=REPO / "tests" / "fixtures" / "contracts", health_port=-1))


def mat(asset: str, pad: int = 0) -> bytes:
    labels = {
        f"pad{i}": "x" * 8_000 for i in range(pad // 8_000)
    }  # a label value is at most 8,192 characters
    ev = MaterializationEvent(asset=asset, materialized_at=T0, labels=labels)
    return ev.model_dump_json().encode()


def test_distinct_identifiers_beyond_the_cap_are_counted_not_listed(registry: ContractRegistry) -> None:
    cov = seen.Coverage(registry, max_listed=10, max_counted=20)
    for i in range(40):
        cov.add(TopicKey.MATERIALIZATIONS, "t", mat(f"shadow.t{i:02d}"), T0 + timedelta(seconds=i))
    for _ in range(3):  # a listed one, seen again: counted exactly
        cov.add(TopicKey.MATERIALIZATIONS, "t", mat("shadow.t00"), T0)
    cov.add(TopicKey.MATERIALIZATIONS, "t", mat("test.fast"), T0)  # covered: not in the gap
    gap = cov.gap()
    assert [(g.identifier, g.events) for g in gap.assets][:2] == [("shadow.t00", 4), ("shadow.t01", 1)]
    assert len(gap.assets) == 10
    assert (gap.more, gap.more_at_least, gap.more_events, gap.records) == (20, True, 30, 44)


class StreamConsumer:
    """aiokafka's consumer surface read_recent uses, serving ``n`` records of ``size`` bytes each, made as they
    are fetched (as a broker's fetches arrive): nothing but the reader can hold them."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size, self.next = n, size, 0
        self.tp = TopicPartition("seen.materializations", 0)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0} if topic == self.tp.topic else set()

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    async def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        return {tp: (SimpleNamespace(offset=0) if tp == self.tp else None) for tp in times}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.n if tp == self.tp else 0 for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int, max_records: int = 500
    ) -> dict[Any, list[Any]]:
        def records() -> Iterator[Any]:
            for offset in range(self.next, min(self.n, self.next + min(max_records, 50))):
                value = mat(f"shadow.busy{offset % 7}", pad=self.size)
                yield SimpleNamespace(offset=offset, value=value, timestamp=1_772_366_400_000)

        got = list(records())
        self.next += len(got)
        return {self.tp: got} if got else {}


async def test_a_busy_window_is_read_in_bounded_memory(
    registry: ContractRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 records of 16 KB (32 MB in all): the reader keeps none of them (it held every value before)."""
    monkeypatch.setattr(seen, "make_consumer", lambda *a, **kw: StreamConsumer(2_000, 16_000))
    s = Settings(kafka=KafkaSettings(topic_prefix="seen."), health_port=-1)
    tracemalloc.start()
    try:
        gap = await seen.seen_assets(s, registry, T0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"peak {peak:,} bytes"
    assert {g.identifier: g.events for g in gap.assets} == {
        f"shadow.busy{i}": 286 - (i >= 5) for i in range(7)
    }
    assert gap.records == 2_000 and not gap.truncated
    capped = await seen.seen_assets(s, registry, T0, max_records=500)  # read up to the cap, and said so
    assert capped.records == 500 and capped.truncated


def test_the_cli_says_what_it_did_not_list(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_seen(settings: Any, registry: Any, t: datetime) -> seen.SeenGap:
        return seen.SeenGap(
            [], more=1_234, more_at_least=True, more_events=5_000, records=200_000, truncated=True
        )

    monkeypatch.setattr(seen, "seen_assets", fake_seen)
    contracts = str(REPO / "tests" / "fixtures" / "contracts")
    out = CliRunner().invoke(main, ["contracts", "coverage", "--contracts", contracts, "--seen", "1h"]).output
    assert "at least 1,234 more dataset(s) without a contract, not listed (5,000 mention(s))" in out
    assert "read the window's first 200,000 input records only" in out


def test_a_dataset_taken_by_its_name_alone_is_listed_apart_with_the_asset_it_went_to() -> None:
    from tests.unit.test_resolution import POSTGRES, load, ol_event

    prod = load("prod", [{**POSTGRES[0], "host": "pg-prod"}], "orders")
    cov = seen.Coverage(ContractRegistry([prod]))
    for host in ("pg-prod", "PG-PROD", "pg-dev", "pg-dev"):  # the servers' host (any case), another one twice
        cov.add(
            TopicKey.MATERIALIZATIONS, "t", ol_event(f"postgres://{host}:5432", "postgres.sales.orders"), T0
        )
    cov.add(TopicKey.MATERIALIZATIONS, "t", mat("postgres.sales.orders"), T0)  # floe's own event: an asset id
    # another kind of namespace (Dagster's check-only reports name the table their own way): no other instance
    cov.add(TopicKey.MATERIALIZATIONS, "t", ol_event("dagster", "postgres.sales.orders"), T0)
    gap = cov.gap()
    assert gap.assets == []  # nothing uncovered
    [(dev)] = gap.by_name
    assert (dev.identifier, dev.events, dev.suggestions) == (
        "postgres://pg-dev:5432/postgres.sales.orders",
        2,
        (),
    )
    assert dev.by_name is not None and dev.by_name.asset_id == "postgres.sales.orders"
