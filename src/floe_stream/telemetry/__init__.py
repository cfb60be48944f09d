"""Observability beyond the basic process metrics: traces through Kafka, user-defined metrics."""
