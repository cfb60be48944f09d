"""Violation CloudEvents → OpenLineage RunEvents (spec 2-0-2). Pure, deterministic: built with openlineage-python's
typed models (``event_v2``, the generated facets; floe's ``contractViolation`` facet in the same shape), handed
to the transports as plain dicts (``Serde.to_dict``: absent optional fields are omitted, not null).

One OpenLineage *run* per violation episode:

* the episode opens (``floe.contract.violation``, first of its episode) → ``FAIL`` with the
  ``contractViolation`` run facet, the standard ``errorMessage`` run facet and, for quality failures, the
  ``dataQualityAssertions`` input facet on the affected dataset;
* the episode escalates (same episode, higher severity) → ``OTHER`` with the updated facet (a run has
  one terminal state; OTHER carries extra metadata);
* it recovers (``floe.contract.violation.resolved``) → ``COMPLETE``.

Every one of these events also carries the official ``test`` run facet (OpenLineage ``TestRunFacet`` 1-0-1, built
with openlineage-python's generated model): one test execution per check outcome — ``fail`` while the episode is
open, ``pass`` once it resolved — with OpenLineage's severity (``error`` for floe's error/critical, ``warn`` for
warning/info; floe's own severity in ``params.floeSeverity``), the check type, expected and actual values.

``runId`` = uuid5(correlation key, episode start), so FAIL/OTHER/COMPLETE share it and replays rebuild the
same events byte for byte. Job: namespace from settings, name ``<contract id>.<asset>.<check type>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, Run, RunEvent, RunState
from openlineage.client.generated.base import InputDatasetFacet, RunFacet
from openlineage.client.generated.data_quality_assertions_dataset import (
    Assertion,
    DataQualityAssertionsDatasetFacet,
)
from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
from openlineage.client.generated.test_run import TestExecution, TestRunFacet
from openlineage.client.serde import Serde

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.settings import OpenLineageSettings
from floe_stream.topics.violation import ResolvedData, ViolationCloudEvent, ViolationData

FACET_ID = "https://floe-stream.github.io/spec/facets/1-0-0/ContractViolationRunFacet.json"
FACET_SCHEMA_URL = f"{FACET_ID}#/$defs/ContractViolationRunFacet"
OL_TEST_SEVERITY = {"critical": "error", "error": "error", "warning": "warn", "info": "warn"}
"""floe severity → OpenLineage's configured consequence of a failed test ('error' blocks, 'warn' does not)."""
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


@attr.define
class ContractViolationRunFacet(RunFacet):
    """floe's ``contractViolation`` run facet (schema: ``topics/ContractViolationRunFacet.json``), in the shape of
    openlineage-python's generated facets."""

    contractName: str
    contractVersion: str
    contractId: str
    asset: str
    violationType: str
    severity: str
    message: str
    timestamp: str
    episodeStartedAt: str
    violationId: str
    correlationKey: str
    element: str | None = attr.field(default=None)
    expectedValue: str | None = attr.field(default=None)
    actualValue: str | None = attr.field(default=None)
    driftKind: str | None = attr.field(default=None)
    affectedConsumers: list[str] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA_URL


def violation_facet(d: ViolationData, cfg: OpenLineageSettings) -> ContractViolationRunFacet:
    return ContractViolationRunFacet(
        contractName=d.contract_name,
        contractVersion=d.contract_version,
        contractId=d.contract_id,
        asset=d.asset,
        violationType=d.violation_type.value,
        severity=d.severity.value,
        message=d.message,
        element=d.element,
        expectedValue=d.expected_value,
        actualValue=d.actual_value,
        timestamp=iso(d.detected_at),
        episodeStartedAt=iso(d.episode_started_at),
        violationId=d.violation_id,
        correlationKey=d.correlation_key,
        driftKind=d.drift_kind.value if d.drift_kind is not None else None,
        affectedConsumers=list(d.consumers) if d.consumers else None,
        producer=cfg.producer,
    )


