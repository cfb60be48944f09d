"""Iceberg catalog adapters: read table metadata, turn new snapshots into catalog-commit events. The
deployable that polls and produces them is :mod:`floe_stream.runtime.deployables.iceberg_watcher`."""

from floe_stream.sources.iceberg.coverage import CoverageReport, coverage
from floe_stream.sources.iceberg.snapshots import TableMark, new_events

__all__ = ["CoverageReport", "TableMark", "coverage", "new_events"]
