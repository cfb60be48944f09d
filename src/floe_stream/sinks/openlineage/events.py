"""Violation CloudEvents → OpenLineage RunEvents (spec 2-0-2). Pure: plain dicts, deterministic.

One OpenLineage *run* per violation episode:

* the episode opens (``floe.contract.violation``, first of its episode) → ``FAIL`` with the
  ``contractViolation`` run facet, the standard ``errorMessage`` run facet and, for quality failures, the
  ``dataQualityAssertions`` input facet on the affected dataset;
* the episode escalates (same episode, higher severity) → ``OTHER`` with the updated facet (a run has
  one terminal state; OTHER carries extra metadata);
* it recovers (``floe.contract.violation.resolved``) → ``COMPLETE``.

Every one of them carries the official ``test`` run facet (``TestRunFacet`` 1-0-1, shipped by openlineage-python
≥ 1.46): the check as one test execution, ``status`` ``fail`` while the episode is open and ``pass`` once it
recovered, ``severity`` in the facet's vocabulary (``error`` blocks, ``warn`` does not: floe's critical/error →
``error``, warning/info → ``warn``; floe's own level stays in ``params.floeSeverity``).

``runId`` = uuid5(correlation key, episode start), so FAIL/OTHER/COMPLETE share it and replays rebuild the
same events byte for byte. Job: namespace from settings, name ``<contract id>.<asset>.<check type>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.settings import OpenLineageSettings
from floe_stream.topics.violation import ResolvedData, ViolationCloudEvent, ViolationData

OL_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACET_ID = "https://floe-stream.github.io/spec/facets/1-0-0/ContractViolationRunFacet.json"
FACET_SCHEMA_URL = f"{FACET_ID}#/$defs/ContractViolationRunFacet"
DQA_SCHEMA_URL = (
    "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json"
    "#/$defs/DataQualityAssertionsDatasetFacet"
)
ERROR_SCHEMA_URL = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
TEST_RUN_SCHEMA_URL = "https://openlineage.io/spec/facets/1-0-1/TestRunFacet.json#/$defs/TestRunFacet"
TEST_SEVERITY = {"critical": "error", "error": "error", "warning": "warn", "info": "warn"}
"""floe severity → the TestRunFacet / DataQualityAssertions vocabulary ('error' blocks, 'warn' does not)."""
RUN_NAMESPACE = uuid.UUID("6f1c2d0e-8a0b-5b7e-9d43-0f1e5a7c3b21")

AssetLookup = Callable[[str], MonitoredAsset | None]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def run_id(correlation_key: str, episode_started_at: datetime) -> str:
    return str(uuid.uuid5(RUN_NAMESPACE, f"{correlation_key}|{iso(episode_started_at)}"))


def job_name(contract_id: str, asset: str, check_type: str) -> str:
    return f"{contract_id}.{asset}.{check_type}"


def dataset_ref(asset_id: str, asset: MonitoredAsset | None, cfg: OpenLineageSettings) -> tuple[str, str]:
    """(namespace, name) of the affected dataset, after OpenLineage naming where the contract says enough."""
    if cfg.dataset_namespace:
        return cfg.dataset_namespace, asset_id
    if asset is not None and asset.servers:
        s = asset.servers[0]
        table = asset.physical_name or asset.table
        if s.host:
            ns = f"{s.type}://{s.host}" + (f":{s.port}" if s.port else "")
            return ns, ".".join(p for p in (s.database, s.schema_name, table) if p)
        if s.url:
            return s.url, table
    return "floe", asset_id


def _facet(cfg: OpenLineageSettings, schema_url: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"_producer": cfg.producer, "_schemaURL": schema_url, **body}


def violation_facet(d: ViolationData, cfg: OpenLineageSettings) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contractName": d.contract_name,
        "contractVersion": d.contract_version,
        "contractId": d.contract_id,
        "asset": d.asset,
        "violationType": d.violation_type.value,
        "severity": d.severity.value,
        "message": d.message,
        "element": d.element,
        "expectedValue": d.expected_value,
        "actualValue": d.actual_value,
        "timestamp": iso(d.detected_at),
        "episodeStartedAt": iso(d.episode_started_at),
        "violationId": d.violation_id,
        "correlationKey": d.correlation_key,
    }
    if d.drift_kind is not None:
        body["driftKind"] = d.drift_kind.value
    if d.consumers:
        body["affectedConsumers"] = list(d.consumers)
    return _facet(cfg, FACET_SCHEMA_URL, body)


def _assertion(d: ViolationData, asset: MonitoredAsset | None) -> dict[str, Any]:
    a: dict[str, Any] = {"assertion": d.element or "quality", "success": False, "severity": d.severity.value}
    if asset is not None and d.element:
        rule = next((r for r in asset.quality_rules if r.name == d.element), None)
        col = (
            rule.column
            if rule is not None
            else (d.element if any(c.name == d.element for c in asset.columns) else None)
        )
        if rule is not None:
            a["assertion"] = rule.metric
            a["name"] = rule.name
        if col:
            a["column"] = col
    if d.expected_value is not None:
        a["expected"] = d.expected_value
    if d.actual_value is not None:
        a["actual"] = d.actual_value
    return a


def test_facet(
    d: ViolationData | ResolvedData, cfg: OpenLineageSettings, job: str, *, passed: bool
) -> dict[str, Any]:
    """The official ``TestRunFacet``: this check as one test execution with its outcome and severity."""
    test: dict[str, Any] = {
        "name": job,
        "status": "pass" if passed else "fail",
        "severity": TEST_SEVERITY[d.severity.value],
        "type": d.violation_type.value,
        "description": d.message,
        "params": {"floeSeverity": d.severity.value, "contractId": d.contract_id, "asset": d.asset},
    }
    if isinstance(d, ViolationData):
        if d.expected_value is not None:
            test["expected"] = d.expected_value
        if d.actual_value is not None:
            test["actual"] = d.actual_value
        if d.element:
            test["params"]["element"] = d.element
    return _facet(cfg, TEST_RUN_SCHEMA_URL, {"tests": [test]})


def _base(
    event_type: str,
    when: datetime,
    rid: str,
    contract_id: str,
    asset_id: str,
    check_type: str,
    cfg: OpenLineageSettings,
    lookup: AssetLookup,
) -> tuple[dict[str, Any], MonitoredAsset | None]:
    asset = lookup(asset_id)
    ns, name = dataset_ref(asset_id, asset, cfg)
    return {
        "eventType": event_type,
        "eventTime": iso(when),
        "producer": cfg.producer,
        "schemaURL": OL_SCHEMA_URL,
        "run": {"runId": rid, "facets": {}},
        "job": {
            "namespace": cfg.namespace,
            "name": job_name(contract_id, asset_id, check_type),
            "facets": {},
        },
        "inputs": [{"namespace": ns, "name": name, "facets": {}}],
        "outputs": [],
    }, asset


def lineage_events(
    ce: ViolationCloudEvent, cfg: OpenLineageSettings, lookup: AssetLookup
) -> list[dict[str, Any]]:
    """The OpenLineage event(s) for one violation CloudEvent (always exactly one today)."""
    d = ce.data
    if isinstance(d, ResolvedData):
        ev, _ = _base(
            "COMPLETE", d.resolved_at, run_id(d.correlation_key, d.opened_at),
            d.contract_id, d.asset, d.violation_type.value, cfg, lookup,
        )  # fmt: skip
        ev["run"]["facets"]["test"] = test_facet(d, cfg, ev["job"]["name"], passed=True)
        return [ev]
    opening = d.detected_at == d.episode_started_at
    ev, asset = _base(
        "FAIL" if opening else "OTHER", d.detected_at, run_id(d.correlation_key, d.episode_started_at),
        d.contract_id, d.asset, d.violation_type.value, cfg, lookup,
    )  # fmt: skip
    ev["run"]["facets"]["contractViolation"] = violation_facet(d, cfg)
    ev["run"]["facets"]["test"] = test_facet(d, cfg, ev["job"]["name"], passed=False)
    ev["run"]["facets"]["errorMessage"] = _facet(
        cfg,
        ERROR_SCHEMA_URL,
        {"message": f"[{d.severity.value}] {d.message}", "programmingLanguage": "python"},
    )
    if d.violation_type.value == "quality":
        ev["inputs"][0]["inputFacets"] = {
            "dataQualityAssertions": _facet(cfg, DQA_SCHEMA_URL, {"assertions": [_assertion(d, asset)]})
        }
    return [ev]
