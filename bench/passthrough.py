"""A minimal processor in its own process, for the latency baseline of bench/processor.py: a raw aiokafka
consumer-group member that forwards every record of one topic to another (same key, same partition,
the input timestamp in a header), validating and re-serializing the materialization like the throughput
baseline, one ``send_batch`` per partition and batch, commit per batch after the acknowledgements.

    python -m bench.passthrough BOOTSTRAP SRC DST GROUP FETCH_MAX_WAIT_MS [IDLE_TOPIC,...]

It runs until SIGTERM. Whatever latency it adds over one hop is the price of a second hop through the
broker plus the least any processor does; the floe processor's figure is compared with both. With idle
topics it also subscribes to them (nothing is produced there): every fetch request and response then lists
their partitions too, as the processor's do for its quiet inputs (catalog commits, ticks, probe results).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from floe_stream.topics import MaterializationEvent


async def main(bootstrap: str, src: str, dst: str, group: str, fetch_wait_ms: int, idle: list[str]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=0, acks="all", enable_idempotence=False
    )
    consumer = AIOKafkaConsumer(
        src,
        *idle,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=fetch_wait_ms,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=1000)
            futures = []
            for tp, recs in batch.items():
                out = producer.create_batch()
                for r in recs:
                    body = MaterializationEvent.model_validate_json(r.value).model_dump_json().encode()
                    headers = [("in-ts", str(r.timestamp).encode())]
                    if out.append(key=r.key, value=body, timestamp=None, headers=headers) is None:
                        out.close()
                        futures.append(await producer.send_batch(out, dst, partition=tp.partition))
                        out = producer.create_batch()
                        out.append(key=r.key, value=body, timestamp=None, headers=headers)
                out.close()
                futures.append(await producer.send_batch(out, dst, partition=tp.partition))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batch.items()})
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    idle = [t for t in (sys.argv[6] if len(sys.argv) > 6 else "").split(",") if t]
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), idle))
