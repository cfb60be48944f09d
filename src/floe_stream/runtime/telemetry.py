"""Moved to :mod:`floe_stream.telemetry.metrics` (telemetry has one home: ``telemetry/``). Re-exported only
for the sinks, which still import it from here (issue 14 item 1 moves them onto the sink runtime)."""

from floe_stream.telemetry.metrics import instruments

__all__ = ["instruments"]
