"""Helpers for tests over the real broker: publish models, read topics from the beginning, run services."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import BaseModel

from floe_stream.settings import Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.violation import ViolationCloudEvent, decode_violation


async def publish(
    settings: Settings,
    key: TopicKey,
    items: Sequence[tuple[str | None, BaseModel | bytes]],
    *,
    partition: int | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        topic = topic_name(settings.kafka.topic_prefix, key)
        for k, item in items:
            value = item if isinstance(item, bytes) else item.model_dump_json(by_alias=True).encode()
            await producer.send_and_wait(topic, value, key=k.encode() if k else None, partition=partition)
    finally:
        await producer.stop()


async def read_all(
    settings: Settings, key: TopicKey, *, settle_s: float = 0.3
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in the topic (all partitions), in partition/offset order."""
    topic = topic_name(settings.kafka.topic_prefix, key)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                out.extend(recs)
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def violations(settings: Settings) -> list[ViolationCloudEvent]:
    return [
        decode_violation(dict(r.headers), r.key, r.value)
        for r in await read_all(settings, TopicKey.VIOLATIONS)
    ]


class Running:
    """Run an in-process service (``run()`` / ``request_stop()``) as a task for the duration of a block."""

    def __init__(self, *services: Any) -> None:
        self.services = services
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Running:
        self.tasks = [asyncio.create_task(s.run()) for s in self.services]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for s in self.services:
            s.request_stop()
        done = await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 30)
        for r in done:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r


def floe_env(settings: Settings, **extra: str) -> dict[str, str]:
    k = settings.kafka
    env = {
        **os.environ,
        "FLOE_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
        "FLOE_KAFKA__TOPIC_PREFIX": k.topic_prefix,
        "FLOE_KAFKA__GROUP_PREFIX": k.group_prefix,
        "FLOE_KAFKA__SESSION_TIMEOUT_MS": str(k.session_timeout_ms),
        "FLOE_KAFKA__HEARTBEAT_INTERVAL_MS": str(k.heartbeat_interval_ms),
        "FLOE_KAFKA__FETCH_MAX_WAIT_MS": str(k.fetch_max_wait_ms),
        "FLOE_KAFKA__LINGER_MS": str(k.linger_ms),
        "FLOE_KAFKA__ENABLE_IDEMPOTENCE": str(k.enable_idempotence).lower(),
        "FLOE_KAFKA__PROCESSING_GUARANTEE": k.processing_guarantee,
        "FLOE_DATABASE__DSN": settings.database.dsn.get_secret_value(),
        "FLOE_CONTRACTS_DIR": str(settings.contracts_dir),
        "FLOE_TICK_INTERVAL_S": str(settings.tick_interval_s),
        "FLOE_CLOCK_SKEW_S": str(settings.clock_skew_s),
        "FLOE_HEALTH_PORT": "0",
        "FLOE_LOG_FORMAT": "text",
    }
    if settings.checks.probe_allow:  # tests whose probe targets listen on loopback
        env["FLOE_CHECKS__PROBE_ALLOW"] = json.dumps(settings.checks.probe_allow)
    env.update(extra)
    return env


async def start_floe(args: Sequence[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    floe = Path(sys.executable).parent / "floe"
    fh = open(log, "ab")  # noqa: SIM115
    return await asyncio.create_subprocess_exec(str(floe), *args, env=env, stdout=fh, stderr=fh)


async def stop_process(proc: asyncio.subprocess.Process, timeout: float = 20) -> int:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    return await asyncio.wait_for(proc.wait(), timeout)


def use_openlineage_yml(monkeypatch: Any, folder: Path, text: str) -> Path:
    """Configure openlineage-python the way its users do: ``folder/openlineage.yml`` named by
    ``OPENLINEAGE_CONFIG``, and no ``OPENLINEAGE_URL`` / ``OPENLINEAGE_DISABLED`` of the environment in the way."""
    cfg = folder / "openlineage.yml"
    cfg.write_text(text)
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(cfg))
    for var in ("OPENLINEAGE_URL", "OPENLINEAGE_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    return cfg
