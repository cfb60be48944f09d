"""Observability over the real parts: /metrics scraped by a real Prometheus, one trace from the producer's
commit through the processor to a sink running as a separate `floe` process, health endpoints flipping when
the database stops, impact context on the violation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from floe_stream.processors.engine import Engine
from floe_stream.processors.enrich import ViolationEnricher
from floe_stream.runtime.deployables.app import load_registry, postgres_sink, processor_service
from floe_stream.runtime.deployables.lineage_view import LineageView
from floe_stream.runtime.devtools.embedded import EmbeddedPostgres, free_port
from floe_stream.runtime.framework.database import migrate
from floe_stream.runtime.framework.kafka import make_producer
from floe_stream.settings import CustomMetric, DatabaseSettings, Settings, TelemetrySettings
from floe_stream.sinks.openlineage.validate import LineageSchemas
from floe_stream.telemetry import tracing
from floe_stream.telemetry.metrics import setup_metrics
from floe_stream.topics import (
    CatalogCommitEvent,
    IcebergField,
    IcebergSchema,
    MaterializationEvent,
    Severity,
    TopicKey,
    ViolationData,
)
from floe_stream.topics.catalog import topic_name
from floe_stream.topics.violation import encode_violation
from tests.conftest import OPENLINEAGE_SCHEMAS, REPO, wait_for
from tests.integration.helpers import Running, floe_env, publish, start_floe, stop_process, violations

pytestmark = [pytest.mark.kafka]

FIXTURES = REPO / "tests" / "fixtures" / "contracts"
GOOD = [
    IcebergField(id=1, name="id", required=True, type="long"),
    IcebergField(id=2, name="amount", type="double"),
    IcebergField(id=3, name="updated_at", type="timestamptz"),
]
DRIFTED = [GOOD[0], IcebergField(id=2, name="amount", type="string"), GOOD[2]]


def commit(seq: int, fields: list[IcebergField], table: str = "test.fast") -> CatalogCommitEvent:
    return CatalogCommitEvent(
        table=table, snapshot_id=1000 + seq, sequence_number=seq,
        timestamp_ms=int(datetime.now(UTC).timestamp() * 1000), operation="append", table_schema=IcebergSchema(fields=fields),
    )  # fmt: skip


def ol_event(job: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]) -> bytes:
    return json.dumps({
        "eventType": "START", "eventTime": datetime.now(UTC).isoformat(), "run": {"runId": "0190e4a4-1111-7000-8000-000000000001"},
        "job": {"namespace": "dbt", "name": job}, "producer": "https://github.com/dbt-labs/dbt-core",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "inputs": [{"namespace": n, "name": x} for n, x in inputs], "outputs": [{"namespace": n, "name": x} for n, x in outputs],
    }).encode()  # fmt: skip


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.get(f"http://127.0.0.1:{port}{path}", timeout=5)


async def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families((await get(port, "/metrics")).text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def total(m: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lab, v in m.get(name, []) if all(lab.get(k) == want for k, want in labels.items()))


@contextlib.asynccontextmanager
async def prometheus(tmp: Path, target_port: int):  # type: ignore[no-untyped-def]
    port = free_port()
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: floe, static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]}}]\n"
    )
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115
    proc = await asyncio.create_subprocess_exec(
        "prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}", stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        yield port
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        log.close()


async def prom_query(port: int, q: str) -> list[dict]:  # type: ignore[type-arg]
    with contextlib.suppress(httpx.HTTPError):
        r = await get(port, f"/api/v1/query?query={q}")
        if r.status_code == 200:
            return r.json()["data"]["result"]  # type: ignore[no-any-return]
    return []


@pytest.mark.slow
async def test_metrics_health_and_impact_context_of_a_running_processor(
    settings: Settings, tmp_path: Path
) -> None:
    setup_metrics("floe-test")
    s = settings.model_copy(update={
        "contracts_dir": FIXTURES, "health_port": 0, "health_host": "127.0.0.1",
        "telemetry": TelemetrySettings(lag_interval_s=0.2, custom_metrics=[
            CustomMetric(name="floe_test_rows_materialized", instrument="histogram", field="row_count", labels=["asset"]),
        ]),
    })  # fmt: skip
    processor = processor_service(s, load_registry(s))
    t_mat = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned and processor.health is not None, timeout=30)
        port = processor.health.port  # type: ignore[union-attr]
        # lineage first: a dbt job reads test.fast and writes marts.revenue
        await publish(
            s,
            TopicKey.MATERIALIZATIONS,
            [(None, ol_event("revenue_report", [("test", "fast")], [("marts", "revenue")]))],
        )
        await wait_for(lambda: processor.lineage.context.impact.lineage.readers, timeout=20)
        now = datetime.now(UTC)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.fast", MaterializationEvent(event_id="m1", asset="test.fast", materialized_at=now, row_count=42, job="dbt/build_fast")),
            ("test.fast", b"{broken"),
        ])  # fmt: skip
        await wait_for(lambda: "test.fast" in processor.lineage.context.impact.history, timeout=20)
        await publish(s, TopicKey.CATALOG_COMMITS, [("test.fast", commit(1, DRIFTED))])
        evs = await wait_for(lambda: _drift(s), timeout=30)

        # impact and context ride on the violation event
        d = evs[0].data
        assert d.consumers[:3] == ["finance-dashboard", "dbt/revenue_report", "marts/revenue"]
        assert d.context["impact.downstream_jobs"] == "dbt/revenue_report"
        assert "id=m1 rows=42 job=dbt/build_fast" in d.context["recent.materializations"]
        assert d.context["pattern"].startswith("first")

        def as_expected(m: dict[str, list[tuple[dict[str, str], float]]]) -> None:
            assert total(m, "floe_events_dead_lettered_total", topic=t_mat) >= 1
            assert total(m, "floe_events_processed_total", topic=t_mat) >= 3
            assert (
                total(
                    m,
                    "floe_contract_violations_total",
                    asset="test.fast",
                    type="schema_drift",
                    severity="error",
                )
                >= 1
            )
            assert total(m, "floe_contract_checks_total", check_type="schema_drift", status="fail") >= 1
            assert total(m, "floe_verdict_latency_seconds_count", topic=t_mat) >= 2
            assert (
                total(
                    m,
                    "floe_contract_check_duration_seconds_count",
                    contract="test-pipeline",
                    check_type="schema_drift",
                )
                >= 1
            )
            age = [
                v
                for lab, v in m.get("floe_contract_freshness_seconds", [])
                if lab.get("asset") == "test.fast"
            ]
            assert age
            assert 0 <= age[0] < 120
            assert any(lab.get("group") == processor.group_id for lab, _ in m.get("floe_consumer_lag", []))
            # the custom metric (FR-046)
            assert total(m, "floe_test_rows_materialized_sum", asset="test.fast") >= 42

        m: dict[str, list[tuple[dict[str, str], float]]] = {}

        async def metrics_ready() -> bool:
            # histograms and gauges are recorded at most once a second, and when the consumer is idle: the drift's
            # check duration may be recorded a flush after its violation is out, so the wait is for every value
            m.clear()
            m.update(await scrape(port))
            try:
                as_expected(m)
            except AssertionError:
                return False
            return True

        with contextlib.suppress(AssertionError):
            await wait_for(metrics_ready, timeout=20)
        as_expected(m)

        healthz, readyz = await get(port, "/healthz"), await get(port, "/readyz")
        assert healthz.status_code == 200
        assert readyz.status_code == 200
        assert readyz.json()["checks"] == {"kafka": True, "assigned": True}

        # a real Prometheus scrapes the endpoint
        async with prometheus(tmp_path, port) as prom_port:
            series = await wait_for(
                lambda: prom_query(
                    prom_port, 'floe_contract_violations_total{asset="test.fast",type="schema_drift"}'
                ),
                timeout=30,
            )
            assert float(series[0]["value"][1]) >= 1
            up = await wait_for(lambda: prom_query(prom_port, "up"), timeout=10)
            assert up[0]["value"][1] == "1"


async def _drift(s: Settings, asset: str = "test.fast") -> list:  # type: ignore[type-arg]
    return [
        e for e in await violations(s)
        if isinstance(e.data, ViolationData) and e.data.violation_type.value == "schema_drift" and e.data.asset == asset
    ]  # fmt: skip


async def test_upstream_violations_are_shared_through_the_lineage_topic(settings: Settings) -> None:
    s = settings.model_copy(update={"contracts_dir": FIXTURES})
    registry = load_registry(s)
    processor = processor_service(s, registry)
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned, timeout=30)
        # dbt/build_fast reads test.slow and writes test.fast
        await publish(
            s,
            TopicKey.MATERIALIZATIONS,
            [(None, ol_event("build_fast", [("test", "slow")], [("test", "fast")]))],
        )
        await wait_for(lambda: processor.lineage.context.impact.lineage.writers, timeout=20)
        slow_extra = [
            IcebergField(id=1, name="id", required=True, type="long"),
            IcebergField(id=9, name="x", type="int"),
        ]
        await publish(s, TopicKey.CATALOG_COMMITS, [("test.slow", commit(1, slow_extra, table="test.slow"))])
        await wait_for(lambda: _drift(s, "test.slow"), timeout=30)
        await publish(s, TopicKey.CATALOG_COMMITS, [("test.fast", commit(2, DRIFTED))])
        fast = (await wait_for(lambda: _drift(s, "test.fast"), timeout=30))[0].data
        assert fast.context["upstream.datasets"] == "test/slow"
        assert fast.context["upstream.violating"].startswith("test.slow: schema_drift warning since ")

        # another instance (here: a fresh view with no local state) learns edges and health from the topic
        other = ViolationEnricher(registry, Engine().state_of)
        view = LineageView(other)
        stub = SimpleNamespace(settings=s, _stopping=asyncio.Event())
        await view.start(stub)  # type: ignore[arg-type]
        try:
            await wait_for(
                lambda: other.impact.lineage.writers.get("test/fast") == {"dbt/build_fast"}, timeout=20
            )
            aid, issues = await wait_for(lambda: _remote(other, "test/slow"), timeout=20)
            assert aid == "test.slow"
            assert [(i.check_type, i.severity) for i in issues] == [("schema_drift", "warning")]
        finally:
            stub._stopping.set()
            await asyncio.wait_for(view._reader, 10)  # type: ignore[arg-type]


def _remote(view: ViolationEnricher, dataset: str):  # type: ignore[no-untyped-def]
    hit = view.upstream_health(dataset)
    return hit if hit is not None and hit[1] else None


@pytest.mark.postgres
async def test_one_trace_from_commit_through_processor_to_a_sink_process(
    settings: Settings, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"contracts_dir": FIXTURES})
    spans = InMemorySpanExporter()
    tracing.setup_tracing("floe-processor", TelemetrySettings(), exporter=spans)
    ol_file, span_file = tmp_path / "lineage.jsonl", tmp_path / "sink-spans.jsonl"
    env = floe_env(s, FLOE_OPENLINEAGE__TRANSPORT="file", FLOE_OPENLINEAGE__FILE=str(ol_file),
                   FLOE_TELEMETRY__TRACES_EXPORTER="file", FLOE_TELEMETRY__TRACES_FILE=str(span_file))  # fmt: skip
    sink = await start_floe(["run", "sink", "openlineage"], env, tmp_path / "sink.log")
    try:
        processor = processor_service(s, load_registry(s))
        pg_sink = postgres_sink(
            s
        )  # in this process: continues the trace through the sink runtime's record spans
        async with Running(processor, pg_sink):
            await wait_for(lambda: processor.ever_assigned and pg_sink.ever_assigned, timeout=30)
            # the orchestrator commits under its own span and passes the W3C context in a Kafka header
            with tracing.tracer().start_as_current_span("orchestrator.commit") as root:
                traceparent = tracing.current_traceparent()
            trace_id = f"{root.get_span_context().trace_id:032x}"
            producer = make_producer(s.kafka, linger_ms=0)
            await producer.start()
            try:
                await producer.send_and_wait(
                    topic_name(s.kafka.topic_prefix, TopicKey.CATALOG_COMMITS), commit(1, DRIFTED).model_dump_json().encode(),
                    key=b"test.fast", headers=[("traceparent", traceparent.encode())],  # type: ignore[union-attr]
                )  # fmt: skip
            finally:
                await producer.stop()
            sink_spans = await wait_for(lambda: _spans(span_file, "floe.sink.openlineage"), timeout=40)

            def stored_under_the_verdict() -> bool:  # this process's sink consumes the violation on its own
                done = spans.get_finished_spans()
                verdicts = {x.context.span_id for x in done if x.name == "floe.check schema_drift"}
                return any(
                    x.name == "floe.sink.sink-postgres"
                    and x.parent is not None
                    and x.parent.span_id in verdicts
                    for x in done
                )

            await wait_for(stored_under_the_verdict, timeout=40)

        check = next(x for x in spans.get_finished_spans() if x.name == "floe.check schema_drift")
        process = next(x for x in spans.get_finished_spans() if x.name.startswith("floe.process"))
        assert f"{check.context.trace_id:032x}" == f"{process.context.trace_id:032x}" == trace_id
        assert process.parent is not None
        assert process.parent.span_id == root.get_span_context().span_id
        assert check.parent is not None
        assert check.parent.span_id == process.context.span_id
        assert dict(check.attributes or {})["floe.violation.severity"] == Severity.ERROR.value
        # the sink, another OS process, continued the same trace under the verdict span
        assert {x["trace_id"] for x in sink_spans} == {trace_id}
        assert sink_spans[0]["parent_id"] == f"{check.context.span_id:016x}"
        assert sink_spans[0]["service"] == "floe-sink-openlineage"
        pg_spans = [x for x in spans.get_finished_spans() if x.name == "floe.sink.sink-postgres"]
        assert any(x.parent is not None and x.parent.span_id == check.context.span_id for x in pg_spans)
        assert {f"{x.context.trace_id:032x}" for x in pg_spans} == {trace_id}
        # the violation carries the context both as a Kafka header and as the CloudEvents extension
        ev = (await _drift(s))[0]
        assert ev.traceparent is not None
        assert ev.traceparent.split("-")[1] == trace_id
        # what the sink wrote validates against the official OpenLineage schema and our facet
        schemas = LineageSchemas(
            [
                *sorted(OPENLINEAGE_SCHEMAS.rglob("*.json")),
                REPO / "topics" / "ContractViolationRunFacet.json",
            ]
        )
        lines = [json.loads(x) for x in ol_file.read_text().splitlines()]
        assert lines
        assert all(schemas.errors(x) == [] for x in lines)
        assert lines[0]["eventType"] == "FAIL"
    finally:
        tracing.shutdown_tracing()
        assert await stop_process(sink) == 0, (tmp_path / "sink.log").read_text()[-2000:]


def _spans(path: Path, name: str) -> list[dict]:  # type: ignore[type-arg]
    if not path.exists():
        return []
    return [x for x in map(json.loads, path.read_text().splitlines()) if x["name"] == name]


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A private PostgreSQL server this test may stop (not under tmp_path: pytest's base dir is 0700 and the
    embedded server runs as its own user)."""
    base = Path(tempfile.mkdtemp(prefix="floe-health-"))
    base.chmod(0o755)
    pg = EmbeddedPostgres(base / "pg").start()
    try:
        yield pg
    finally:
        pg.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.postgres
