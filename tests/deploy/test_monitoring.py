"""floe alerts on itself: the chart's PrometheusRule and Grafana dashboard.

* ``promtool check rules`` and ``promtool test rules`` (tests/deploy/rules/*.test.yaml: series in, alerts out)
  over the rules the chart renders with its default values;
* thresholds, durations, severities and extra labels come from values; each rule can be turned off;
* every metric a rule or a dashboard panel reads is one floe defines (its instruments in the source; a real
  /metrics scrape is tests/integration/test_self_monitoring.py);
* the dashboard ConfigMap carries the Grafana sidecar's label and the chart's dashboard JSON, off by default.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.monitoring import (
    DASHBOARD,
    RULES_TESTS,
    alert_rules,
    as_promql,
    dashboard_panels,
    dashboard_queries,
    exported_metric_names,
    load_dashboard,
    metric_names_in,
    promtool,
    render_rules,
    rules_of,
    without_annotations,
)
from tests.deploy.support import NAMESPACE, RELEASE, Helm

ALERTS = {
    "FloeConsumerLagGrowing",
    "FloeTicksNotProcessed",
    "FloeDeadLetters",
    "FloeSinkPaused",
    "FloeCheckErrors",
    "FloeAlertChannelFailing",
    "FloeBackgroundTaskDown",
}


def run_promtool(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


def test_rules_pass_promtool_check_and_unit_tests(helm: Helm, tmp_path: Path) -> None:
    rules = render_rules(helm)
    assert {r["alert"] for r in alert_rules(rules)} == ALERTS
    (tmp_path / "floe-rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "floe-rules-bare.yaml").write_text(yaml.safe_dump(without_annotations(rules)))
    tests = sorted(RULES_TESTS.glob("*.test.yaml"))
    for t in tests:
        shutil.copy(t, tmp_path / t.name)
    out = run_promtool("check", "rules", "floe-rules.yaml", cwd=tmp_path)  # syntax, annotation templates
    assert f"SUCCESS: {len(ALERTS)} rules found" in out
    out = run_promtool("test", "rules", *(t.name for t in tests), cwd=tmp_path)
    assert out.count("SUCCESS") == len(tests), out
    # every alert has a case where it fires
    cases = "\n".join(t.read_text() for t in tests)
    assert all(f"alertname: {a}" in cases for a in ALERTS)


def test_thresholds_labels_and_switches_come_from_values(helm: Helm) -> None:
    rules = render_rules(
        helm,
        "prometheusRule.deadLetters.window=15m",
        "prometheusRule.sinkPaused.for=30m",
        "prometheusRule.sinkPaused.severity=page",
        "prometheusRule.alertLabels.team=data-platform",
        "prometheusRule.backgroundTaskDown.enabled=false",
        'prometheusRule.selector=cluster="eu-1"',
        "kafka.groupPrefix=acme",
        "kafka.topicPrefix=acme.",
        set_json=(
            "prometheusRule.deadLetters.ratePerSecond=2.5",
            "prometheusRule.consumerLagGrowing.minLag=50000",
            "prometheusRule.ticksNotProcessed.intervals=5",
            "settings.tickIntervalSeconds=4",
        ),
    )
    by_name = {r["alert"]: r for r in alert_rules(rules)}
    assert "FloeBackgroundTaskDown" not in by_name
    dead = by_name["FloeDeadLetters"]
    assert "[15m]" in dead["expr"] and dead["expr"].rstrip().endswith("> 2.5")
    assert by_name["FloeSinkPaused"]["for"] == "30m"
    assert by_name["FloeSinkPaused"]["labels"] == {"severity": "page", "team": "data-platform"}
    assert "> 50000" in by_name["FloeConsumerLagGrowing"]["expr"]
    ticks = by_name["FloeTicksNotProcessed"]["expr"]
    assert ticks.rstrip().endswith("> 20")  # 5 intervals of 4 s
    assert 'group="acme-processor", topic="acme.ticks"' in ticks
    assert "group=~`acme-.+`" in by_name["FloeConsumerLagGrowing"]["expr"]
    for r in by_name.values():
        assert 'cluster="eu-1"' in r["expr"] and "namespace=" not in r["expr"]
    # by default a series must come from the release's namespace (the label ServiceMonitor targets carry)
    default = render_rules(helm)
    assert all(f'namespace="{NAMESPACE}"' in r["expr"] for r in alert_rules(default))


def test_rule_resource_is_optional_and_labelled(helm: Helm, rendered: Any) -> None:
    assert not rendered("defaults.yaml").kind("PrometheusRule")
    (rule,) = rendered("everything-on.yaml").kind("PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = rules_of(rendered("everything-on.yaml"))
    assert all(r["labels"]["team"] == "data-platform" for r in alert_rules(rules))


def test_every_rule_reads_metrics_floe_exports(helm: Helm) -> None:
    exported = exported_metric_names()
    assert {"floe_consumer_lag", "floe_events_dead_lettered_total", "floe_background_task_up"} <= exported
    for r in alert_rules(render_rules(helm)):
        names = metric_names_in(r["expr"])
        assert names, f"{r['alert']} reads no floe metric: {r['expr']}"
        assert names <= exported, f"{r['alert']} reads metrics floe does not export: {names - exported}"


def test_dashboard_queries_read_metrics_floe_exports(tmp_path: Path) -> None:
    dashboard = load_dashboard()
    exported = exported_metric_names()
    queries = list(dashboard_queries(dashboard))
    assert len(queries) >= 10
    for where, expr in queries:
        names = metric_names_in(expr)
        assert names, f"{where} reads no floe metric: {expr}"
        assert names <= exported, f"{where} reads metrics floe does not export: {names - exported}"
    # each query is valid PromQL (promtool parses it as a recording rule), Grafana's variables interpolated
    check = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": as_promql(q)} for i, (_, q) in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(check))
    run_promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    # what the issue asks the dashboard to show
    shown = set().union(*(metric_names_in(q) for _, q in queries))
    assert {
        "floe_consumer_lag",  # lag
        "floe_events_processed_total",  # throughput
        "floe_sink_records_written_total",
        "floe_contract_violations_total",  # violations by severity
        "floe_events_dead_lettered_total",  # DLQ
        "floe_alert_delivery_failures_total",  # delivery failures
    } <= shown
    severity = [q for _, q in queries if "floe_contract_violations_total" in q and "by (severity)" in q]
    assert severity, "no panel shows violations by severity"
    for panel in dashboard_panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_configmap_for_the_grafana_sidecar(rendered: Any) -> None:
    assert not [
        c for c in rendered("defaults.yaml").kind("ConfigMap") if "dashboard" in c["metadata"]["name"]
    ]
    (cm,) = [
        c for c in rendered("everything-on.yaml").kind("ConfigMap") if "dashboard" in c["metadata"]["name"]
    ]
    assert cm["metadata"]["name"] == f"{RELEASE}-dashboard"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Data platform"}
    assert cm["metadata"]["namespace"] == "monitoring"
    assert load_dashboard(cm["data"]["floe-stream.json"]) == load_dashboard(DASHBOARD.read_text())
