"""The lineage sink's one adapter over openlineage-python's transports: floe's shorthands build the library's
transports, errors are classified (HTTP 4xx other than 408/429 permanent), and a Kafka transport's delivery
reports are accounted for (the library only logs them). Real transports over real ends are in
tests/integration/test_openlineage.py; here a fake confluent-kafka producer scripts delivery reports."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from openlineage.client.transport import (
    ConsoleTransport,
    FileTransport,
    HttpTransport,
    KafkaConfig,
    KafkaTransport,
)
from pydantic import SecretStr

from floe_stream.settings import KafkaSettings, OpenLineageSettings
from floe_stream.sinks.openlineage.transport import (
    OpenLineageTransport,
    TransportError,
    build_transport,
    classify,
    kafka_producer_config,
    run_key,
)
from tests.conftest import rdkafka_threads, wait_for


def ev(i: int, job: str = "j") -> dict[str, Any]:
    return {
        "eventType": "FAIL",
        "eventTime": f"t{i}",
        "run": {"runId": f"r{i}"},
        "job": {"namespace": "ns", "name": job},
    }


def http_error(status: int) -> requests.HTTPError:
    resp = requests.Response()
    resp.status_code = status
    return requests.HTTPError(f"{status} Client Error", response=resp)


def test_http_4xx_is_permanent_except_408_and_429_everything_else_transient() -> None:
    assert classify(http_error(422)) == (True, "HTTP 422: 422 Client Error")
    assert classify(http_error(401))[0] is True
    for status in (408, 429, 500, 503):
        assert classify(http_error(status))[0] is False
    assert classify(requests.ConnectionError("refused"))[0] is False
    assert classify(TimeoutError("slow"))[0] is False
    outer = RuntimeError(
        "Transport <HttpTransport> failed to emit event"
    )  # a composite (continue_on_failure:
    outer.__cause__ = http_error(400)  # false) wraps its child's error
    assert classify(outer)[0] is True


def test_shorthands_build_openlineage_python_transports(tmp_path: Path) -> None:
    k = KafkaSettings(bootstrap_servers="127.0.0.1:9092")
    http = build_transport(
        OpenLineageSettings(
            transport="http", url="http://m:5000/lineage", api_key=SecretStr("s3cret"), timeout_s=2
        ),
        k,
    )
    assert isinstance(http, HttpTransport)
    assert http.url + http.endpoint == "http://m:5000/lineage/api/v1/lineage"  # below the URL's path
    assert http.timeout == 2
    assert http.config.auth.get_bearer() == "Bearer s3cret"
    assert http.config.retry["total"] == 0  # floe retries around it
    kafka = build_transport(OpenLineageSettings(transport="kafka", topic="lineage"), k)
    assert isinstance(kafka, KafkaTransport)
    assert kafka.topic == "lineage" and kafka.kafka_config.config["bootstrap.servers"] == "127.0.0.1:9092"
    kafka.producer = None  # nothing to flush
    f = build_transport(OpenLineageSettings(transport="file", file=tmp_path / "d" / "ol.jsonl"), k)
    assert isinstance(f, FileTransport) and f.config.append is True and (tmp_path / "d").is_dir()
    assert isinstance(build_transport(OpenLineageSettings(transport="console"), k), ConsoleTransport)


def test_kafka_security_settings_become_librdkafka_properties() -> None:
    k = KafkaSettings(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="floe",
        sasl_password=SecretStr("pw"),
        ssl_cafile=Path("/etc/ca.pem"),
    )
    conf = kafka_producer_config(k)
    assert conf["bootstrap.servers"] == "b1:9093,b2:9093"
    assert conf["security.protocol"] == "SASL_SSL"
    assert (conf["sasl.mechanism"], conf["sasl.username"], conf["sasl.password"]) == (
        "SCRAM-SHA-512",
        "floe",
        "pw",
    )
    assert conf["ssl.ca.location"] == "/etc/ca.pem" and "ssl.certificate.location" not in conf
    assert "sasl.mechanism" not in kafka_producer_config(KafkaSettings())


def test_run_key_is_the_libraries_key_for_dict_events() -> None:
    assert run_key(ev(0)) == "run:ns/j"
    parent = {
        "job": {"namespace": "p", "name": "parent"},
        "root": {"job": {"namespace": "r", "name": "root"}},
    }
    assert run_key({**ev(0), "run": {"runId": "x", "facets": {"parent": parent}}}) == "run:r/root"


class FakeProducer:
    """confluent-kafka's Producer surface KafkaTransport uses; delivery reports are served by flush."""

    def __init__(self, fail: set[int] = frozenset(), stuck_from: int | None = None) -> None:  # type: ignore[assignment]
        self.fail, self.stuck_from = fail, stuck_from
        self.queue: list[tuple[int, Any, Any]] = []
        self.sent: list[tuple[str | None, bytes]] = []
        self.produced = 0
        self.purged = 0
        self.flush_timeouts: list[float] = []

    def produce(self, topic: str, key: str | None, value: bytes, on_delivery: Any) -> None:
        self.queue.append((self.produced, (key, value), on_delivery))
        self.produced += 1

    def flush(self, timeout: float = -1) -> int:
        self.flush_timeouts.append(timeout)
        left = []
        for n, msg, cb in self.queue:
            if self.stuck_from is not None and n >= self.stuck_from:
                left.append((n, msg, cb))  # the broker is unreachable: no report
            elif n in self.fail:
                cb("KafkaError{code=MSG_SIZE_TOO_LARGE}", None)
            else:
                self.sent.append(msg)
                cb(None, None)
        self.queue = left
        return len(left)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged += len(self.queue)
        self.queue = []

    def poll(self, timeout: float = 0) -> int:
        return 0