def _assertion(d: ViolationData, asset: MonitoredAsset | None) -> Assertion:
    name = column = None
    assertion = d.element or "quality"
    if asset is not None and d.element:
        rule = next((r for r in asset.quality_rules if r.name == d.element), None)
        column = (
            rule.column
            if rule is not None
            else (d.element if any(c.name == d.element for c in asset.columns) else None)
        )
        if rule is not None:
            assertion, name = rule.metric, rule.name
    return Assertion(
        assertion=assertion,
        success=False,
        severity=d.severity.value,
        name=name,
        column=column or None,
        expected=d.expected_value,
        actual=d.actual_value,
        params=None,
    )


def test_facet(d: ViolationData | ResolvedData, cfg: OpenLineageSettings) -> TestRunFacet:
    """The official ``test`` run facet (TestRunFacet) for one check outcome of this episode."""
    resolved = isinstance(d, ResolvedData)
    check = d.violation_type.value
    element = d.element if isinstance(d, ViolationData) else None
    params: dict[str, Any] = {
        "floeSeverity": d.severity.value,
        "contractId": d.contract_id,
        "contractVersion": d.contract_version,
        "asset": d.asset,
        "correlationKey": d.correlation_key,
    }
    if isinstance(d, ViolationData) and d.drift_kind is not None:
        params["driftKind"] = d.drift_kind.value
    test = TestExecution(
        name=f"{d.asset}.{check}" + (f".{element}" if element else ""),
        status="pass" if resolved else "fail",
        severity=OL_TEST_SEVERITY[d.severity.value],
        type=check,
        description=d.message,
        expected=None if isinstance(d, ResolvedData) else d.expected_value,
        actual=None if isinstance(d, ResolvedData) else d.actual_value,
        params=params,
    )
    return TestRunFacet(tests=[test], producer=cfg.producer)


def _event(
    event_type: RunState,
    when: datetime,
    rid: str,
    d: ViolationData | ResolvedData,
    cfg: OpenLineageSettings,
    lookup: AssetLookup,
) -> dict[str, Any]:
    asset = lookup(d.asset)
    ns, name = dataset_ref(d.asset, asset, cfg)
    run_facets: dict[str, RunFacet] = {}
    input_facets: dict[str, InputDatasetFacet] | None = None
    if isinstance(d, ViolationData):
        run_facets["contractViolation"] = violation_facet(d, cfg)
        run_facets["errorMessage"] = ErrorMessageRunFacet(
            message=f"[{d.severity.value}] {d.message}", programmingLanguage="python", producer=cfg.producer
        )
        if d.violation_type.value == "quality":
            input_facets = {
                "dataQualityAssertions": DataQualityAssertionsDatasetFacet(
                    assertions=[_assertion(d, asset)], producer=cfg.producer
                )
            }
    run_facets["test"] = test_facet(d, cfg)
    event = RunEvent(
        eventType=event_type,
        eventTime=iso(when),
        producer=cfg.producer,
        run=Run(runId=rid, facets=run_facets),
        job=Job(
            namespace=cfg.namespace, name=job_name(d.contract_id, d.asset, d.violation_type.value), facets={}
        ),
        inputs=[InputDataset(namespace=ns, name=name, facets={}, inputFacets=input_facets)],
        outputs=[],
    )
    out: dict[str, Any] = Serde.to_dict(event)
    return out


def lineage_events(
    ce: ViolationCloudEvent, cfg: OpenLineageSettings, lookup: AssetLookup
) -> list[dict[str, Any]]:
    """The OpenLineage event(s) for one violation CloudEvent (always exactly one today), built with
    openlineage-python's typed models (``event_v2`` and the generated facets)."""
    d = ce.data
    if isinstance(d, ResolvedData):
        return [
            _event(RunState.COMPLETE, d.resolved_at, run_id(d.correlation_key, d.opened_at), d, cfg, lookup)
        ]
    state = RunState.FAIL if d.detected_at == d.episode_started_at else RunState.OTHER
    return [_event(state, d.detected_at, run_id(d.correlation_key, d.episode_started_at), d, cfg, lookup)]
