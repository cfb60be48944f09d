"""Enumerations shared by wire models and the evaluation core."""

from __future__ import annotations

from enum import StrEnum


class CheckType(StrEnum):
    FRESHNESS = "freshness"
    SCHEMA_DRIFT = "schema_drift"
    QUALITY = "quality"
    AVAILABILITY = "availability"
    FREQUENCY = "frequency"
    TIME_OF_AVAILABILITY = "time_of_availability"
    LIFECYCLE = "lifecycle"
    RETENTION = "retention"


class CheckStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    ERROR = "error"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


class DriftKind(StrEnum):
    COLUMN_ADDED = "column_added"
    COLUMN_REMOVED = "column_removed"
    TYPE_CHANGED = "type_changed"
    NULLABILITY_CHANGED = "nullability_changed"
    CONSTRAINT_CHANGED = "constraint_changed"