class FakeKafkaTransport(KafkaTransport):
    """openlineage-python's KafkaTransport with the fake in place of confluent-kafka's Producer."""

    def _setup_producer(self, config: dict) -> None:  # type: ignore[type-arg]
        self.producer = None


async def kafka_adapter(producer: FakeProducer) -> OpenLineageTransport:
    t = FakeKafkaTransport(
        KafkaConfig(config={"bootstrap.servers": "127.0.0.1:1"}, topic="lineage", flush=True)
    )
    t.producer = producer  # type: ignore[assignment]
    a = OpenLineageTransport(OpenLineageSettings(transport="openlineage", timeout_s=0.5), KafkaSettings(), t)
    await a.start()
    return a


async def test_kafka_batch_is_delivered_with_one_bounded_flush_and_the_run_key() -> None:
    p = FakeProducer()
    a = await kafka_adapter(p)
    await a.emit([ev(0), ev(1, "k"), ev(2)])
    assert [k for k, _ in p.sent] == ["run:ns/j", "run:ns/k", "run:ns/j"]
    assert p.flush_timeouts == [0.5]  # one flush per batch, bounded by timeout_s (the library's is unbounded)


async def test_kafka_delivery_error_is_transient_and_counts_what_went_out_before_it() -> None:
    p = FakeProducer(fail={2})
    a = await kafka_adapter(p)
    with pytest.raises(TransportError) as err:
        await a.emit([ev(0), ev(1), ev(2), ev(3)])
    assert err.value.permanent is False and err.value.delivered == 2
    assert "MSG_SIZE_TOO_LARGE" in str(err.value) and "lineage" in str(err.value)


async def test_kafka_undelivered_after_the_flush_timeout_is_transient_and_the_queue_purged() -> None:
    p = FakeProducer(stuck_from=1)
    a = await kafka_adapter(p)
    with pytest.raises(TransportError) as err:
        await a.emit([ev(0), ev(1), ev(2)])
    assert err.value.permanent is False and err.value.delivered == 1
    assert "not delivered within the flush timeout" in str(err.value)
    assert p.purged == 2  # retried by floe, not delivered late as well
    p.stuck_from = None
    await a.emit([ev(1), ev(2)])  # the retry: only what had not gone out
    assert [json.loads(v)["run"]["runId"] for _, v in p.sent] == ["r0", "r1", "r2"]  # once each, in order


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc (Linux)")
async def test_close_ends_the_kafka_producer_while_the_adapter_lives_on() -> None:
    """close() flushes within timeout_s, drops what the broker never took and ends the producer: a sink closed
    while its Kafka was unreachable kept a confluent-kafka producer alive (the adapter held it), which went on
    reconnecting and logging long after. Here the broker is a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = rdkafka_threads()
    t = KafkaTransport(
        KafkaConfig(
            config={"bootstrap.servers": f"127.0.0.1:{port}", "reconnect.backoff.max.ms": 200},
            topic="lineage",
            flush=True,
        )
    )
    a = OpenLineageTransport(OpenLineageSettings(transport="openlineage", timeout_s=0.5), KafkaSettings(), t)
    await a.start()
    assert rdkafka_threads() > before
    with pytest.raises(TransportError) as err:
        await a.emit([ev(0)])
    assert err.value.permanent is False  # unreachable: transient, retried
    await a.close()
    assert await wait_for(lambda: rdkafka_threads() == before, timeout=10)
    with pytest.raises(TransportError, match="closed"):  # never a fresh, unwatched producer behind its back
        await a.emit([ev(1)])
    assert rdkafka_threads() == before
