"""Every topic floe-stream reads or writes: name, payload, key rule and who uses it.

The top-level ``topics/`` folder of the repository holds the JSON Schema generated from this catalogue
(``floe topics schemas``); a test fails when the files and the models drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.commit import CatalogCommitEvent
from floe_stream.topics.lineage import AssetHealth, LineageEdge
from floe_stream.topics.materialization import MaterializationEvent, OpenLineageRunEvent
from floe_stream.topics.probe import ProbeResult
from floe_stream.topics.tick import Tick
from floe_stream.topics.violation import ViolationCloudEvent


class TopicKey(StrEnum):
    MATERIALIZATIONS = "materializations"
    CATALOG_COMMITS = "catalog-commits"
    TICKS = "ticks"
    CHECK_RESULTS = "check-results"
    VIOLATIONS = "violations"
    PROCESSOR_STATE = "processor-state"
    DLQ = "dlq"
    ALERTS_DLQ = "alerts-dlq"
    PROBE_RESULTS = "probe-results"
    CONTRACTS = "contracts"
    LINEAGE = "lineage"


@dataclass(frozen=True)
class TopicSpec:
    key: TopicKey
    payloads: tuple[type[BaseModel], ...]
    record_key: str
    description: str
    compacted: bool = False
    internal: bool = False


CATALOGUE: dict[TopicKey, TopicSpec] = {
    spec.key: spec
    for spec in (
        TopicSpec(
            TopicKey.MATERIALIZATIONS,
            (MaterializationEvent, OpenLineageRunEvent),
            "asset id (floe event) or any key (OpenLineage: misplaced events are re-routed by asset)",
            "Input. An asset was materialized: floe's event or an OpenLineage RunEvent (COMPLETE counts).",
        ),
        TopicSpec(
            TopicKey.CATALOG_COMMITS,
            (CatalogCommitEvent,),
            "table identifier (= asset id)",
            "Input. A new Iceberg snapshot with the table's current schema.",
        ),
        TopicSpec(
            TopicKey.TICKS,
            (Tick,),
            "none: one record per partition per interval",
            "Input. Drives time: absence deadlines of stalled assets, availability pings.",
        ),
        TopicSpec(
            TopicKey.CHECK_RESULTS,
            (CheckResult,),
            "asset id",
            "Output. One record per check evaluation (pass/fail/skipped/error).",
        ),
        TopicSpec(
            TopicKey.VIOLATIONS,
            (ViolationCloudEvent,),
            "asset id (CloudEvents partitionkey)",
            "Output. CloudEvents 1.0 structured: floe.contract.violation and floe.contract.violation.resolved.",
        ),
        TopicSpec(
            TopicKey.PROCESSOR_STATE,
            (),
            "asset id; '__checkpoint__' per partition",
            "Internal changelog of processor state, co-partitioned with the inputs; rebuilt on assignment.",
            compacted=True,
            internal=True,
        ),
        TopicSpec(
            TopicKey.DLQ,
            (),
            "original key",
            "Dead letters: the original bytes with headers floe-dlq-reason, -topic, -partition, -offset.",
        ),
        TopicSpec(
            TopicKey.ALERTS_DLQ,
            (),
            "channel name",
            "Undeliverable notifications (JSON: channel, reason, attempts, notification); `floe alerts replay`.",
        ),
        TopicSpec(
            TopicKey.PROBE_RESULTS,
            (ProbeResult,),
            "asset id",
            "Internal input, co-partitioned: availability ping outcomes; the processor judges them purely.",
            internal=True,
        ),
        TopicSpec(
            TopicKey.CONTRACTS,
            (),
            "contract id; value = ODCS YAML text, tombstone (null) = retire",
            "Contract lifecycle: every processor reads it in full (no group) and applies changes live.",
            compacted=True,
        ),
        TopicSpec(
            TopicKey.LINEAGE,
            (LineageEdge, AssetHealth),
            "'edge:<job>|<in|out>|<dataset>' or 'health:<asset>'",
            "Internal: lineage edges and per-asset open episodes shared by all processors (read in full, no group).",
            compacted=True,
            internal=True,
        ),
    )
}


def topic_name(prefix: str, key: TopicKey) -> str:
    return f"{prefix}{key.value}"


def all_topics(prefix: str) -> list[str]:
    return [topic_name(prefix, k) for k in TopicKey]
