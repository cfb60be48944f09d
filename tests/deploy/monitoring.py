"""What the chart's alerting rules and Grafana dashboard query, and which metrics floe defines.

Shared by tests/deploy/test_monitoring.py (promtool, names against the source) and
tests/integration/test_self_monitoring.py (a real Prometheus evaluating the rules over a running floe).
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import CHART, REPO, Helm, Manifests

SRC = REPO / "src" / "floe_stream"
DASHBOARD = CHART / "dashboards" / "floe-stream.json"
RULES_TESTS = Path(__file__).parent / "rules"

_CREATE = {
    "create_counter": "counter",
    "create_observable_counter": "counter",
    "create_histogram": "histogram",
    "create_gauge": "gauge",
    "create_observable_gauge": "gauge",
    "create_up_down_counter": "gauge",
    "create_observable_up_down_counter": "gauge",
}
_UNIT_SUFFIX = {None: "", "1": "", "s": "_seconds"}
METRIC = re.compile(r"\bfloe_[a-zA-Z0-9_]*[a-zA-Z0-9]")


def _constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for t in node.targets:
                if isinstance(t, ast.Name) and isinstance(node.value.value, str):
                    out[t.id] = node.value.value
    return out


@cache
def exported_metric_names() -> frozenset[str]:
    """The Prometheus names of every instrument floe creates with a fixed name (custom metrics are the user's):
    an OTel counter ``x`` is ``x_total``, a histogram ``x`` (unit s) ``x_seconds_bucket/_sum/_count``, a gauge
    ``x`` itself (unit s: ``_seconds`` appended unless already there)."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        consts = _constants(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            kind = _CREATE.get(node.func.attr)
            if kind is None or not node.args:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
            elif isinstance(arg, ast.Name) and arg.id in consts:
                name = consts[arg.id]
            else:
                continue  # a name chosen at run time (custom metrics)
            unit_kw = next((k.value for k in node.keywords if k.arg == "unit"), None)
            unit = unit_kw.value if isinstance(unit_kw, ast.Constant) else None
            assert unit in _UNIT_SUFFIX, (
                f"{path}: unit {unit!r} of {name}: teach the test its Prometheus suffix"
            )
            suffix = _UNIT_SUFFIX[unit]
            if suffix and not name.endswith(suffix):
                name += suffix
            if kind == "counter":
                names.add(f"{name}_total")
            elif kind == "histogram":
                names.update({name, f"{name}_bucket", f"{name}_sum", f"{name}_count"})
            else:
                names.add(name)
    return frozenset(names)


def metric_names_in(expr: str) -> set[str]:
    """floe metric names a PromQL expression reads (label values such as group="floe-processor" or
    topic="floe.ticks" never match: floe's prefixes end with '-' or '.', a metric name with '_')."""
    without_strings = re.sub(r'"[^"]*"|`[^`]*`', '""', expr)
    return set(METRIC.findall(without_strings))


def rules_of(manifests: Manifests) -> dict[str, Any]:
    """The rule file (``groups: ...``) of the rendered PrometheusRule: what the operator hands Prometheus."""
    (rule,) = manifests.kind("PrometheusRule")
    return copy.deepcopy(rule["spec"])  # type: ignore[no-any-return]


def alert_rules(rules: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in rules["groups"]:
        yield from group["rules"]


def without_annotations(rules: dict[str, Any]) -> dict[str, Any]:
    bare = copy.deepcopy(rules)
    for r in alert_rules(bare):
        r.pop("annotations", None)
    return bare


def render_rules(helm: Helm, *set_: str, set_json: tuple[str, ...] = ()) -> dict[str, Any]:
    return rules_of(helm.render(set_=["prometheusRule.enabled=true", *set_], set_json=set_json))


def load_dashboard(text: str | None = None) -> dict[str, Any]:
    return json.loads(text if text is not None else DASHBOARD.read_text())  # type: ignore[no-any-return]


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels of a collapsed row


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]
            yield f"variable {var['name']}", q["query"] if isinstance(q, dict) else q


GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$namespace": ".*"}


def as_promql(query: str) -> str:
    """A Grafana query as Prometheus would receive it (variables interpolated; label_values() is Grafana's own
    function over a series selector: the selector is what Prometheus sees)."""
    m = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
    if m:
        query = m.group(1)
    for var, value in GRAFANA_VARIABLES.items():
        query = query.replace(var, value)
    assert "$" not in query, f"an uninterpolated Grafana variable in {query!r}"
    return query


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool missing: `make tools` installs it (Debian package prometheus)", pytrace=False)
    return found