@pytest.mark.slow
async def test_sink_health_flips_when_its_database_stops_and_offsets_are_kept(
    settings: Settings, own_postgres: EmbeddedPostgres
) -> None:
    pg = own_postgres
    conn = await asyncpg.connect(pg.dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    s = settings.model_copy(update={
        "database": DatabaseSettings(dsn=pg.dsn, connect_timeout_s=1), "health_port": 0, "health_host": "127.0.0.1",  # type: ignore[arg-type]
        # a liveness bound shorter than the retry's later gaps: retrying the write must still count as alive. Not
        # shorter: idle with its database down, the sink is alive if its consume loop turned within it, and 1 s
        # (1.22 s with the fetch's own wait) was missed once late in a whole `make test` (2026-12-07; /healthz's
        # body, which says which check failed, was not kept then: it is in the assertion now)
        "health_stall_s": 2.5,
    })  # fmt: skip
    sink = postgres_sink(s)
    async with Running(sink):
        await wait_for(lambda: sink.ever_assigned and sink.health is not None, timeout=30)
        port = sink.health.port  # type: ignore[union-attr]

        async def status() -> tuple[int, dict]:  # type: ignore[type-arg]
            r = await get(port, "/readyz")
            return r.status_code, r.json()

        assert (await status())[0] == 200
        await asyncio.to_thread(pg.stop)
        code, body = await wait_for(lambda: _down(status), timeout=20)
        assert code == 503
        assert body["status"] == "degraded"
        assert body["checks"]["database"] is False
        live = await get(port, "/healthz")
        assert live.status_code == 200, live.text  # alive, just not ready

        v = ViolationData(
            violation_id="v-health", correlation_key="test.fast/freshness", contract_id="test-pipeline",
            contract_name="test-pipeline", contract_version="1.2.0", asset="test.fast", violation_type="freshness",
            severity=Severity.ERROR, message="late", detected_at=datetime.now(UTC), episode_started_at=datetime.now(UTC),
        )  # type: ignore[arg-type]  # fmt: skip
        producer = make_producer(s.kafka, linger_ms=0)
        await producer.start()
        key, value, headers = encode_violation(v)
        await producer.send_and_wait(
            topic_name(s.kafka.topic_prefix, TopicKey.VIOLATIONS), value, key=key, headers=headers
        )
        await producer.stop()
        await wait_for(lambda: sink.sink.degraded, timeout=20)
        await wait_for(lambda: sink.paused, timeout=20)
        # its handler retries the write with a growing backoff (gaps beyond the 2.7 s bound) while the paused
        # consumer keeps polling: alive all along, a restart would not help
        loop = asyncio.get_running_loop()
        until = loop.time() + max(2 * sink.stall_bound_s(), BACKOFF_GAPS_S)
        answers = []
        while loop.time() < until:
            answers.append((await get(port, "/healthz")).status_code)
            await asyncio.sleep(0.2)
        assert set(answers) == {200}, answers
        assert sink.paused  # still retrying: the database is down
        assert all(
            [
                await sink.consumer.committed(tp) is None
                for tp in sink.assigned
                if tp.topic.endswith("violations")
            ]
        )

        await asyncio.to_thread(pg.start)
        await wait_for(lambda: _up(status), timeout=30)
        await wait_for(lambda: sink.sink.rows_written >= 1, timeout=30)
    conn = await asyncpg.connect(pg.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM violation_events WHERE event_id = 'v-health'") == 1
    finally:
        await conn.close()


# the retry's first gaps (0.2 + 0.4 + 0.8 + 1.6 + 3.2 s): the last one is longer than the sink's 2.72 s stall bound
BACKOFF_GAPS_S = 6.5


async def _down(status):  # type: ignore[no-untyped-def]
    with contextlib.suppress(httpx.HTTPError):
        code, body = await status()
        return (code, body) if code == 503 else None
    return None


async def _up(status):  # type: ignore[no-untyped-def]
    with contextlib.suppress(httpx.HTTPError):
        code, _ = await status()
        return code == 200
    return False


class OtlpCollector:
    """A loopback OTLP/HTTP receiver (protobuf): records metric names and span names it is sent."""

    def __init__(self) -> None:
        self.metrics: set[str] = set()
        self.spans: set[str] = set()
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        try:
            request = (await reader.readline()).decode()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length)
            if request.startswith("POST /v1/metrics"):
                m = ExportMetricsServiceRequest.FromString(body)
                for rm in m.resource_metrics:
                    for sm in rm.scope_metrics:
                        self.metrics.update(x.name for x in sm.metrics)
            elif request.startswith("POST /v1/traces"):
                t = ExportTraceServiceRequest.FromString(body)
                for rs in t.resource_spans:
                    for ss in rs.scope_spans:
                        self.spans.update(x.name for x in ss.spans)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
        finally:
            writer.close()


async def test_otlp_export_when_the_standard_variable_is_set(settings: Settings, tmp_path: Path) -> None:
    """`floe run processor` with OTEL_EXPORTER_OTLP_ENDPOINT pushes metrics and spans over OTLP/HTTP."""
    collector = OtlpCollector()
    server = await asyncio.start_server(collector.handle, "127.0.0.1", 0)
    collector.port = server.sockets[0].getsockname()[1]
    s = settings.model_copy(update={"contracts_dir": FIXTURES})
    env = floe_env(s, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}", OTEL_METRIC_EXPORT_INTERVAL="500",
                   OTEL_BSP_SCHEDULE_DELAY="200")  # fmt: skip
    proc = await start_floe(["run", "processor"], env, tmp_path / "processor.log")
    try:
        await publish(s, TopicKey.CATALOG_COMMITS, [("test.fast", commit(1, DRIFTED))])
        await wait_for(
            lambda: {"floe_events_processed", "floe_contract_violations"} <= collector.metrics, timeout=40
        )
        await wait_for(
            lambda: (
                {
                    "floe.process " + topic_name(s.kafka.topic_prefix, TopicKey.CATALOG_COMMITS),
                    "floe.check schema_drift",
                }
                <= collector.spans
            ),
            timeout=20,
        )
    finally:
        assert await stop_process(proc) == 0, (tmp_path / "processor.log").read_text()[-2000:]
        server.close()
