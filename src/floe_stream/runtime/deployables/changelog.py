"""The processor's state changelog (``processor-state``, compacted): per-asset states and a per-partition
checkpoint, in the input partition's number. Kafka I/O only; what a state is: processors/model.py.

* :meth:`Changelog.records`: the state changes of a commit as records — each asset's state under its id
  (an empty value: the tombstone of a retired asset), then each fed partition's checkpoint;
* :meth:`Changelog.read`: a new owner reads its partitions' states and checkpoints back from the beginning.
"""

from __future__ import annotations

import asyncio
import gc

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from floe_stream.processors.model import AssetState, PartitionCheckpoint, StateDecoder
from floe_stream.processors.pipeline import StateChanges
from floe_stream.runtime.framework.kafka import OutRecord, make_consumer
from floe_stream.settings import KafkaSettings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.partitioning import partition_for

CHECKPOINT_KEY = b"__checkpoint__"
STATE_CHUNK = 32  # states serialized between two yields to the event loop


class Changelog:
    def __init__(self, cfg: KafkaSettings) -> None:
        self.cfg = cfg
        self.topic = topic_name(cfg.topic_prefix, TopicKey.PROCESSOR_STATE)
        self.partitions = 1
        """The inputs' partition count (co-partitioned with them; set once known)."""

    async def records(self, changes: StateChanges) -> list[OutRecord]:
        """The changes as changelog records: the states (and tombstones) of a partition before its checkpoint."""
        n = self.partitions
        records: list[OutRecord] = []
        for i, st in enumerate(changes.states):
            if i and i % STATE_CHUNK == 0:
                await asyncio.sleep(0)  # large states serialize in slices: the next batches are not held up
            aid = st.asset_id
            records.append(
                OutRecord(self.topic, partition_for(aid, n), aid.encode(), st.model_dump_json().encode())
            )
        records.extend(OutRecord(self.topic, partition_for(a, n), a.encode(), b"") for a in changes.retired)
        records.extend(
            OutRecord(self.topic, cp.partition, CHECKPOINT_KEY, cp.model_dump_json().encode())
            for cp in changes.checkpoints
        )
        return records

    async def read(self, partitions: list[int]) -> tuple[list[AssetState], list[PartitionCheckpoint], int]:
        """The states and checkpoints of ``partitions`` (latest per key), and how many records were read."""
        reader: AIOKafkaConsumer = make_consumer(self.cfg, group_id=None, fetch_max_wait_ms=10)
        await reader.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            end = await reader.end_offsets(tps)
            latest: dict[bytes, bytes] = {}  # key → its last value: each state is decoded once
            checkpoints: dict[int, PartitionCheckpoint] = {}
            remaining = {tp for tp in tps if end[tp] > 0}
            read = 0
            while remaining:
                batch = await reader.getmany(timeout_ms=200, max_records=5000)
                for tp, recs in batch.items():
                    read += len(recs)
                    for rec in recs:
                        if rec.key == CHECKPOINT_KEY:
                            if rec.value:
                                checkpoints[tp.partition] = PartitionCheckpoint.model_validate_json(rec.value)
                        elif rec.key is not None:
                            if rec.value:
                                latest[rec.key] = rec.value
                            else:
                                latest.pop(rec.key, None)
                for tp in list(remaining):
                    if await reader.position(tp) >= end[tp]:
                        remaining.discard(tp)
            decoder = StateDecoder()  # compact states, read fast (bench/state.py, restart)
            gc.disable()  # ~100,000 long-lived objects: no collection passes over them while they are made
            try:
                states = [decoder.decode(value) for value in latest.values()]
            finally:
                gc.enable()
            return states, list(checkpoints.values()), read
        finally:
            await reader.stop()
