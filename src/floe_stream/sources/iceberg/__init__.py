"""Iceberg catalog watcher: one catalog-commit event per new snapshot of every watched table."""

from floe_stream.sources.iceberg.coverage import CoverageReport, coverage
from floe_stream.sources.iceberg.snapshots import TableMark, new_events
from floe_stream.sources.iceberg.watcher import IcebergWatcher, PollStats

__all__ = ["CoverageReport", "IcebergWatcher", "PollStats", "TableMark", "coverage", "new_events"]
