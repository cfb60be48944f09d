"""OpenLineage events built from violations validate against the official schemas and our facet schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from floe_stream.contracts.models import ColumnSpec, MonitoredAsset, QualityRule, ServerRef
from floe_stream.settings import OpenLineageSettings
from floe_stream.sinks.openlineage.events import (
    FACET_ID,
    FACET_SCHEMA_URL,
    dataset_ref,
    lineage_events,
    run_id,
)
from floe_stream.sinks.openlineage.validate import LineageSchemas
from floe_stream.telemetry.metrics import instruments
from floe_stream.topics import DriftKind, ResolvedData, Severity, ViolationData
from floe_stream.topics.enums import CheckType
from floe_stream.topics.violation import decode_violation, encode_violation

REPO = Path(__file__).resolve().parents[2]
OL_SCHEMAS = REPO / "tests" / "fixtures" / "schemas" / "openlineage"
FACET_FILE = REPO / "topics" / "ContractViolationRunFacet.json"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CFG = OpenLineageSettings()


@pytest.fixture(scope="module")
def schemas() -> LineageSchemas:
    return LineageSchemas([*sorted(OL_SCHEMAS.rglob("*.json")), FACET_FILE])


def asset(**kw: object) -> MonitoredAsset:
    base: dict[str, object] = {
        "asset_id": "sales.orders", "contract_id": "sales", "contract_name": "sales-orders",
        "contract_version": "2.1.0", "table": "orders",
        "columns": (ColumnSpec(name="amount"), ColumnSpec(name="id")),
        "quality_rules": (QualityRule(name="amount_not_null", column="amount", metric="nullValues", operator="mustBe", threshold=0),),
    }  # fmt: skip
    base.update(kw)
    return MonitoredAsset.model_validate(base)


def violation(
    check: CheckType = CheckType.FRESHNESS,
    detected: datetime = T0,
    sev: Severity = Severity.ERROR,
    **kw: object,
) -> ViolationData:
    base: dict[str, object] = {
        "violation_id": f"v-{check}-{detected.isoformat()}", "correlation_key": f"sales.orders/{check}",
        "contract_id": "sales", "contract_name": "sales-orders", "contract_version": "2.1.0", "asset": "sales.orders",
        "violation_type": check, "severity": sev, "message": "data is 7200 s old (SLA 3600 s)",
        "element": "updated_at", "expected_value": "3600", "actual_value": "7200",
        "detected_at": detected, "episode_started_at": T0, "consumers": ["finance-dashboard"],
    }  # fmt: skip
    base.update(kw)
    return ViolationData.model_validate(base)


def resolved(check: CheckType = CheckType.FRESHNESS) -> ResolvedData:
    return ResolvedData(
        violation_id="r1", correlation_key=f"sales.orders/{check}", contract_id="sales", contract_name="sales-orders",
        contract_version="2.1.0", asset="sales.orders", violation_type=check, severity=Severity.CRITICAL,
        message="resolved", opened_at=T0, resolved_at=T0 + timedelta(minutes=5), open_duration_s=300,
    )  # fmt: skip


def as_cloudevent(d: ViolationData | ResolvedData):  # type: ignore[no-untyped-def]
    key, value, headers = encode_violation(d)
    return decode_violation(dict(headers), key, value)


def one(d: ViolationData | ResolvedData, lookup=lambda _a: asset()) -> dict:  # type: ignore[no-untyped-def,type-arg]
    evs = lineage_events(as_cloudevent(d), CFG, lookup)
    assert len(evs) == 1
    return json.loads(json.dumps(evs[0]))  # as it goes on the wire


def test_fail_escalation_and_complete_share_one_run_and_validate(schemas: LineageSchemas) -> None:
    fail = one(violation())
    other = one(violation(detected=T0 + timedelta(minutes=1), sev=Severity.CRITICAL))
    complete = one(resolved())
    assert [fail["eventType"], other["eventType"], complete["eventType"]] == ["FAIL", "OTHER", "COMPLETE"]
    assert (
        fail["run"]["runId"]
        == other["run"]["runId"]
        == complete["run"]["runId"]
        == run_id("sales.orders/freshness", T0)
    )
    for ev in (fail, other, complete):
        assert schemas.errors(ev) == []
        assert ev["job"] == {"namespace": "floe-stream", "name": "sales.sales.orders.freshness", "facets": {}}
        assert ev["inputs"][0]["name"] == "sales.orders"
    facet = fail["run"]["facets"]["contractViolation"]
    assert facet["_schemaURL"] == FACET_SCHEMA_URL
    assert "/1-0-0/" in facet["_schemaURL"]
    assert facet["_producer"].startswith("https://")
    assert {k: facet[k] for k in ("contractName", "contractVersion", "violationType", "severity", "element", "expectedValue", "actualValue", "timestamp")} == {
        "contractName": "sales-orders", "contractVersion": "2.1.0", "violationType": "freshness", "severity": "error",
        "element": "updated_at", "expectedValue": "3600", "actualValue": "7200", "timestamp": "2026-11-23T12:00:00Z",
    }  # fmt: skip
    assert facet["message"] == "data is 7200 s old (SLA 3600 s)"
    assert other["run"]["facets"]["contractViolation"]["severity"] == "critical"
    assert "contractViolation" not in complete["run"]["facets"]
    assert fail["eventTime"] == "2026-11-23T12:00:00Z"
    assert complete["eventTime"] == "2026-11-23T12:05:00Z"


def test_quality_failure_carries_data_quality_assertions(schemas: LineageSchemas) -> None:
    ev = one(violation(CheckType.QUALITY, element="amount_not_null", expected_value="0", actual_value="12"))
    assert schemas.errors(ev) == []
    dqa = ev["inputs"][0]["inputFacets"]["dataQualityAssertions"]
    assert dqa["assertions"] == [
        {"assertion": "nullValues", "success": False, "severity": "error", "name": "amount_not_null",
         "column": "amount", "expected": "0", "actual": "12"}
    ]  # fmt: skip
    assert dqa["_schemaURL"].startswith(
        "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json#"
    )


def test_every_check_outcome_carries_the_official_test_run_facet(schemas: LineageSchemas) -> None:
    """FAIL / OTHER / COMPLETE each carry OpenLineage's TestRunFacet (1-0-1, openlineage-python's model): the
    outcome, OpenLineage's severity, the check type, expected and actual values; it validates against the
    official facet schema, and a wrong shape does not."""
    fail = one(violation(sev=Severity.WARNING))
    other = one(violation(detected=T0 + timedelta(minutes=1), sev=Severity.CRITICAL))
    complete = one(resolved())
    for ev in (fail, other, complete):
        assert schemas.errors(ev) == []
        facet = ev["run"]["facets"]["test"]
        assert facet["_schemaURL"] == (
            "https://openlineage.io/spec/facets/1-0-1/TestRunFacet.json#/$defs/TestRunFacet"
        )
        assert facet["_producer"] == CFG.producer
    assert fail["run"]["facets"]["test"]["tests"] == [
        {"name": "sales.orders.freshness.updated_at", "status": "fail", "severity": "warn", "type": "freshness",
         "description": "data is 7200 s old (SLA 3600 s)", "expected": "3600", "actual": "7200",
         "params": {"floeSeverity": "warning", "contractId": "sales", "contractVersion": "2.1.0",
                    "asset": "sales.orders", "correlationKey": "sales.orders/freshness"}}
    ]  # fmt: skip
    (escalated,) = other["run"]["facets"]["test"]["tests"]
    assert (escalated["status"], escalated["severity"], escalated["params"]["floeSeverity"]) == (
        "fail", "error", "critical",
    )  # fmt: skip
    (passed,) = complete["run"]["facets"]["test"]["tests"]
    assert {k: passed[k] for k in ("name", "status", "severity", "type")} == {
        "name": "sales.orders.freshness", "status": "pass", "severity": "error", "type": "freshness",
    }  # fmt: skip
    assert "expected" not in passed and "actual" not in passed
    quality = one(
        violation(CheckType.QUALITY, element="amount_not_null", expected_value="0", actual_value="12")
    )
    assert schemas.errors(quality) == []
    assert quality["run"]["facets"]["test"]["tests"][0]["type"] == "quality"
    assert (
        quality["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]["severity"] == "error"
    )
    bad = one(violation())
    del bad["run"]["facets"]["test"]["tests"][0]["status"]
    bad["run"]["facets"]["test"]["tests"][0]["expected"] = 3600
    errors = schemas.errors(bad)
    assert any("run.facets.test" in e and "status" in e for e in errors), errors
    assert any("run.facets.test" in e and "3600" in e for e in errors), errors


def test_drift_and_unknown_asset_still_validate(schemas: LineageSchemas) -> None:
    ev = one(
        violation(
            CheckType.SCHEMA_DRIFT, drift_kind=DriftKind.COLUMN_REMOVED, element="amount", consumers=[]
        ),
        lookup=lambda _a: None,
    )
    assert schemas.errors(ev) == []
    assert ev["inputs"][0]["namespace"] == "floe"
    assert ev["run"]["facets"]["contractViolation"]["driftKind"] == "column_removed"


def test_the_validator_rejects_what_upstream_got_wrong(schemas: LineageSchemas) -> None:
    """A short non-URI producer, a missing timestamp, an undeclared key: all caught (the check is not vacuous)."""
    ev = one(violation())
    facet = ev["run"]["facets"]["contractViolation"]
    facet["_producer"] = "floe"
    del facet["timestamp"]
    facet["checkDurationSeconds"] = 0.1
    errors = schemas.errors(ev)
    assert any("_producer" in e or "uri" in e for e in errors), errors
    assert any("timestamp" in e for e in errors), errors
    assert any("checkDurationSeconds" in e for e in errors), errors
    bad_run = one(violation())
    bad_run["run"]["runId"] = "not-a-uuid"
    assert any("uuid" in e for e in schemas.errors(bad_run))


def test_events_are_deterministic_for_replays() -> None:
    assert one(violation()) == one(violation())
    assert run_id("a/freshness", T0) != run_id("a/freshness", T0 + timedelta(seconds=1))


def test_dataset_naming_follows_the_contract_server() -> None:
    pg = asset(
        servers=(
            ServerRef(
                server="prod", type="postgres", host="db", port=5432, database="shop", schema_name="public"
            ),
        )
    )
    assert dataset_ref("sales.orders", pg, CFG) == ("postgres://db:5432", "shop.public.orders")
    assert dataset_ref("sales.orders", None, CFG) == ("floe", "sales.orders")
    assert dataset_ref("sales.orders", pg, OpenLineageSettings(dataset_namespace="kafka://x")) == (
        "kafka://x",
        "sales.orders",
    )


def test_facet_schema_file_is_the_one_the_events_point_to() -> None:
    doc = json.loads(FACET_FILE.read_text())
    assert doc["$id"] == FACET_ID
    assert f"{doc['$id']}#/$defs/ContractViolationRunFacet" == FACET_SCHEMA_URL
    required = set(doc["$defs"]["ContractViolationRunFacet"]["allOf"][1]["required"])
    assert {
        "contractName",
        "contractVersion",
        "violationType",
        "severity",
        "message",
        "timestamp",
    } <= required


class ScriptedTransport:
    """Delivers events one by one; fails where told (transiently once, or permanently)."""

    name = "scripted"

    def __init__(self, reject: set[str], outage_at: str | None) -> None:
        self.reject, self.outage_at, self.sent = reject, outage_at, []  # type: ignore[var-annotated]

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def emit(self, events) -> None:  # type: ignore[no-untyped-def]
        from floe_stream.sinks.openlineage.transport import TransportError

        for i, ev in enumerate(events):
            if ev["id"] == self.outage_at:
                self.outage_at = None
                raise TransportError("down", permanent=False, delivered=i)
            if ev["id"] in self.reject:
                raise TransportError(f"rejected {ev['id']}", permanent=True, delivered=i)
            self.sent.append(ev["id"])


async def test_delivery_skips_only_rejected_records_and_never_resends() -> None:
    import asyncio
    from types import SimpleNamespace

    from floe_stream.runtime.framework.sink_runtime import SinkContext
    from floe_stream.settings import Settings
    from floe_stream.sinks.openlineage.sink import OpenLineageSink

    t = ScriptedTransport(reject={"c", "f"}, outage_at="e")
    sink = OpenLineageSink(Settings(openlineage=OpenLineageSettings(retry_backoff_s=0.01)), transport=t)  # type: ignore[arg-type]

    async def publish(*_: object, source: object = None) -> None:
        pass

    sink.ctx = SinkContext(asyncio.Event(), lambda: None, publish, metrics=instruments())
    items = [(SimpleNamespace(offset=i), None, [{"id": x}]) for i, x in enumerate("abcdefg")]
    failed = await sink._deliver(items)  # type: ignore[arg-type]
    assert t.sent == ["a", "b", "d", "e", "g"]  # in order, each once, across an outage and two rejections
    assert [(rec.offset, reason) for rec, reason in failed] == [(2, "rejected c"), (5, "rejected f")]  # type: ignore[attr-defined]
