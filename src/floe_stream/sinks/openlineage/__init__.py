"""OpenLineage sink: FAIL / OTHER / COMPLETE RunEvents per violation episode (HTTP, Kafka, file)."""
