"""Orchestrator integrations shipped in the package (each behind its own extra, e.g. ``floe-stream[dagster]``)."""
