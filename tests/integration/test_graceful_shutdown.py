"""Every deployable, started as a real `floe run …` process, exits cleanly on SIGTERM within the grace
period, with its offsets committed (Kubernetes sends SIGTERM, then SIGKILL after the grace period)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from aiokafka.structs import TopicPartition

from floe_stream.runtime.devtools.embedded import free_port
from floe_stream.settings import Settings
from floe_stream.topics import MaterializationEvent, TopicKey, topic_name
from tests.conftest import REPO, wait_for
from tests.integration.helpers import floe_env, publish, read_all, start_floe

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

# the grace period the chart gives a pod (terminationGracePeriodSeconds): the bound a deployable must stop within
GRACE_S = float(
    yaml.safe_load((REPO / "helm" / "floe-stream" / "values.yaml").read_text())[
        "terminationGracePeriodSeconds"
    ]
)

# deployable → (command, consumer group suffix or None, input topics whose offsets must be committed)
DEPLOYABLES: dict[str, tuple[list[str], str | None, list[TopicKey]]] = {
    "processor": (["run", "processor"], "processor", [TopicKey.MATERIALIZATIONS]),
    "sink-postgres": (["run", "sink", "postgres"], "sink-postgres", [TopicKey.CHECK_RESULTS]),
    "ticker": (["run", "ticker"], None, []),
    "sink-alerts": (["run", "sink", "alerts"], "sink-alerts", [TopicKey.VIOLATIONS]),
    "sink-openlineage": (["run", "sink", "openlineage"], "sink-openlineage", [TopicKey.VIOLATIONS]),
    "source-iceberg": (["run", "source", "iceberg"], None, []),
}


def _extra_env(name: str, tmp_path: Path) -> dict[str, str]:
    if name == "sink-alerts":  # one webhook channel to a port nobody listens on: deliveries fail fast
        cfg = tmp_path / "alerts.yaml"
        cfg.write_text(
            "channels:\n  - {name: hook, type: webhook, url: 'http://127.0.0.1:9/hook', timeout_s: 1, max_attempts: 1}\n"
            "routes:\n  - {channels: [hook]}\n"
        )
        return {"FLOE_ALERTS__CONFIG_FILE": str(cfg)}
    if name == "sink-openlineage":
        return {"FLOE_OPENLINEAGE__TRANSPORT": "file", "FLOE_OPENLINEAGE__FILE": str(tmp_path / "ol.jsonl")}
    if name == "source-iceberg":
        props = {
            "type": "sql",
            "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
            "warehouse": f"file://{tmp_path}",
        }
        return {
            "FLOE_SOURCES__ICEBERG__PROPERTIES": json.dumps(props),
            "FLOE_SOURCES__ICEBERG__POLL_INTERVAL_S": "0.5",
        }
    return {}


async def _ready(port: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient() as c:
            return (await c.get(f"http://127.0.0.1:{port}/readyz", timeout=1)).status_code == 200
    return False


async def _committed(s: Settings, group: str, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    """The group's committed offsets (OffsetFetch through a consumer that never joins the group)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


@pytest.mark.parametrize("name", list(DEPLOYABLES))
async def test_sigterm_exits_cleanly_with_offsets_committed(
    name: str, broker_settings: Settings, tmp_path: Path
) -> None:
    """Every deployable on each broker (ids tansu/kafka)."""
    args, group, inputs = DEPLOYABLES[name]
    s = broker_settings.model_copy(update={"contracts_dir": REPO / "tests" / "fixtures" / "contracts"})
    port = free_port()
    env = floe_env(s, FLOE_HEALTH_PORT=str(port), **_extra_env(name, tmp_path))
    proc = await start_floe(args, env, tmp_path / f"{name}.log")
    try:
        await wait_for(lambda: _ready(port), timeout=40)
        if name == "processor":
            now = datetime.now(UTC)
            await publish(s, TopicKey.MATERIALIZATIONS, [
                ("test.fast", MaterializationEvent(event_id=f"e{i}", asset="test.fast", materialized_at=now)) for i in range(20)
            ])  # fmt: skip
            await wait_for(lambda: _n(s, TopicKey.CHECK_RESULTS, 20), timeout=30)
        elif name == "sink-postgres":
            from floe_stream.topics import CheckResult, CheckStatus, CheckType

            await publish(s, TopicKey.CHECK_RESULTS, [
                ("test.fast", CheckResult(result_id=f"r{i}", asset="test.fast", contract_id="c", contract_version="1",
                                          check_type=CheckType.FRESHNESS, status=CheckStatus.PASS, evaluated_at=datetime.now(UTC)))
                for i in range(20)
            ])  # fmt: skip
        elif name in ("sink-alerts", "sink-openlineage"):
            from floe_stream.topics.violation import encode_violation
            from tests.unit.alert_factory import violation

            key, value, headers = encode_violation(violation(asset="test.fast"))
            await publish_raw(s, TopicKey.VIOLATIONS, key, value, headers)
        elif name == "ticker":
            await wait_for(lambda: _n(s, TopicKey.TICKS, 1), timeout=20)
        if group is not None:
            topics = [topic_name(s.kafka.topic_prefix, k) for k in inputs]
            full = s.kafka.group_prefix + "-" + group
            # wait until the work is done (committed while running), then stop
            await wait_for(lambda: _all_committed(s, full, topics), timeout=30)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await _wait(proc, GRACE_S)
        took = time.monotonic() - t0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = (tmp_path / f"{name}.log").read_text()
    assert code == 0, f"{name} exited with {code} after SIGTERM:\n{log[-2000:]}"
    assert took < GRACE_S
    assert "stop requested" in log
    assert "Traceback" not in log, log[-2000:]
    assert "on the uvloop event loop" in log  # settings.event_loop=auto: signals and the stop, on uvloop
    if group is not None:
        assert await _all_committed(
            s, s.kafka.group_prefix + "-" + group, [topic_name(s.kafka.topic_prefix, k) for k in inputs]
        )


async def _wait(proc: asyncio.subprocess.Process, grace_s: float) -> int:
    return await asyncio.wait_for(proc.wait(), grace_s)


async def publish_raw(
    s: Settings, key: TopicKey, k: bytes, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic_name(s.kafka.topic_prefix, key), value, key=k, headers=headers)
    finally:
        await producer.stop()


async def _n(s: Settings, key: TopicKey, n: int) -> bool:
    return len(await read_all(s, key)) >= n


async def _all_committed(s: Settings, group: str, topics: list[str]) -> bool:
    from aiokafka import AIOKafkaConsumer

    tps = [TopicPartition(t, p) for t in topics for p in range(s.kafka.partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka.bootstrap_servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    committed = await _committed(s, group, tps)
    return all(ends[tp] == 0 or committed.get(tp) == ends[tp] for tp in tps)
