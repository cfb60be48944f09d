"""Contracts published only on the contracts topic (``floe contracts publish``) reach the sinks that use contracts,
over the real broker: the alerts sink routes by their ``floe.alerts`` and follows changes and retirements while
it runs (the first owner of an asset keeps it, a poison record is skipped); the OpenLineage sink names their
datasets' namespaces. No contracts directory in these tests: the topic is the only source."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from floe_stream.runtime.deployables.app import alerts_sink, openlineage_sink
from floe_stream.runtime.deployables.checks_runtime import publish_contracts, retire_contracts
from floe_stream.settings import OpenLineageSettings, Settings
from floe_stream.sinks.alerts.config import parse_config
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.enums import CheckType
from tests.conftest import wait_for
from tests.integration import test_openlineage as ol
from tests.integration.helpers import Running, publish
from tests.integration.receivers import HttpReceiver, publish_violations
from tests.unit.alert_factory import violation

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ASSET = "shop.orders"


def contract(cid: str, channels: list[str], *, version: str = "1.0.0", host: str | None = None) -> str:
    """One table (asset ``shop.orders``) with a 1 h freshness SLA, its alerts routed to ``channels``."""
    servers = (
        f"servers:\n  - server: db\n    type: postgres\n    host: {host}\n    port: 5432\n    database: shop\n"
        "    schema: public\n"
        if host
        else ""
    )
    alerts = f", alerts: {{channels: [{', '.join(channels)}]}}" if channels else ""
    return (
        f"apiVersion: v3.1.0\nkind: DataContract\nid: {cid}\nname: {cid}\nversion: {version}\nstatus: active\n"
        f"{servers}schema:\n  - name: orders\n    customProperties:\n      - property: floe\n"
        f"        value: {{asset: {ASSET}{alerts}}}\nslaProperties:\n  - property: latency\n    value: 1\n"
        "    unit: h\n"
    )


async def publish_contract(settings: Settings, path: Path, text: str) -> None:
    await asyncio.to_thread(path.write_text, text)
    await publish_contracts(settings, [path])


def topic_only(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"contracts_dir": tmp_path / "no-contracts-dir"})


async def test_alerts_follow_a_topic_only_contracts_routing_its_changes_and_its_retirement(
    settings: Settings, tmp_path: Path
) -> None:
    s = topic_only(settings, tmp_path)
    await publish_contract(s, tmp_path / "owner.yaml", contract("owner", ["team"]))
    # claims the owner's asset: refused while the owner has it, registered once the owner retires
    await publish_contract(s, tmp_path / "intruder.yaml", contract("intruder", ["intruder"]))
    await publish(s, TopicKey.CONTRACTS, [("poison", b"kind: DataContract\n")])
    names = ("default", "team", "oncall", "intruder")
    async with (
        HttpReceiver() as default,
        HttpReceiver() as team,
        HttpReceiver() as oncall,
        HttpReceiver() as intruder,
    ):
        hooks = dict(zip(names, (default, team, oncall, intruder), strict=True))
        cfg = parse_config({
            "policy": {"group_wait_s": 0},
            "channels": [{"name": n, "type": "webhook", "url": h.url} for n, h in hooks.items()],
            "routes": [{"channel": "default"}],
        })  # fmt: skip
        sink = alerts_sink(s, cfg)  # no directory: what it routes by comes from the topic alone
        first = violation(ASSET, contract="owner", check=CheckType.SCHEMA_DRIFT, at=datetime.now(UTC))
        second = violation(ASSET, contract="owner", check=CheckType.FRESHNESS, at=datetime.now(UTC))
        third = violation(ASSET, contract="intruder", check=CheckType.QUALITY, at=datetime.now(UTC))
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            feed = sink.sink.contracts
            assert feed is not None and feed.contracts_refused == 2  # the intruder and the poison record
            await publish_violations(s, [first])
            await wait_for(lambda: len(team.requests) == 1, timeout=30)

            # the owner changes its route: applied while running
            await publish_contract(s, tmp_path / "owner.yaml", contract("owner", ["oncall"], version="1.1.0"))
            await wait_for(lambda: (a := sink.sink.registry.get(ASSET)) and a.contract_version == "1.1.0")
            await publish_violations(s, [second])
            await wait_for(lambda: len(oncall.requests) == 1, timeout=30)

            # the owner retires: the waiting contract gets the asset, and its route
            await retire_contracts(s, ["owner"])
            await wait_for(lambda: (a := sink.sink.registry.get(ASSET)) and a.contract_id == "intruder")
            await publish_violations(s, [third])
            await wait_for(lambda: len(intruder.requests) == 1, timeout=30)
        got = {n: [r.json()["id"] for r in h.requests] for n, h in hooks.items()}
    assert got == {
        "default": [],
        "team": [first.violation_id],
        "oncall": [second.violation_id],
        "intruder": [third.violation_id],
    }


async def test_openlineage_names_the_dataset_namespace_of_a_topic_only_contract(
    settings: Settings, tmp_path: Path
) -> None:
    s = topic_only(settings, tmp_path)
    await publish_contract(s, tmp_path / "shop.yaml", contract("shop", [], host="shop-db.internal"))
    async with ol.marquez() as m:
        s = s.model_copy(
            update={"openlineage": OpenLineageSettings(transport="http", url=f"http://127.0.0.1:{m.port}")}
        )
        sink = openlineage_sink(s)  # no directory: the namespace comes from the topic's contract alone
        async with Running(sink):
            await wait_for(lambda: sink.ever_assigned, timeout=30)
            await ol.publish_violations(s, [ol.violation(ASSET, CheckType.FRESHNESS, contract_id="shop")])
            await wait_for(lambda: len(m.events) == 1, timeout=30)
    dataset = m.events[0]["inputs"][0]
    assert (dataset["namespace"], dataset["name"]) == (
        "postgres://shop-db.internal:5432",
        "shop.public.orders",
    )
