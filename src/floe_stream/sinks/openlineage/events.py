"""Violation CloudEvents → OpenLineage RunEvents (spec 2-0-2). Pure and deterministic.

Built with openlineage-python's typed models (``openlineage.client.event_v2`` and the generated facets; floe's
own ``contractViolation`` facet is a :class:`~openlineage.client.generated.base.RunFacet` subclass), serialized
with the client's ``Serde`` (nulls dropped) into the dict the transports send.

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

import attr
from openlineage.client.event_v2 import InputDataset, Job, Run, RunEvent, RunState
from openlineage.client.generated.base import RunFacet
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


@attr.define
class ContractViolationRunFacet(RunFacet):
    """floe's run facet (schema ``topics/ContractViolationRunFacet.json``), as an OpenLineage client facet."""

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
    assertion, name, col = d.element or "quality", None, None
    if asset is not None and d.element:
        rule = next((r for r in asset.quality_rules if r.name == d.element), None)
        col = (
            rule.column
            if rule is not None
            else (d.element if any(c.name == d.element for c in asset.columns) else None)
        )
        if rule is not None:
            assertion, name = rule.metric, rule.name
    return Assertion(
        assertion=assertion, success=False, severity=d.severity.value, name=name, column=col or None,
        expected=d.expected_value, actual=d.actual_value, params=None,
    )  # fmt: skip


def test_facet(
    d: ViolationData | ResolvedData, cfg: OpenLineageSettings, job: str, *, passed: bool
) -> TestRunFacet:
    """The official ``TestRunFacet``: this check as one test execution with its outcome and severity."""
    params: dict[str, Any] = {"floeSeverity": d.severity.value, "contractId": d.contract_id, "asset": d.asset}
    expected = actual = None
    if isinstance(d, ViolationData):
        expected, actual = d.expected_value, d.actual_value
        if d.element:
            params["element"] = d.element
    test = TestExecution(
        name=job, status="pass" if passed else "fail", severity=TEST_SEVERITY[d.severity.value],
        type=d.violation_type.value, description=d.message, expected=expected, actual=actual, params=params,
    )  # fmt: skip
    return TestRunFacet(tests=[test], producer=cfg.producer)


def _event(
    event_type: RunState,
    when: datetime,
    rid: str,
    d: ViolationData | ResolvedData,
    cfg: OpenLineageSettings,
    lookup: AssetLookup,
) -> RunEvent:
    asset = lookup(d.asset)
    ns, name = dataset_ref(d.asset, asset, cfg)
    job = job_name(d.contract_id, d.asset, d.violation_type.value)
    run_facets: dict[str, RunFacet] = {"test": test_facet(d, cfg, job, passed=isinstance(d, ResolvedData))}
    input_facets: dict[str, Any] = {}
    if isinstance(d, ViolationData):
        run_facets["contractViolation"] = violation_facet(d, cfg)
        run_facets["errorMessage"] = ErrorMessageRunFacet(
            message=f"[{d.severity.value}] {d.message}", programmingLanguage="python", producer=cfg.producer
        )
        if d.violation_type.value == "quality":
            input_facets["dataQualityAssertions"] = DataQualityAssertionsDatasetFacet(
                assertions=[_assertion(d, asset)], producer=cfg.producer
            )
    return RunEvent(
        eventType=event_type,
        eventTime=iso(when),
        producer=cfg.producer,
        run=Run(runId=rid, facets=run_facets),
        job=Job(namespace=cfg.namespace, name=job, facets={}),
        inputs=[InputDataset(namespace=ns, name=name, facets={}, inputFacets=input_facets or None)],
        outputs=[],
    )


def lineage_events(
    ce: ViolationCloudEvent, cfg: OpenLineageSettings, lookup: AssetLookup
) -> list[dict[str, Any]]:
    """The OpenLineage event(s) for one violation CloudEvent (always exactly one today), as sent on the wire."""
    d = ce.data
    if isinstance(d, ResolvedData):
        ev = _event(RunState.COMPLETE, d.resolved_at, run_id(d.correlation_key, d.opened_at), d, cfg, lookup)
    else:
        opening = d.detected_at == d.episode_started_at
        ev = _event(
            RunState.FAIL if opening else RunState.OTHER, d.detected_at,
            run_id(d.correlation_key, d.episode_started_at), d, cfg, lookup,
        )  # fmt: skip
    return [Serde.to_dict(ev)]
