"""Alert channels, discovered through the ``floe.alert_channels`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

from floe_stream.sinks.alerts.channels.base import Channel, ChannelContext, DeliveryError, MessageError

GROUP = "floe.alert_channels"


def channel_types() -> dict[str, type[Channel]]:
    """Registered channel classes by type name (the entry-point name)."""
    out: dict[str, type[Channel]] = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Channel)):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a Channel subclass")
        out[ep.name] = cls
    return out


__all__ = ["GROUP", "Channel", "ChannelContext", "DeliveryError", "MessageError", "channel_types"]
