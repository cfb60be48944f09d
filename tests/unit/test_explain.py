"""`floe contracts explain`: every check with resolved thresholds and overrides; every SLA property and
quality rule either mapped to its check or explained."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from floe_stream.cli.main import main
from floe_stream.contracts.loader import load_contract
from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.explain import explain_contract
from floe_stream.processors.policy import CheckPolicy
from floe_stream.processors.registry import CHECKS
from floe_stream.telemetry.metrics import BatchMetrics, instrument_checks, instruments

EXAMPLES = Path(__file__).parents[2] / "src" / "floe_stream" / "examples" / "contracts"

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: every-sla
name: every-sla
version: 2.0.0
status: active
customProperties:
  - property: floe
    value:
      consumers: [bi]
      timezone: Europe/Berlin
      checks: {fail_after: 3, warning_at: 0.95}
schema:
  - name: orders
    properties:
      - name: updated_at
        logicalType: timestamp
        quality:
          - type: sql
            query: SELECT 1
            mustBe: 1
slaProperties:
  - {property: latency, value: 6, unit: h, element: orders.updated_at}
  - {property: availability, value: 99.9%}
  - {property: frequency, value: 1, scheduler: cron, schedule: "0 6 * * *"}
  - {property: timeOfAvailability, value: "09:00"}
  - {property: generalAvailability, value: "2020-01-01"}
  - {property: endOfSupport, value: "2030-01-01"}
  - {property: endOfLife, value: "2031-01-01"}
  - {property: retention, value: 3, unit: y}
  - {property: timeToDetect, value: 5, unit: m}
  - {property: timeToNotify, value: 10, unit: m}
  - {property: timeToRepair, value: 4, unit: h}
  - {property: throughput, value: 100}
  - {property: errorRate, value: 0.01}
"""


def test_every_property_is_mapped_or_explained(tmp_path: Path) -> None:
    path = tmp_path / "c.odcs.yaml"
    path.write_text(CONTRACT)
    (asset,) = explain_contract(load_contract(path), CheckPolicy(), lambda a: "no probe target: not pinged")[
        "assets"
    ]
    assert asset["overrides"] == {"fail_after": 3, "warning_at": 0.95}
    assert "opens after 3 failing evaluation(s)" in asset["episodes"]
    checks = {c["check"]: c for c in asset["checks"]}
    assert set(checks) == {
        "freshness",
        "schema_drift",
        "availability",
        "frequency",
        "time_of_availability",
        "lifecycle",
        "retention",
    }
    assert checks["freshness"]["evaluates"] == "latency 6h"
    assert "WARNING at 95%" in checks["freshness"]["severity"]
    assert checks["frequency"]["evaluates"] == "cron '0 6 * * *' (Europe/Berlin)"
    assert checks["time_of_availability"]["evaluates"] == "by 09:00 Europe/Berlin daily"
    assert "no probe target" in checks["availability"]["measured"]
    props = {p["property"]: p for p in asset["sla_properties"]}
    assert len(props) == 13
    assert all(p["evaluated_by"] or p["detail"].startswith("not evaluated") for p in props.values())
    assert {k for k, p in props.items() if p["evaluated_by"] is None} == {"throughput", "errorRate"}
    assert props["retention"]["evaluated_by"] == "retention"
    assert props["timeToRepair"]["evaluated_by"] == "floe sla report --response"
    assert any("'sql' quality checks are not evaluated" in w for w in asset["not_evaluated"])


def test_cli_text_and_json(tmp_path: Path) -> None:
    path = tmp_path / "c.odcs.yaml"
    path.write_text(CONTRACT)
    text = CliRunner().invoke(main, ["contracts", "explain", str(path)])
    assert text.exit_code == 0, text.output
    assert (
        "sla throughput = 100 → not evaluated: floe sees updates, not the serving system's request rate"
        in text.output
    )
    assert (
        "check lifecycle: generalAvailability 2020-01-01, endOfSupport 2030-01-01, endOfLife 2031-01-01"
        in text.output
    )
    as_json = CliRunner().invoke(main, ["contracts", "explain", "--format", "json", str(tmp_path)])
    assert json.loads(as_json.output)[0]["assets"][0]["asset"] == "orders"


def _assets(tmp_path: Path) -> list[MonitoredAsset]:
    """The shipped example contracts' assets and this file's every-SLA contract's."""
    path = tmp_path / "c.odcs.yaml"
    path.write_text(CONTRACT)
    paths = [*sorted(EXAMPLES.glob("*.odcs.yaml")), path]
    return [a for p in paths for a in load_contract(p).assets]


def test_every_registered_check_explains_itself(tmp_path: Path) -> None:
    """A check in registry.py is shown by `floe contracts explain` from its own explain(), under its own
    name, for an asset it applies to, and not at all for an asset without anything it judges."""
    assets = _assets(tmp_path)
    bare = MonitoredAsset(
        asset_id="bare", contract_id="c", contract_name="c", contract_version="1", table="t"
    )
    for check in CHECKS:
        entries = [e for a in assets for e in check.explain(a, ExplainContext(CheckPolicy()))]
        assert entries, f"{type(check).__name__} explains itself for none of the example assets"
        for e in entries:
            assert set(e) == {"check", "evaluates", "measured", "severity"}
            assert e["check"] == check.check_type.value
            assert e["evaluates"] and e["measured"] and e["severity"]
        assert check.explain(bare, ExplainContext(CheckPolicy())) == []


def test_explain_is_in_registry_order_and_instrumented_checks_explain_the_same(tmp_path: Path) -> None:
    path = tmp_path / "c.odcs.yaml"
    path.write_text(CONTRACT)
    contract = load_contract(path)
    plain = explain_contract(contract, CheckPolicy())
    order = [c.check_type.value for c in CHECKS]
    (asset,) = plain["assets"]
    shown = [c["check"] for c in asset["checks"]]
    assert shown == sorted(shown, key=order.index)
    assert shown.index("retention") < shown.index("lifecycle")  # as before checks explained themselves
    instrumented = instrument_checks(CHECKS, BatchMetrics(lambda a: "every-sla", instruments()))
    assert explain_contract(contract, CheckPolicy(), checks=instrumented) == plain
