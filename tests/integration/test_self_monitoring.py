"""floe alerts on itself, for real: the chart's rendered PrometheusRule loaded into a real Prometheus that scrapes a
running processor and alerts sink (Tansu, PostgreSQL).

The processor gets a bad record twice (dead letters), a materialization breaching its SLA (a violation), one
check that raises (``error`` results), and no ticker; the alerts sink's only channel refuses every
notification. Prometheus (scrape and evaluation every second, the rules rendered by helm with short windows
and a 1 s tick interval) must load every rule without an evaluation error and fire FloeDeadLetters,
FloeTicksNotProcessed, FloeCheckErrors and FloeAlertChannelFailing with the labels that name the culprit; and
one scrape of /metrics must carry every metric the rules and the dashboard read.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.checks.freshness import FreshnessCheck
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation
from floe_stream.runtime.deployables.app import alerts_sink, load_registry, processor_service
from floe_stream.runtime.devtools.embedded import free_port
from floe_stream.settings import Settings, TelemetrySettings
from floe_stream.sinks.alerts.config import parse_config
from floe_stream.telemetry.metrics import setup_metrics
from floe_stream.topics import MaterializationEvent, TopicKey
from floe_stream.topics.enums import CheckType
from tests.conftest import REPO, wait_for
from tests.deploy.monitoring import (
    alert_rules,
    dashboard_queries,
    load_dashboard,
    metric_names_in,
    render_rules,
)
from tests.deploy.support import HELM_BIN, Helm
from tests.integration.helpers import Running, publish
from tests.integration.receivers import HttpReceiver, Reply

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.tool]  # helm and Prometheus (`make tools`)

FIXTURES = REPO / "tests" / "fixtures" / "contracts"


class BrokenDrift:
    """A schema-drift check with a bug: every evaluation is an ``error`` check result."""

    check_type = CheckType.SCHEMA_DRIFT

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        raise RuntimeError("bug in the drift check")

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        return []

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        return []


@contextlib.asynccontextmanager
async def prometheus(tmp: Path, target_port: int, rules: dict[str, Any]) -> AsyncIterator[int]:
    if not HELM_BIN.exists():
        pytest.fail("helm binary missing: run `make tools`", pytrace=False)
    port = free_port()
    (tmp / "rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp / "rules.yaml")],
                "scrape_configs": [
                    {"job_name": "floe", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
                ],
            }
        )
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
        await asyncio.wait_for(proc.wait(), 20)
        log.close()


async def api(port: int, path: str) -> Any:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5)
        if r.status_code == 200:
            return r.json()["data"]
    return None


async def scrape_names(port: int) -> set[str]:
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


async def test_the_charts_rules_fire_over_a_running_floe(settings: Settings, tmp_path: Path) -> None:
    setup_metrics("floe-test")
    s = settings.model_copy(update={
        "contracts_dir": FIXTURES, "health_port": 0, "health_host": "127.0.0.1", "tick_interval_s": 1.0,
        "telemetry": TelemetrySettings(lag_interval_s=0.2),
    })  # fmt: skip
    helm = Helm(HELM_BIN, tmp_path / "helm-home")
    rules = render_rules(
        helm,
        f"kafka.groupPrefix={s.kafka.group_prefix}",
        f"kafka.topicPrefix={s.kafka.topic_prefix}",
        'prometheusRule.selector=job="floe"',  # what this Prometheus's scrape gives the series
        "prometheusRule.ticksNotProcessed.for=0s",
        "prometheusRule.deadLetters.window=1m",
        "prometheusRule.deadLetters.for=0s",
        set_json=("settings.tickIntervalSeconds=1", "prometheusRule.deadLetters.ratePerSecond=0"),
    )
    engine = Engine(checks=(FreshnessCheck(), BrokenDrift()), clock_skew_s=s.clock_skew_s)
    processor = processor_service(s, load_registry(s), engine=engine)
    channel = f"hook-{uuid.uuid4().hex[:8]}"  # its own name: the metrics registry is shared by the process
    async with HttpReceiver(handler=lambda r: Reply(400, b"no such hook")) as hook:
        cfg = parse_config({
            "policy": {"group_wait_s": 0},
            "channels": [{"name": channel, "type": "webhook", "url": hook.url, "max_attempts": 1}],
            "routes": [{"channel": channel}],
        })  # fmt: skip
        sink = alerts_sink(s, cfg)
        async with Running(processor, sink):
            await wait_for(lambda: processor.ever_assigned and sink.ever_assigned, timeout=60)
            assert processor.health is not None
            port = processor.health.port  # one process: its /metrics shows the sink's instruments too
            async with prometheus(tmp_path, port, rules) as prom:
                await publish(s, TopicKey.MATERIALIZATIONS, [("test.fast", b"{broken")])

                # the counter's first sample is its birth; a second dead letter is an increase rate() sees. This
                # test's own series: earlier tests' dead letters are in the process's registry too
                t_mat = f"{s.kafka.topic_prefix}materializations"

                async def dead_letter_scraped() -> bool:
                    data = await api(prom, f'query?query=floe_events_dead_lettered_total{{topic="{t_mat}"}}')
                    return bool(data and data["result"])

                await wait_for(dead_letter_scraped, timeout=60)
                old = datetime.now(UTC) - timedelta(
                    hours=2
                )  # test.slow: 1 h latency SLA, breached on arrival
                await publish(s, TopicKey.MATERIALIZATIONS, [
                    ("test.fast", b"{broken again"),
                    ("test.slow", MaterializationEvent(event_id="e-1", asset="test.slow", materialized_at=old)),
                ])  # fmt: skip

                want = {
                    "FloeDeadLetters",
                    "FloeTicksNotProcessed",
                    "FloeCheckErrors",
                    "FloeAlertChannelFailing",
                }
                alerts: dict[str, list[dict[str, str]]] = {}

                def as_expected() -> None:
                    assert want <= set(alerts), alerts
                    assert {a["topic"] for a in alerts["FloeDeadLetters"]} == {t_mat}
                    ticks = alerts["FloeTicksNotProcessed"]
                    assert {a["topic"] for a in ticks} == {f"{s.kafka.topic_prefix}ticks"}
                    assert {a["partition"] for a in ticks} == {str(p) for p in range(s.kafka.partitions)}
                    # the metrics registry is the process's: earlier tests' channels and checks may fire beside
                    # ours, so the wait below is for this test's own, not merely for each alert's name
                    assert "schema_drift" in {a["check_type"] for a in alerts["FloeCheckErrors"]}
                    assert channel in {a["channel"] for a in alerts["FloeAlertChannelFailing"]}

                async def firing() -> bool:
                    data = await api(prom, "alerts")
                    alerts.clear()
                    for a in data["alerts"] if data else []:
                        if a["state"] == "firing":
                            alerts.setdefault(a["labels"]["alertname"], []).append(a["labels"])
                    try:
                        as_expected()
                    except AssertionError:
                        return False
                    return True

                with contextlib.suppress(AssertionError):
                    await wait_for(firing, timeout=90)
                as_expected()

                groups = await api(prom, "rules")
                loaded = [r for g in groups["groups"] for r in g["rules"]]
                assert {r["name"] for r in loaded} == {r["alert"] for r in alert_rules(rules)}
                assert all(r["health"] == "ok" for r in loaded), [
                    (r["name"], r.get("lastError")) for r in loaded
                ]

            # every metric the rules and the dashboard read is on /metrics
            read = set().union(*(metric_names_in(r["expr"]) for r in alert_rules(rules)))
            read |= set().union(*(metric_names_in(q) for _, q in dashboard_queries(load_dashboard())))
            names = await scrape_names(port)
            assert read <= names, f"not exported by a running floe: {sorted(read - names)}"
