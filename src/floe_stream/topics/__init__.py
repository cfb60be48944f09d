"""Wire models and topic names: the contract between floe-stream and its publishers and subscribers."""

from floe_stream.topics.catalog import CATALOGUE, TopicKey, TopicSpec, all_topics, topic_name
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.commit import CatalogCommitEvent, IcebergField, IcebergSchema
from floe_stream.topics.enums import CheckStatus, CheckType, DriftKind, Severity
from floe_stream.topics.materialization import (
    MaterializationEvent,
    ObservedColumn,
    OpenLineageRunEvent,
    QualityResult,
)
from floe_stream.topics.tick import Tick
from floe_stream.topics.violation import ResolvedData, ViolationCloudEvent, ViolationData

__all__ = [
    "CATALOGUE",
    "CatalogCommitEvent",
    "CheckResult",
    "CheckStatus",
    "CheckType",
    "DriftKind",
    "IcebergField",
    "IcebergSchema",
    "MaterializationEvent",
    "ObservedColumn",
    "OpenLineageRunEvent",
    "QualityResult",
    "ResolvedData",
    "Severity",
    "Tick",
    "TopicKey",
    "TopicSpec",
    "ViolationCloudEvent",
    "ViolationData",
    "all_topics",
    "topic_name",
]
