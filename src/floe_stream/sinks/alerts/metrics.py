"""Alert-path instruments (OpenTelemetry; exported on /metrics by the Prometheus reader):
``floe_alert_delivery_failures_total{channel}``, ``floe_alert_delivery_latency_seconds{channel}``,
``floe_alert_deliveries_total{channel,status}``, ``floe_alerts_suppressed_total{reason}``."""

from __future__ import annotations

from opentelemetry import metrics


class AlertInstruments:
    """Made by the composition root (``runtime/deployables/app.py``, ``floe alerts replay``) and handed to the sink and its
    dispatcher. Instruments are named per meter: a second set in one process records into the same ones."""

    def __init__(self) -> None:
        meter = metrics.get_meter("floe_stream.alerts")
        self.failures = meter.create_counter(
            "floe_alert_delivery_failures",
            description="deliveries dead-lettered after the last retry, by channel",
        )
        self.attempt_failures = meter.create_counter(
            "floe_alert_delivery_attempt_failures",
            description="failed delivery attempts (retried or not), by channel",
        )
        self.deliveries = meter.create_counter(
            "floe_alert_deliveries",
            description="notifications delivered, by channel and status (firing/resolved)",
        )
        self.latency = meter.create_histogram(
            "floe_alert_delivery_latency",
            unit="s",
            description="time from the violation's detection to the receiver's acknowledgement, by channel",
            explicit_bucket_boundaries_advisory=[
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
                300,
            ],
        )
        self.suppressed = meter.create_counter(
            "floe_alerts_suppressed",
            description="alerts not notified, by reason (silenced, duplicate, rate_limited…)",
        )
