"""Test the pipeline in a few lines: input records in a list → outputs in a list (as bytewax's testing helpers).

    inputs = Inputs(partitions=3)
    out = run(pipeline(registry, partitions=3), [
        inputs(TopicKey.MATERIALIZATIONS, MaterializationEvent(asset="test.fast", materialized_at=T0), at=T0),
        inputs(TopicKey.MATERIALIZATIONS, b"{broken", at=T0),
    ])
    assert [d.reason for d in out.dead_letters] == ["not JSON: ..."]

No broker, no database: records are plain values, the outputs those the processor would write (check
results, violations, dead letters, forwards) before they are encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from floe_stream.contracts.registry import ContractRegistry
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import Outputs, Record
from floe_stream.processors.pipeline import Pipeline
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.partitioning import partition_for


@dataclass(frozen=True, slots=True)
class InputRecord:
    """An input record (what aiokafka's ``ConsumerRecord`` carries that the pipeline reads)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


class Inputs:
    """Makes input records: topic named after its kind, offsets counted per (topic, partition), partition
    from the key by floe's key rule unless given."""

    def __init__(self, partitions: int = 1, prefix: str = "") -> None:
        self.partitions = partitions
        self.prefix = prefix
        self._offsets: dict[tuple[str, int], int] = {}

    def __call__(
        self,
        kind: TopicKey,
        value: BaseModel | bytes,
        *,
        at: datetime,
        key: str | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[TopicKey, InputRecord]:
        topic = f"{self.prefix}{kind.value}"
        if partition is None:
            partition = partition_for(key, self.partitions) if key else 0
        offset = self._offsets[(topic, partition)] = self._offsets.get((topic, partition), -1) + 1
        data = value if isinstance(value, bytes) else value.model_dump_json(by_alias=True).encode()
        return kind, InputRecord(
            topic,
            partition,
            offset,
            int(at.timestamp() * 1000),
            key.encode() if key else None,
            data,
            tuple(headers),
        )


def pipeline(registry: ContractRegistry, partitions: int = 1, **kw: Any) -> Pipeline:
    """A pipeline over a fresh engine (no clock skew allowance: "now" is exactly the record's time)."""
    return Pipeline(Engine(clock_skew_s=0.0), registry, partitions, **kw)


def run(p: Pipeline, records: Iterable[tuple[TopicKey, Record]]) -> Outputs:
    """Feed the records one at a time, in order; every output of every record, in order."""
    out = Outputs()

    def collect(_: Record | None, o: Outputs) -> None:
        out.extend(o)

    for kind, rec in records:
        p.feed(kind, rec.partition, [rec], collect)
    return out
