"""A tick's sweep over many assets pauses between slices: the processor's event loop runs other tasks during
it (heartbeats, fetches, health), and the sweep's results are those of one uninterrupted pass."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.outputs import Emitted
from floe_stream.runtime.deployables.processor import ProcessorService
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.tick import Tick

TABLES = 60


class _Stub:
    """The commit strategy without a broker: every output record is kept."""

    def __init__(self) -> None:
        self.buf = Emitted()
        self.sent: list[Any] = []

    def buffer(self, partition: int) -> Emitted:
        return self.buf

    async def send(self) -> None:
        self.sent.extend(r.value for r in self.buf.records)
        for lane in self.buf.lanes.values():
            self.sent.extend(value for _, value, _ in lane)
        self.buf = Emitted()


def _service(tmp: Path, slice_: int) -> ProcessorService:
    tables = "\n".join(
        f"  - name: t{i:03d}\n    customProperties: [{{property: floe, value: {{asset: sweep.t{i:03d}}}}}]\n"
        "    properties: [{name: id, logicalType: integer}]"
        for i in range(TABLES)
    )
    root = tmp / "contracts"
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.odcs.yaml").write_text(
        "apiVersion: v3.1.0\nkind: DataContract\nid: sweep\nname: sweep\nversion: 1.0.0\nstatus: active\n"
        f"schema:\n{tables}\nslaProperties:\n  - property: latency\n    value: 1\n    unit: s\n"
    )
    s = Settings(kafka=KafkaSettings(topic_prefix="sweep."), contracts_dir=root, health_port=-1)
    svc = processor_service(s, load_registry(s))
    svc.pipeline.partitions = 1
    enc = svc.encoder
    enc.partitions = {enc.t_results: 1, enc.t_viol: 1, enc.t_dlq: 1}
    svc.strategy = _Stub()  # type: ignore[assignment]
    svc.pipeline.engine.tick_slice = slice_
    return svc


def _tick_batch(svc: ProcessorService) -> dict[TopicPartition, list[Any]]:
    """Two ticks 10 s apart: the first starts watching every asset, the second finds them all late (1 s SLA)."""
    topic = topic_name(svc.settings.kafka.topic_prefix, TopicKey.TICKS)
    now = int(time.time() * 1000) - 20_000
    recs = []
    for offset, at in enumerate((now, now + 10_000)):
        body = Tick(tick_time=datetime.fromtimestamp(at / 1000, UTC), interval_s=10, ticker_id="t")
        recs.append(
            ConsumerRecord(topic, 0, offset, at, 0, b"", body.model_dump_json().encode(), None, 0, 0, [])
        )
    return {TopicPartition(topic, 0): recs}


async def test_a_tick_over_many_assets_lets_other_tasks_run_and_evaluates_each_asset_once(
    tmp_path: Path,
) -> None:
    svc = _service(tmp_path, slice_=7)
    engine = svc.pipeline.engine
    seen: list[int] = []  # what another task saw of the sweep each time it ran: assets with a state so far
    done = asyncio.Event()

    async def neighbour() -> None:
        while not done.is_set():
            seen.append(len(engine.states))
            await asyncio.sleep(0)

    other = asyncio.create_task(neighbour())
    await asyncio.sleep(0)  # it runs once before the sweep starts
    batch = _tick_batch(svc)
    await svc.handle(batch)
    done.set()
    await other
    assert len(engine.states) == TABLES  # every asset of the partition evaluated
    assert any(0 < n < TABLES for n in seen)  # the other task ran in the middle of the sweep

    # the same tick swept in one go gives the same states and the same records out
    whole = _service(tmp_path / "whole", slice_=10**9)
    await whole.handle(batch)
    assert whole.pipeline.engine.states == engine.states
    sent = [sorted(s.strategy.sent) for s in (svc, whole)]  # type: ignore[attr-defined]
    assert sent[0] == sent[1]
    assert sum(b'"violation_type":"freshness"' in v for v in sent[0]) == TABLES  # every asset found late once
    await svc.handle(batch)  # delivered again: no effect twice
    assert len(svc.strategy.sent) == len(sent[0])  # type: ignore[attr-defined]
