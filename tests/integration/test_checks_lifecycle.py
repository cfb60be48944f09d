"""Contract lifecycle across restarts: a contract retired while no processor runs still has its open
episodes resolved (reason: contract retired) and its state deleted by the next processor."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe_stream.processors.model import AssetState
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.checks_runtime import publish_contracts, retire_contracts
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import Settings
from floe_stream.topics import ResolvedData, TopicKey, ViolationData
from tests.conftest import wait_for
from tests.integration.checks_support import TcpTarget, availability_contract, probing_loopback, write
from tests.integration.helpers import Running, read_all, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ASSET = "test.retired"


@pytest.mark.slow
async def test_contract_retired_while_down_is_resolved_by_the_next_processor(
    settings: Settings, tmp_path: Path
) -> None:
    tcp = TcpTarget()  # down
    (tmp_path / "empty").mkdir()
    s = probing_loopback(settings, contracts_dir=tmp_path / "empty")
    sock = f"  - server: db\n    type: custom\n    host: 127.0.0.1\n    port: {tcp.port}"
    await publish_contracts(
        s, [write(tmp_path / "pub", "r.odcs.yaml", availability_contract("retire-me", ASSET, sock))]
    )

    async def opened() -> list[ViolationData]:
        return [
            e.data for e in await violations(s) if isinstance(e.data, ViolationData) and e.data.asset == ASSET
        ]

    first = processor_service(s, load_registry(s))
    async with Running(first, Ticker(s, ticker_id="t1")):
        await wait_for(lambda: first.ever_assigned, timeout=30)
        assert first.registry.get(ASSET) is not None  # registered from the contracts topic at start-up
        episode = (await wait_for(opened, timeout=40))[0]

    await retire_contracts(s, ["retire-me"])  # nobody is running

    second = processor_service(s, load_registry(s))
    async with Running(second):
        await wait_for(lambda: second.ever_assigned, timeout=30)
        assert second.registry.get(ASSET) is None

        async def resolved() -> list[ResolvedData]:
            return [
                e.data
                for e in await violations(s)
                if isinstance(e.data, ResolvedData) and e.data.correlation_key == episode.correlation_key
            ]

        [done] = await wait_for(resolved, timeout=40)
        assert "contract retired" in done.message
        assert done.contract_id == "retire-me"  # the last known definition, from the contracts topic
        await wait_for(lambda: ASSET not in second.pipeline.asset_ids(), timeout=10)

        async def tombstoned() -> bool:
            last: AssetState | bool | None = False
            for r in await read_all(s, TopicKey.PROCESSOR_STATE):
                if r.key == ASSET.encode():
                    last = AssetState.model_validate_json(r.value) if r.value else None
            return last is None

        await wait_for(tombstoned, timeout=20)
