"""The Apache Kafka broker of the tests: installed by `make tools` (`floe tools install-kafka`), started in KRaft mode, stopped without a trace."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from bench import broker_gc

from floe_stream.runtime.devtools.embedded import (
    KAFKA_NOT_INSTALLED,
    KAFKA_SCRIPT_JAVA_OPTS,
    ApacheKafka,
    BrokerNotInstalled,
    EmbeddedKafka,
    kafka_version,
    make_broker,
    start_broker,
)


def _alive(pid: int) -> bool:
    res = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return res.returncode == 0 and not res.stdout.strip().startswith("Z")


def test_not_installed_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOE_KAFKA_HOME", str(tmp_path / "nothing-here"))
    with pytest.raises(BrokerNotInstalled) as err:
        make_broker("kafka")
    assert str(err.value) == KAFKA_NOT_INSTALLED
    assert KAFKA_NOT_INSTALLED.startswith("Apache Kafka is not installed: run `floe tools install-kafka`")
    with pytest.raises(BrokerNotInstalled):
        ApacheKafka().start()
    assert isinstance(make_broker("tansu"), EmbeddedKafka)  # Tansu needs no Java


def test_unknown_broker_kind() -> None:
    with pytest.raises(ValueError, match="tansu, kafka"):
        make_broker("redpanda")  # type: ignore[arg-type]


@pytest.mark.slow
async def test_a_broker_of_its_own_serves_and_stops_leaving_no_jvm(tmp_path: Path) -> None:
    """Its own broker (not the session's): produce, consume in a group, commit, idempotence, a transaction; stop."""
    with start_broker("kafka", log_file=tmp_path / "kafka.log") as broker:
        assert isinstance(broker, ApacheKafka) and broker.proc is not None
        pid, data_dir = broker.proc.pid, broker.data_dir
        assert broker.version == kafka_version()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("t", 3, 1)])
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
            await producer.start()
            try:
                for i in range(6):
                    await producer.send_and_wait("t", b"v%d" % i, key=b"k%d" % i)
            finally:
                await producer.stop()
            tx = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="floe-test-tx")
            await tx.start()
            try:
                async with tx.transaction():
                    await tx.send("t", b"in-a-transaction", key=b"k0")
            finally:
                await tx.stop()
            consumer = AIOKafkaConsumer(
                "t", bootstrap_servers=broker.bootstrap, group_id="g", auto_offset_reset="earliest",
                enable_auto_commit=False, isolation_level="read_committed",
                session_timeout_ms=2000, heartbeat_interval_ms=500,
            )  # fmt: skip
            await consumer.start()
            try:
                values: list[bytes] = []
                while len(values) < 7:
                    for recs in (await consumer.getmany(timeout_ms=2000)).values():
                        values.extend(r.value for r in recs if r.value is not None)
                await consumer.commit()
                committed = sum([await consumer.committed(TopicPartition("t", p)) or 0 for p in range(3)])
            finally:
                await consumer.stop()
            assert sorted(values) == sorted([b"v%d" % i for i in range(6)] + [b"in-a-transaction"])
            assert committed >= 7  # plus the transaction marker's offset
            assert ("g", "consumer") in await admin.list_consumer_groups()
        finally:
            await admin.close()
    assert broker.proc is None and not _alive(pid)
    assert data_dir is not None and not data_dir.exists()  # its temporary log dir is removed
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout  # noqa: ASYNC221
    assert str(data_dir) not in ps


@pytest.mark.slow
def test_kill_leaves_the_data_for_a_restart(tmp_path: Path) -> None:
    """Also the benchmarks' broker: the JVM of Kafka's start script (G1, 1 GB), its pauses in a GC log."""
    gc_log = tmp_path / "gc.log"
    broker = ApacheKafka(
        log_file=tmp_path / "kafka.log",
        data_dir=tmp_path / "data",
        java_opts=KAFKA_SCRIPT_JAVA_OPTS,
        gc_log=gc_log,
    )
    started = time.time() * 1000
    broker.start()
    try:
        assert broker.proc is not None
        pid = broker.proc.pid
        assert gc_log.read_text().splitlines()[0].endswith("Using G1")  # the options reached the server's JVM
        pauses = broker_gc.read(gc_log)  # its start-up collects (class metadata, the first young generation)
        assert pauses and all(started <= p.start_ms < p.end_ms <= time.time() * 1000 for p in pauses)
        broker.kill()
        assert not _alive(pid)
        assert (tmp_path / "data" / "log" / "meta.properties").exists()
        broker.start()  # same ports, same data: the storage format is skipped (--ignore-formatted)
        assert broker.proc is not None and broker.proc.pid != pid
    finally:
        broker.stop()
    assert os.path.exists(tmp_path / "data")  # a caller's data dir is the caller's
