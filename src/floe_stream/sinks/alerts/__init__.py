"""Alert delivery: violation CloudEvents → routed, deduplicated, grouped notifications on channels
(webhook, Slack, email, Alertmanager, PagerDuty-style incidents) with a PostgreSQL ledger.

Modules: ``config`` (the YAML file), ``model`` (typed values), ``decisions`` (pure: dedup, silences, grouping,
rate limits, incidents), ``store`` (loads their state, saves their outcome; the delivery ledger), ``delivery``
(retries, DLQ, circuit breaker), ``channels/`` (one module per channel, entry-point group
``floe.alert_channels``), ``sink`` (the consumer), ``replay``, ``commands`` (CLI).
"""
